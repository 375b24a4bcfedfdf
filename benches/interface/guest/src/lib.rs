//! The same transform behind two interfaces (see `../wit/bench.wit`):
//! drop `status = "inactive"`, trim and lowercase `email` and reject it
//! without `@`, uppercase `country`. `logic` is shared with the native
//! baseline of `runtime/benches/interface.rs`.

#![allow(missing_docs)]

pub mod logic {
    /// What to do with a record, decided on borrowed field values.
    pub enum Decision {
        /// Keep; `Some` holds the new email and country when they change.
        Keep(Option<String>, Option<String>),
        /// Drop.
        Drop,
        /// Reject with a code.
        Reject,
    }

    /// The transform, on the values of three fields.
    pub fn decide(status: Option<&str>, email: Option<&str>, country: Option<&str>) -> Decision {
        if status == Some("inactive") {
            return Decision::Drop;
        }
        let email = email.unwrap_or("");
        let clean = email.trim();
        if !clean.contains('@') {
            return Decision::Reject;
        }
        let new_email = (clean.len() != email.len()
            || clean.bytes().any(|b| b.is_ascii_uppercase()))
        .then(|| clean.to_lowercase());
        let new_country = country
            .filter(|c| c.bytes().any(|b| b.is_ascii_lowercase()))
            .map(str::to_uppercase);
        Decision::Keep(new_email, new_country)
    }
}

#[cfg(target_arch = "wasm32")]
mod guest {
    use sluice_codec::{BatchReader, OutcomesWriter, Rejection, Value};

    use super::logic::{Decision, decide};

    wit_bindgen::generate!({ path: "../wit", world: "iface" });

    use exports::sluice_bench::iface::{buffer, typed};

    struct Bench;

    impl typed::Guest for Bench {
        fn process(batch: Vec<typed::Rec>) -> Vec<typed::Outcome> {
            batch
                .into_iter()
                .map(|mut rec| {
                    let get = |n: &str| {
                        rec.fields
                            .iter()
                            .find(|f| f.name == n)
                            .and_then(|f| match &f.value {
                                typed::Val::Text(t) => Some(t.as_str()),
                                _ => None,
                            })
                    };
                    match decide(get("status"), get("email"), get("country")) {
                        Decision::Drop => typed::Outcome::Drop,
                        Decision::Reject => typed::Outcome::Reject("invalid_email".into()),
                        Decision::Keep(None, None) => typed::Outcome::KeepUnchanged,
                        Decision::Keep(e, c) => {
                            for f in &mut rec.fields {
                                if f.name == "email"
                                    && let Some(e) = &e
                                {
                                    f.value = typed::Val::Text(e.clone());
                                }
                                if f.name == "country"
                                    && let Some(c) = &c
                                {
                                    f.value = typed::Val::Text(c.clone());
                                }
                            }
                            typed::Outcome::Keep(rec)
                        }
                    }
                })
                .collect()
        }
    }

    impl buffer::Guest for Bench {
        fn process(batch: Vec<u8>) -> Vec<u8> {
            let mut out = OutcomesWriter::with_capacity(batch.len() / 2);
            let Ok(mut reader) = BatchReader::new(&batch) else {
                return Vec::new();
            };
            while let Ok(Some(mut rec)) = reader.next_record() {
                let get = |n: &str| rec.get(n).and_then(Value::as_str);
                match decide(get("status"), get("email"), get("country")) {
                    Decision::Drop => out.drop_record(),
                    Decision::Reject => out.reject(&Rejection {
                        code: "invalid_email".into(),
                        field: Some("email".into()),
                        message: "no @".into(),
                    }),
                    Decision::Keep(None, None) => out.keep_unchanged(),
                    Decision::Keep(e, c) => {
                        if let Some(e) = e {
                            rec.set("email", Value::Text(e.into()));
                        }
                        if let Some(c) = c {
                            rec.set("country", Value::Text(c.into()));
                        }
                        out.keep(&rec);
                    }
                }
            }
            out.finish()
        }
    }

    export!(Bench);
}
