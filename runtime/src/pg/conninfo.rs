//! Connection settings completed as libpq completes them: what the `url`
//! leaves out comes from the environment variables PostgreSQL users set
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`,
//! `PGCONNECT_TIMEOUT`, `PGAPPNAME`) and from the password file
//! (`PGPASSFILE`, default `~/.pgpass`). The `url` always wins.
//!
//! The replication connection goes through libpq itself, which reads the
//! same variables and file; this module makes the plain connections
//! (snapshot, sink, `verify`, lag) agree with it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::Host;

/// Where the environment comes from (the process environment, or a map in
/// tests).
pub trait Env {
    /// The value of `name`, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// How a connection uses TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// TLS if the server offers it, without checking its certificate
    /// (libpq's default; also `allow`).
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS, and the server's certificate must be signed by the CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

/// TLS settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`: the CA certificates (PEM) that sign the server's.
    pub root_cert: Option<std::path::PathBuf>,
}

/// A connection's settings: the client config and its TLS settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Host, port, user, password, database...
    pub config: postgres::Config,
    /// TLS.
    pub tls: Tls,
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL query
/// or `key=value` form): the client library knows only some modes, and
/// Sluice applies them itself. Returns the rest and the two values.
pub fn take_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let mut mode = None;
    let mut root = None;
    let mut take = |k: &str, v: &str| match k {
        "sslmode" => {
            mode = Some(v.to_string());
            true
        }
        "sslrootcert" => {
            root = Some(v.to_string());
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, v)
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        url.split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k.trim(), v.trim().trim_matches('\''))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (rest, mode, root)
}

/// The settings of `url` completed from `env` and the password file.
pub fn complete(url: &str, env: &dyn Env) -> Result<Settings, String> {
    let (url, mode, root) = take_tls_params(url);
    let mode = mode.or_else(|| env.var("PGSSLMODE"));
    let tls = Tls {
        mode: match mode.as_deref() {
            None => SslMode::Prefer,
            Some(m) => ssl_mode(m)?,
        },
        root_cert: root
            .or_else(|| env.var("PGSSLROOTCERT"))
            .map(Into::into)
            .or_else(|| {
                // libpq's default place for the CA of verify-ca / verify-full.
                env.var("HOME")
                    .map(|h| Path::new(&h).join(".postgresql/root.crt"))
                    .filter(|p| p.is_file())
            }),
    };
    let url = url.as_str();
    let mut config = postgres::Config::from_str(url)
        .map_err(|e| format!("`url` is not a PostgreSQL connection string: {e}"))?;
    if config.get_hosts().is_empty() {
        let hosts = env.var("PGHOST").unwrap_or_else(|| "localhost".into());
        for h in hosts.split(',') {
            if h.starts_with('/') {
                config.host_path(h);
            } else {
                config.host(h);
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(p) = env.var("PGPORT")
    {
        let port = p
            .parse::<u16>()
            .map_err(|_| format!("`PGPORT` is `{p}`, not a port number"))?;
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = env
            .var("PGUSER")
            .or_else(|| env.var("USER"))
            .or_else(|| env.var("LOGNAME"))
            .ok_or("the `url` names no user and neither `PGUSER` nor `USER` is set")?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env
            .var("PGDATABASE")
            .or_else(|| config.get_user().map(str::to_string));
        if let Some(db) = db {
            config.dbname(&db);
        }
    }
    if config.get_connect_timeout().is_none()
        && let Some(t) = env.var("PGCONNECT_TIMEOUT")
        && let Ok(secs) = t.parse::<u64>()
        && secs > 0
    {
        config.connect_timeout(Duration::from_secs(secs.max(2)));
    }
    config.ssl_mode(match tls.mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            postgres::config::SslMode::Require
        }
    });
    if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyFull) && tls.root_cert.is_none() {
        return Err(
            "`sslmode` verify-ca / verify-full needs the CA's certificate: set `sslrootcert=FILE` in `url` (or `PGSSLROOTCERT`, or put it in ~/.postgresql/root.crt)"
                .into(),
        );
    }
    if config.get_password().is_none() {
        if let Some(p) = env.var("PGPASSWORD") {
            config.password(p);
        } else if let Some(p) = from_password_file(&config, env) {
            config.password(p);
        }
    }
    Ok(Settings { config, tls })
}

fn ssl_mode(mode: &str) -> Result<SslMode, String> {
    match mode {
        "disable" => Ok(SslMode::Disable),
        "allow" | "prefer" => Ok(SslMode::Prefer),
        "require" => Ok(SslMode::Require),
        "verify-ca" => Ok(SslMode::VerifyCa),
        "verify-full" => Ok(SslMode::VerifyFull),
        other => Err(format!(
            "`sslmode` is `{other}`: expected disable, allow, prefer, require, verify-ca or verify-full"
        )),
    }
}

