//! Source and sink connectors: read from or write to an outside system.
//!
//! Build with `sluice-sdk = { ..., default-features = false, features =
//! ["source"] }` (or `["sink"]`), implement [`Source`] (or [`Sink`]) and
//! export it with [`export_source!`](crate::export_source) (or
//! [`export_sink!`](crate::export_sink)). The SDK decodes and encodes
//! batches; [`crate::http`] sends requests through the host, which allows
//! only the origins the pipeline grants; [`secret`] reads what the
//! operator gave.

use crate::{Config, InitError, Record};

/// Why a connector call failed; the class decides what the host does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorError {
    /// Worth trying again: the host retries the same call after a backoff
    /// (rate limits, a busy or restarting server, a dropped connection).
    Transient(String),
    /// Cannot go on: the pipeline stops, the committed position is kept.
    Fatal(String),
    /// `open` only: the configuration is wrong (name the key).
    InvalidConfig(String),
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectorError::Transient(m) => write!(f, "transient: {m}"),
            ConnectorError::Fatal(m) => write!(f, "fatal: {m}"),
            ConnectorError::InvalidConfig(m) => write!(f, "invalid config: {m}"),
        }
    }
}

impl std::error::Error for ConnectorError {}

impl From<InitError> for ConnectorError {
    fn from(e: InitError) -> Self {
        match e {
            InitError::InvalidConfig(m) => ConnectorError::InvalidConfig(m),
            InitError::Other(m) => ConnectorError::Fatal(m),
        }
    }
}

impl From<crate::http::Error> for ConnectorError {
    /// A refused origin or a malformed request is fatal (retrying does not
    /// help); every other HTTP failure is transient.
    fn from(e: crate::http::Error) -> Self {
        if e.is_denied() || e.is_invalid() {
            ConnectorError::Fatal(e.to_string())
        } else {
            ConnectorError::Transient(e.to_string())
        }
    }
}

impl From<crate::json::JsonError> for ConnectorError {
    /// A document that is not JSON or was cut short is transient (a server
    /// that died mid-response); JSON of the wrong shape is fatal (reading it
    /// again gives the same).
    fn from(e: crate::json::JsonError) -> Self {
        match e {
            crate::json::JsonError::Syntax(m) => {
                ConnectorError::Transient(format!("the response is not JSON: {m}"))
            }
            other => ConnectorError::Fatal(format!("unexpected response: {other}")),
        }
    }
}

/// The value of a secret the pipeline grants (`grants.secrets.NAME`).
pub fn secret(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::bindings::sluice::plugin::secrets::get(name)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // Natively (unit tests): `SLUICE_SECRET_<NAME>`.
        std::env::var(format!("SLUICE_SECRET_{}", name.to_uppercase())).ok()
    }
}

/// What one poll returns. Build it with a struct literal ending in
/// `..Default::default()` (fields may be added).
#[derive(Debug, Default)]
pub struct Polled {
    /// The records read (possibly none).
    pub records: Vec<Record<'static>>,
    /// The position just after the last record; `None` keeps the previous
    /// one (only when there are no records).
    pub position: Option<String>,
    /// True when there is nothing more to read, ever.
    pub end_of_data: bool,
    /// Records already encoded with [`Batch::push`], sent before
    /// `records`. For a connector that builds each record borrowing from
    /// its input (a response body) and encodes it at once, instead of
    /// collecting owned copies of every value in `records`.
    pub batch: Option<Batch>,
    /// Bytes sent instead of encoding `records` (tests of the host's
    /// handling of malformed batches; leave it `None`).
    #[doc(hidden)]
    pub raw_batch: Option<Vec<u8>>,
}

