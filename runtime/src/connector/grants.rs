//! What a pipeline grants a connector: outbound HTTP origins, TCP
//! addresses, secrets (and which secret authorises which origin), plus the
//! plain sandbox grants of transforms. Everything else is denied.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::plugin::Grants;

/// `[source.grants]` / `[sink.grants]` of a `wasm` connector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorGrants {
    /// Origins the connector may send HTTP requests to:
    /// `scheme://host[:port]` (`https://api.example.com`,
    /// `http://127.0.0.1:8080`). Paths are not part of an origin.
    #[serde(default)]
    pub http: Vec<String>,
    /// `host:port` pairs the connector may open TCP connections to
    /// (`wasi:sockets`). Names are resolved when the connector starts.
    #[serde(default)]
    pub tcp: Vec<String>,
    /// Secrets by name: `{ env = "VAR" }`, `{ file = "path" }` or a
    /// string (usually `"${VAR}"`).
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Credentials the host adds to every request to an origin, so the
    /// connector never sees them: origin → `{ secret = "name", scheme =
    /// "Bearer" }` (an `Authorization: Bearer <value>` header) or
    /// `{ secret = "name", header = "X-Api-Key" }` (the value as it is).
    #[serde(default)]
    pub auth: BTreeMap<String, AuthSpec>,
    /// A PEM file of CA certificates trusted for HTTPS in addition to the
    /// Mozilla roots (an API behind a private CA), relative to the
    /// pipeline file.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Real clocks (default true for connectors: retries and timestamps).
    #[serde(default = "yes")]
    pub clock: bool,
    /// Real randomness (default true for connectors).
    #[serde(default = "yes")]
    pub random: bool,
    /// These environment variables, with the host's values.
    #[serde(default)]
    pub env: Vec<String>,
    /// These directories, read-only.
    #[serde(default)]
    pub read_dirs: Vec<PathBuf>,
    /// The connector's stdout and stderr go to the host's stderr.
    #[serde(default)]
    pub stdio: bool,
}

fn yes() -> bool {
    true
}

/// Where a secret's value comes from.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SecretSpec {
    /// The value of an environment variable of the host.
    Env {
        /// The variable's name.
        env: String,
    },
    /// The contents of a file (one trailing newline removed).
    File {
        /// The file, relative to the pipeline file.
        file: PathBuf,
    },
    /// The value itself (from `${VAR}` interpolation of the pipeline file).
    Value(String),
}

impl std::fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSpec::Env { env } => write!(f, "env {env}"),
            SecretSpec::File { file } => write!(f, "file {}", file.display()),
            // Never print a value.
            SecretSpec::Value(_) => f.write_str("value ***"),
        }
    }
}

/// A credential the host injects into requests to one origin.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The secret holding the credential.
    pub secret: String,
    /// `Authorization: <scheme> <value>` (`Bearer`, `Basic`, `Token`).
    pub scheme: Option<String>,
    /// Or this header, with the value as it is.
    pub header: Option<String>,
}

/// A granted HTTP origin, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host name or IP literal (IPv6 in brackets).
    pub host: String,
    /// The port (80/443 when not written).
    pub port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is allowed, a path is not).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("`{text}` is not an origin ({e}); write `https://host[:port]`"))?;
        Origin::of_uri(&uri).and_then(|o| match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") | Some("/") => Ok(o),
            Some(p) => Err(format!(
                "`{text}` has a path (`{p}`): grant the origin `{o}`, paths are not part of a grant"
            )),
        })
    }

    /// The origin a request goes to.
    pub fn of_uri(uri: &http::Uri) -> Result<Origin, String> {
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            Some(s) => return Err(format!("scheme `{s}` is not HTTP(S)")),
            None => return Err(format!("`{uri}` has no scheme (http:// or https://)")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("`{uri}` has no host"))?
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        Ok(Origin { scheme, host, port })
    }
}

/// Secrets resolved at start, by name. Debug never shows values.
#[derive(Default, Clone)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.values.keys()).finish()
    }
}

/// Secrets shorter than this are not searched for in text the connector
/// hands back (a one-letter secret would blank out every message).
const REDACT_MIN: usize = 4;