/// The password file: `PGPASSFILE`, else `~/.pgpass`.
fn password_file(env: &dyn Env) -> Option<PathBuf> {
    env.var("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".pgpass")))
}

/// The password the password file gives for this connection, if any.
/// Like libpq, a file that others may read is ignored (with a warning).
fn from_password_file(config: &postgres::Config, env: &dyn Env) -> Option<String> {
    let path = password_file(env)?;
    let meta = std::fs::metadata(&path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "password file has group or world access; permissions should be u=rw (0600) or less: it is ignored, as libpq ignores it");
            return None;
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        // libpq matches a socket connection as `localhost`.
        Some(Host::Unix(_)) | None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().unwrap_or_default();
    let user = config.get_user().unwrap_or_default();
    lookup(&text, [&host, &port, db, user])
}

/// The password of the first line of a password file whose fields match
/// `want` (host, port, database, user); `*` matches anything.
pub fn lookup(text: &str, want: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = want.iter().zip(&fields).all(|(w, f)| f == "*" || f == w);
            matches.then(|| fields[4].clone())
        })
}

/// Splits a password file line at unescaped `:` (`\:` and `\\` are a
/// literal colon and backslash); the fifth field keeps any further colons.
fn split_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' if out.len() < 5 => out.push(String::new()),
            c => {
                // A backslash takes the next character literally.
                let c = if c == '\\' { chars.next() } else { Some(c) };
                if let (Some(c), Some(field)) = (c, out.last_mut()) {
                    field.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Vars(HashMap<&'static str, String>);

    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&'static str, &str)]) -> Vars {
        Vars(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    #[test]
    fn pgpassword_fills_a_url_without_a_password() {
        let c = complete(
            "postgres://sluice@127.0.0.1:5433/legacy",
            &env(&[("PGPASSWORD", "s3cret")]),
        )
        .unwrap()
        .config;
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn the_url_wins_over_the_environment() {
        let c = complete(
            "postgres://u:inurl@h:1/db?sslmode=disable",
            &env(&[
                ("PGPASSWORD", "env"),
                ("PGUSER", "other"),
                ("PGHOST", "elsewhere"),
                ("PGSSLMODE", "require"),
            ]),
        )
        .unwrap();
        assert_eq!(c.tls.mode, SslMode::Disable);
        let c = c.config;
        assert_eq!(c.get_password(), Some(&b"inurl"[..]));
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_hosts(), &[Host::Tcp("h".into())]);
    }

    #[test]
    fn host_port_user_and_database_come_from_the_environment() {
        let c = complete(
            "",
            &env(&[
                ("PGHOST", "db.local"),
                ("PGPORT", "6543"),
                ("PGUSER", "app"),
                ("PGDATABASE", "crm"),
                ("PGSSLMODE", "require"),
            ]),
        )
        .unwrap();
        assert_eq!(c.tls.mode, SslMode::Require);
        let c = c.config;
        assert_eq!(c.get_hosts(), &[Host::Tcp("db.local".into())]);
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_dbname(), Some("crm"));
        let e = complete("", &env(&[("PGPORT", "x"), ("USER", "me")])).unwrap_err();
        assert!(e.contains("`PGPORT` is `x`"), "{e}");
    }

    #[test]
    fn the_password_file_is_matched_field_by_field_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:*:app:wrong\n\
                    db.local:6543:crm:app:right\\:colon\n\
                    *:*:*:app:fallback\n";
        assert_eq!(
            lookup(text, ["db.local", "6543", "crm", "app"]).as_deref(),
            Some("right:colon")
        );
        assert_eq!(
            lookup(text, ["x", "1", "y", "app"]).as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup(text, ["x", "1", "y", "nobody"]), None);
    }

    #[test]
    fn a_password_file_is_read_unless_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "127.0.0.1:5433:legacy:sluice:from-file\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let vars = env(&[("PGPASSFILE", path.to_str().unwrap())]);
        let url = "postgres://sluice@127.0.0.1:5433/legacy";
        let c = complete(url, &vars).unwrap().config;
        assert_eq!(c.get_password(), Some(&b"from-file"[..]));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(complete(url, &vars).unwrap().config.get_password(), None);
    }

    #[test]
    fn tls_settings_are_taken_out_of_the_url_in_both_forms() {
        let (rest, mode, root) = take_tls_params(
            "postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=/ca.pem",
        );
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(
            (mode.as_deref(), root.as_deref()),
            (Some("verify-full"), Some("/ca.pem"))
        );
        let (rest, mode, _) = take_tls_params("host=h user=u sslmode=require dbname=d");
        assert_eq!(rest, "host=h user=u dbname=d");
        assert_eq!(mode.as_deref(), Some("require"));
        let s = complete(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=/ca.pem",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(s.tls.mode, SslMode::VerifyCa);
        assert_eq!(s.config.get_ssl_mode(), postgres::config::SslMode::Require);
        let e = complete("postgres://u@h/db?sslmode=verify-full", &env(&[])).unwrap_err();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = complete("postgres://u@h/db?sslmode=sometimes", &env(&[])).unwrap_err();
        assert!(e.contains("`sslmode` is `sometimes`"), "{e}");
        // libpq's default: TLS when offered.
        assert_eq!(
            complete("postgres://u@h/db", &env(&[])).unwrap().tls.mode,
            SslMode::Prefer
        );
    }
}