/// Records encoded as they are built (see [`Polled::batch`]).
///
/// ```
/// use sluice_sdk::connector::Batch;
/// use sluice_sdk::Record;
///
/// let body = String::from("Ada");
/// let mut batch = Batch::new();
/// let mut r = Record::new("people");
/// r.set("name", body.as_str()); // borrowed, not copied
/// batch.push(&r);
/// assert_eq!(batch.len(), 1);
/// assert_eq!(batch.records()[0].get_str("name"), Some("Ada"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Batch {
    writer: sluice_codec::BatchWriter,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch {
            writer: sluice_codec::BatchWriter::with_capacity(64 << 10),
        }
    }

    /// A batch already encoded (by the host's [`json`](crate::json)
    /// decoder); more records may be pushed after it.
    pub fn from_encoded(bytes: Vec<u8>) -> Result<Self, sluice_codec::DecodeError> {
        Ok(Batch {
            writer: sluice_codec::BatchWriter::from_finished(bytes)?,
        })
    }

    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn from_writer(writer: sluice_codec::BatchWriter) -> Self {
        Batch { writer }
    }

    /// Encodes `record` into the batch; it may borrow from anything.
    pub fn push(&mut self, record: &Record<'_>) {
        self.writer.push(record.as_codec());
    }

    /// How many records were pushed.
    pub fn len(&self) -> usize {
        self.writer.len()
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    /// The records pushed so far, decoded again (for a connector's tests).
    pub fn records(&self) -> Vec<Record<'static>> {
        let mut out = Vec::with_capacity(self.writer.len());
        let mut w = self.writer.clone();
        let bytes = w.as_bytes();
        // The writer's own output always decodes.
        if let Ok(mut reader) = sluice_codec::BatchReader::new(bytes) {
            while let Ok(Some(r)) = reader.next_record() {
                out.push(Record::from_codec(r.into_owned()));
            }
        }
        out
    }
}

/// A source connector.
///
/// The host calls [`Source::open`] on each fresh instance (with the last
/// committed position on a restart), then [`Source::poll`] in a loop. After
/// a trap or a missed deadline the instance is thrown away and a fresh one
/// opened at the last position handed over: keep no state that must
/// survive a crash outside the position.
#[cfg(feature = "source")]
pub trait Source: Sized + 'static {
    /// Prepares to read from just after `resume` (`None`: from the start).
    fn open(config: Config, resume: Option<String>) -> Result<Self, ConnectorError>;

    /// Reads at most `max_records`, waiting at most `max_wait` for the first.
    fn poll(
        &mut self,
        max_records: usize,
        max_wait: std::time::Duration,
    ) -> Result<Polled, ConnectorError>;

    /// Everything up to `position` is durably written: acknowledge it
    /// upstream if the system wants that. The default does nothing.
    fn committed(&mut self, _position: &str) {}
}

/// A record a sink refuses: it goes to the dead-letter sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Index of the record in the batch given to [`Sink::write`].
    pub index: usize,
    /// A snake_case code (`invalid_email`, `conflict`).
    pub code: String,
    /// A message a person can act on.
    pub message: String,
}

