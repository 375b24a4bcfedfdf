//! The plugin's configuration, as given in the pipeline file.

use serde::de::DeserializeOwned;

/// The `config` table of the transform in the pipeline file, as JSON text.
#[derive(Debug, Clone)]
pub struct Config {
    json: String,
}

impl Config {
    /// Wraps config JSON text (`{}` when the pipeline gives none).
    pub fn new(json: impl Into<String>) -> Self {
        Config { json: json.into() }
    }

    /// The raw JSON text.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// Deserializes the config into your own type. Errors name the key at
    /// fault (`fields.email.case: unknown variant ...`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, InitError> {
        let de = &mut serde_json::Deserializer::from_str(&self.json);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let mut path = e.path().to_string();
            let mut message = e.into_inner().to_string();
            // serde_json appends where in the JSON text it failed: the host
            // made that text, so the position means nothing to the operator.
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            // For an unknown key, the path ends with the key itself.
            if message.starts_with("unknown field") {
                path = match path.rsplit_once('.') {
                    Some((parent, _)) => parent.to_string(),
                    None => ".".into(),
                };
            }
            if path == "." {
                InitError::InvalidConfig(message)
            } else {
                InitError::InvalidConfig(format!("`{path}`: {message}"))
            }
        })
    }
}

/// Why a plugin could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitError {
    /// The config is wrong; say which key and what is expected.
    InvalidConfig(String),
    /// Any other reason.
    Other(String),
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            InitError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for InitError {}