impl Secrets {
    /// Reads every secret the grants name; an error names the secret and
    /// where it should have come from (never its value).
    pub fn resolve(specs: &BTreeMap<String, SecretSpec>, base: &Path) -> Result<Secrets, String> {
        let mut values = BTreeMap::new();
        for (name, spec) in specs {
            let value = match spec {
                SecretSpec::Env { env } => std::env::var(env).map_err(|_| {
                    format!("secret `{name}`: environment variable `{env}` is not set")
                })?,
                SecretSpec::File { file } => {
                    let path = crate::config::resolve(base, file);
                    let mut text = std::fs::read_to_string(&path).map_err(|e| {
                        format!("secret `{name}`: cannot read `{}`: {e}", path.display())
                    })?;
                    if text.ends_with('\n') {
                        text.pop();
                        if text.ends_with('\r') {
                            text.pop();
                        }
                    }
                    text
                }
                SecretSpec::Value(v) => v.clone(),
            };
            if value.is_empty() {
                return Err(format!("secret `{name}` is empty"));
            }
            values.insert(name.clone(), value);
        }
        Ok(Secrets { values })
    }

    /// The value of a secret.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.values() {
            if v.len() >= REDACT_MIN && out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }
}

/// A credential header for one origin.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The header name.
    pub name: http::HeaderName,
    /// Its value (marked sensitive).
    pub value: http::HeaderValue,
}

impl ConnectorGrants {
    /// The sandbox grants shared with transforms.
    pub fn sandbox(&self) -> Grants {
        Grants {
            clock: self.clock,
            random: self.random,
            env: self.env.clone(),
            read_dirs: self.read_dirs.clone(),
            stdio: self.stdio,
        }
    }