/// A sink connector.
///
/// For each batch the host calls [`Sink::write`] then [`Sink::commit`];
/// the batch is checkpointed only after `commit` succeeds. After a crash
/// or a transient error the same batch comes again with the same
/// idempotency keys: use them so that a replay changes nothing.
#[cfg(feature = "sink")]
pub trait Sink: Sized + 'static {
    /// Prepares to write.
    fn open(config: Config) -> Result<Self, ConnectorError>;

    /// Writes `records` (`keys[i]` is record `i`'s idempotency key);
    /// returns the records the target refused.
    fn write(
        &mut self,
        records: &[Record<'_>],
        keys: &[String],
    ) -> Result<Vec<Refusal>, ConnectorError>;

    /// Makes what was written durable. The default does nothing (a sink
    /// whose `write` is durable on return).
    fn commit(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[doc(hidden)]
pub mod __glue {
    use std::cell::RefCell;

    #[cfg(feature = "sink")]
    use sluice_codec::BatchReader;
    #[cfg(feature = "source")]
    use sluice_codec::BatchWriter;

    use super::*;
    use crate::bindings::sluice::plugin::connector_types::ConnectorError as WitError;

    pub fn wit_error(e: ConnectorError) -> WitError {
        match e {
            ConnectorError::Transient(m) => WitError::Transient(m),
            ConnectorError::Fatal(m) => WitError::Fatal(m),
            ConnectorError::InvalidConfig(m) => WitError::InvalidConfig(m),
        }
    }

    #[cfg(feature = "source")]
    pub fn source_open<T: Source>(
        state: &RefCell<Option<T>>,
        config: String,
        resume: Option<String>,
    ) -> Result<(), WitError> {
        crate::install_panic_hook();
        let s = T::open(Config::new(config), resume).map_err(wit_error)?;
        *state.borrow_mut() = Some(s);
        Ok(())
    }

    #[cfg(feature = "source")]
    pub fn source_poll<T: Source>(
        state: &RefCell<Option<T>>,
        max_records: u32,
        max_wait_ms: u32,
    ) -> Result<crate::bindings::sluice::plugin::connector_types::Polled, WitError> {
        let mut state = state.borrow_mut();
        let s = state
            .as_mut()
            .ok_or_else(|| WitError::Fatal("`poll` before a successful `open`".into()))?;
        let polled = s
            .poll(
                max_records as usize,
                std::time::Duration::from_millis(max_wait_ms.into()),
            )
            .map_err(wit_error)?;
        let mut w = match polled.batch {
            Some(b) => b.writer,
            None => BatchWriter::with_capacity(4096),
        };
        for r in &polled.records {
            w.push(r.as_codec());
        }
        if let Some(raw) = polled.raw_batch {
            return Ok(crate::bindings::sluice::plugin::connector_types::Polled {
                batch: raw,
                position: polled.position,
                end_of_data: polled.end_of_data,
            });
        }
        Ok(crate::bindings::sluice::plugin::connector_types::Polled {
            batch: if w.is_empty() { Vec::new() } else { w.finish() },
            position: polled.position,
            end_of_data: polled.end_of_data,
        })
    }

    #[cfg(feature = "source")]
    pub fn source_committed<T: Source>(state: &RefCell<Option<T>>, position: String) {
        if let Some(s) = state.borrow_mut().as_mut() {
            s.committed(&position);
        }
    }

    #[cfg(feature = "sink")]
    pub fn sink_open<T: Sink>(state: &RefCell<Option<T>>, config: String) -> Result<(), WitError> {
        crate::install_panic_hook();
        let s = T::open(Config::new(config)).map_err(wit_error)?;
        *state.borrow_mut() = Some(s);
        Ok(())
    }

    #[cfg(feature = "sink")]
    pub fn sink_write<T: Sink>(
        state: &RefCell<Option<T>>,
        batch: Vec<u8>,
        keys: Vec<String>,
    ) -> Result<Vec<crate::bindings::sluice::plugin::connector_types::Refusal>, WitError> {
        let mut state = state.borrow_mut();
        let s = state
            .as_mut()
            .ok_or_else(|| WitError::Fatal("`write` before a successful `open`".into()))?;
        let bad = |e: sluice_codec::DecodeError| WitError::Fatal(format!("malformed batch: {e}"));
        let mut reader = BatchReader::new(&batch).map_err(bad)?;
        let mut records = Vec::with_capacity(reader.remaining());
        while let Some(r) = reader.next_record().map_err(bad)? {
            records.push(Record::from_codec(r));
        }
        if keys.len() != records.len() {
            return Err(WitError::Fatal(format!(
                "{} idempotency keys for {} records",
                keys.len(),
                records.len()
            )));
        }
        let refusals = s.write(&records, &keys).map_err(wit_error)?;
        Ok(refusals
            .into_iter()
            .map(
                |r| crate::bindings::sluice::plugin::connector_types::Refusal {
                    index: r.index as u32,
                    code: r.code,
                    message: r.message,
                },
            )
            .collect())
    }

    #[cfg(feature = "sink")]
    pub fn sink_commit<T: Sink>(state: &RefCell<Option<T>>) -> Result<(), WitError> {
        let mut state = state.borrow_mut();
        let s = state
            .as_mut()
            .ok_or_else(|| WitError::Fatal("`commit` before a successful `open`".into()))?;
        s.commit().map_err(wit_error)
    }
}

/// Exports a [`Source`] implementation as the component's `source`
/// interface. Use it once per connector crate.
#[cfg(feature = "source")]
#[macro_export]
macro_rules! export_source {
    ($connector:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __SLUICE_STATE: ::std::cell::RefCell<::std::option::Option<$connector>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __SluiceExport;
            use $crate::__private::bindings::sluice::plugin::connector_types as __ct;
            impl $crate::__private::bindings::exports::sluice::plugin::source::Guest for __SluiceExport {
                fn open(
                    config: ::std::string::String,
                    resume: ::std::option::Option<::std::string::String>,
                ) -> ::std::result::Result<(), __ct::ConnectorError> {
                    __SLUICE_STATE.with(|s| $crate::connector::__glue::source_open::<$connector>(s, config, resume))
                }
                fn poll(max_records: u32, max_wait_ms: u32) -> ::std::result::Result<__ct::Polled, __ct::ConnectorError> {
                    __SLUICE_STATE.with(|s| $crate::connector::__glue::source_poll::<$connector>(s, max_records, max_wait_ms))
                }
                fn committed(position: ::std::string::String) {
                    __SLUICE_STATE.with(|s| $crate::connector::__glue::source_committed::<$connector>(s, position))
                }
            }
            $crate::__private::bindings::__export_source_connector!(__SluiceExport with_types_in $crate::__private::bindings);
        };
    };
}

/// Exports a [`Sink`] implementation as the component's `sink` interface.
/// Use it once per connector crate.
#[cfg(feature = "sink")]
#[macro_export]
macro_rules! export_sink {
    ($connector:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __SLUICE_STATE: ::std::cell::RefCell<::std::option::Option<$connector>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct __SluiceExport;
            use $crate::__private::bindings::sluice::plugin::connector_types as __ct;
            impl $crate::__private::bindings::exports::sluice::plugin::sink::Guest for __SluiceExport {
                fn open(config: ::std::string::String) -> ::std::result::Result<(), __ct::ConnectorError> {
                    __SLUICE_STATE.with(|s| $crate::connector::__glue::sink_open::<$connector>(s, config))
                }
                fn write(
                    batch: ::std::vec::Vec<u8>,
                    idempotency_keys: ::std::vec::Vec<::std::string::String>,
                ) -> ::std::result::Result<::std::vec::Vec<__ct::Refusal>, __ct::ConnectorError> {
                    __SLUICE_STATE.with(|s| $crate::connector::__glue::sink_write::<$connector>(s, batch, idempotency_keys))
                }
                fn commit() -> ::std::result::Result<(), __ct::ConnectorError> {
                    __SLUICE_STATE.with(|s| $crate::connector::__glue::sink_commit::<$connector>(s))
                }
            }
            $crate::__private::bindings::__export_sink_connector!(__SluiceExport with_types_in $crate::__private::bindings);
        };
    };
}

#[cfg(all(test, feature = "source"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Returns one record encoded in a `Batch` and one in `records`.
    struct Both;

    impl Source for Both {
        fn open(_: Config, _: Option<String>) -> Result<Self, ConnectorError> {
            Ok(Both)
        }

        fn poll(&mut self, _: usize, _: std::time::Duration) -> Result<Polled, ConnectorError> {
            let body = String::from("from the body");
            let mut first = Record::new("s");
            first.set("v", body.as_str());
            let mut batch = Batch::new();
            batch.push(&first);
            let mut second = Record::new("s");
            second.set("v", "owned");
            Ok(Polled {
                batch: Some(batch),
                records: vec![second],
                position: Some("p".into()),
                ..Default::default()
            })
        }
    }

    #[test]
    fn an_encoded_batch_goes_first_then_the_records() {
        let state = RefCell::new(Some(Both));
        let polled = __glue::source_poll::<Both>(&state, 10, 0).unwrap();
        let mut reader = sluice_codec::BatchReader::new(&polled.batch).unwrap();
        let mut values = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            values.push(Record::from_codec(r).get_str("v").unwrap().to_string());
        }
        assert_eq!(values, ["from the body", "owned"]);
        assert_eq!(polled.position.as_deref(), Some("p"));
    }
}