    /// Resolves `read_dirs` and secret files against the pipeline's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(ca) = &mut self.tls_ca {
            *ca = crate::config::resolve(base, ca);
        }
        for d in &mut self.read_dirs {
            *d = crate::config::resolve(base, d);
        }
        for spec in self.secrets.values_mut() {
            if let SecretSpec::File { file } = spec {
                *file = crate::config::resolve(base, file);
            }
        }
    }

    /// The granted origins, checked.
    pub fn origins(&self) -> Result<Vec<Origin>, String> {
        self.http
            .iter()
            .map(|o| Origin::parse(o).map_err(|e| format!("`grants.http`: {e}")))
            .collect()
    }

    /// The credential headers by origin, checked against the granted
    /// origins and secrets.
    pub fn credentials(&self, secrets: &Secrets) -> Result<Vec<(Origin, Credential)>, String> {
        let granted = self.origins()?;
        let mut out = Vec::new();
        for (origin, spec) in &self.auth {
            let o = Origin::parse(origin).map_err(|e| format!("`grants.auth`: {e}"))?;
            if !granted.contains(&o) {
                return Err(format!(
                    "`grants.auth` names `{origin}`, which `grants.http` does not grant"
                ));
            }
            let value = secrets.get(&spec.secret).ok_or_else(|| {
                format!(
                    "`grants.auth.\"{origin}\"` uses secret `{}`, which `grants.secrets` does not define",
                    spec.secret
                )
            })?;
            let (name, text) = match (&spec.scheme, &spec.header) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "`grants.auth.\"{origin}\"`: give `scheme` or `header`, not both"
                    ));
                }
                (Some(scheme), None) => (http::header::AUTHORIZATION, format!("{scheme} {value}")),
                (None, Some(h)) => (
                    http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                        format!("`grants.auth.\"{origin}\".header`: `{h}` is not a header name")
                    })?,
                    value.to_string(),
                ),
                (None, None) => (http::header::AUTHORIZATION, format!("Bearer {value}")),
            };
            let mut value = http::HeaderValue::from_str(&text).map_err(|_| {
                format!(
                    "secret `{}` cannot be sent in a header (it holds a line break or a control character)",
                    spec.secret
                )
            })?;
            value.set_sensitive(true);
            out.push((o, Credential { name, value }));
        }
        Ok(out)
    }

    /// The TCP addresses granted, resolved now.
    pub fn tcp_addrs(&self) -> Result<Vec<SocketAddr>, String> {
        let mut out = Vec::new();
        for entry in &self.tcp {
            let addrs = entry
                .to_socket_addrs()
                .map_err(|e| format!("`grants.tcp`: `{entry}`: {e} (write `host:port`)"))?;
            out.extend(addrs);
        }
        Ok(out)
    }

    /// A one-line description for logs and `sluice check` (no secret values).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.http.is_empty() {
            parts.push(format!("http {}", self.http.join(",")));
        }
        if !self.tcp.is_empty() {
            parts.push(format!("tcp {}", self.tcp.join(",")));
        }
        if !self.secrets.is_empty() {
            let names: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
            parts.push(format!("secrets {}", names.join(",")));
        }
        if !self.auth.is_empty() {
            let names: Vec<&str> = self.auth.keys().map(String::as_str).collect();
            parts.push(format!("auth injected for {}", names.join(",")));
        }
        if let Some(ca) = &self.tls_ca {
            parts.push(format!("TLS CA {}", ca.display()));
        }
        let sandbox = self.sandbox().describe();
        if sandbox != "none" {
            parts.push(sandbox);
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_and_paths_refused() {
        let o = Origin::parse("HTTP://LocalHost:8080/").expect("origin");
        assert_eq!(o.to_string(), "http://localhost:8080");
        let o = Origin::parse("https://api.example.com").expect("origin");
        assert_eq!(o.to_string(), "https://api.example.com:443");
        let e = Origin::parse("https://api.example.com/v1").expect_err("path");
        assert!(e.contains("has a path (`/v1`)"), "{e}");
        let e = Origin::parse("ftp://x").expect_err("scheme");
        assert!(e.contains("scheme `ftp`"), "{e}");
    }

    #[test]
    fn secrets_come_from_env_or_file_and_are_redacted() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("tok"), "file-secret-1\n").expect("write");
        let mut specs = BTreeMap::new();
        specs.insert("a".to_string(), SecretSpec::File { file: "tok".into() });
        specs.insert("b".to_string(), SecretSpec::Value("literal-2".into()));
        let s = Secrets::resolve(&specs, dir.path()).expect("resolve");
        assert_eq!(s.get("a"), Some("file-secret-1"));
        assert_eq!(
            s.redact("got file-secret-1 and literal-2 here"),
            "got *** and *** here"
        );
        assert_eq!(format!("{s:?}"), r#"["a", "b"]"#);
        assert_eq!(format!("{:?}", specs["b"]), "value ***");
        specs.insert(
            "c".to_string(),
            SecretSpec::Env {
                env: "SLUICE_TEST_SURELY_UNSET_VAR".into(),
            },
        );
        let e = Secrets::resolve(&specs, dir.path()).expect_err("unset");
        assert_eq!(
            e,
            "secret `c`: environment variable `SLUICE_TEST_SURELY_UNSET_VAR` is not set"
        );
    }

    #[test]
    fn auth_must_name_a_granted_origin_and_a_defined_secret() {
        let mut g = ConnectorGrants {
            http: vec!["http://127.0.0.1:9".into()],
            ..Default::default()
        };
        g.secrets
            .insert("tok".into(), SecretSpec::Value("abcd1234".into()));
        g.auth.insert(
            "http://127.0.0.1:9".into(),
            AuthSpec {
                secret: "tok".into(),
                scheme: Some("Bearer".into()),
                header: None,
            },
        );
        let s = Secrets::resolve(&g.secrets, Path::new(".")).expect("secrets");
        let c = g.credentials(&s).expect("creds");
        assert_eq!(c[0].1.value.to_str().ok(), Some("Bearer abcd1234"));
        g.auth.insert(
            "http://other:1".into(),
            AuthSpec {
                secret: "tok".into(),
                scheme: None,
                header: None,
            },
        );
        let e = g.credentials(&s).expect_err("not granted");
        assert!(e.contains("which `grants.http` does not grant"), "{e}");
    }
}
