//! Where the configuration comes from, each source overriding the one before: defaults, a TOML
//! file, environment variables (`SPEECH_SECTION__KEY`, and the short `SPEECH_HOST`,
//! `SPEECH_PORT`, `SPEECH_MODEL`, `SPEECH_MODELS_DIR`, `SPEECH_DEVICE`), then command-line flags. The result is
//! validated; every error names the setting.

use std::path::Path;

use toml::{Table, Value};

use super::Config;

/// Environment short forms and the settings they stand for.
const SHORT_FORMS: &[(&str, &str, &str)] = &[
    ("SPEECH_HOST", "server", "host"),
    ("SPEECH_PORT", "server", "port"),
    ("SPEECH_MODEL", "models", "whisper"),
    ("SPEECH_MODELS_DIR", "models", "dir"),
    ("SPEECH_DEVICE", "engine", "device"),
    ("SPEECH_DATA_DIR", "store", "data_dir"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The TOML error names the setting (and the line, for a file that is not TOML), so it is
    /// part of the message. `origin` is `config file PATH`, or `the environment` without one.
    #[error("{origin}: {error}")]
    Parse { origin: String, error: toml::de::Error },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(#[from] crate::domain::InvalidSetting),
    #[error("cannot read auth.api_keys_file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The keys in a key file: one per line, blank lines and `#` comments skipped.
fn keys_in(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).map(str::to_owned)
}

/// Adds the keys of `auth.api_keys_file`, if set, to the inline ones.
fn read_key_file(config: &mut Config) -> Result<(), ConfigError> {
    let Some(path) = config.auth.api_keys_file.clone() else { return Ok(()) };
    let text = std::fs::read_to_string(&path)
        .map_err(|source| ConfigError::KeyFile { path: path.display().to_string(), source })?;
    config.auth.api_keys.extend(keys_in(&text));
    Ok(())
}

/// A value from the environment as TOML would read it: numbers and booleans as such, the rest
/// as strings.
fn env_value(raw: &str) -> Value {
    raw.parse::<i64>()
        .map(Value::Integer)
        .or_else(|_| raw.parse::<f64>().map(Value::Float))
        .or_else(|_| raw.parse::<bool>().map(Value::Boolean))
        .unwrap_or_else(|_| Value::String(raw.to_owned()))
}

fn set(table: &mut Table, section: &str, key: &str, value: Value) -> Result<(), String> {
    let entry = table.entry(section.to_owned()).or_insert_with(|| Value::Table(Table::new()));
    let Value::Table(section_table) = entry else { return Err(format!("`{section}` is not a section")) };
    section_table.insert(key.to_owned(), value);
    Ok(())
}

/// Applies `SPEECH_SECTION__KEY` variables (and the short forms) from `vars` to `table`: which
/// setting (`section.key`) each variable set.
fn apply_env(
    table: &mut Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, raw) in vars {
        let target = match SHORT_FORMS.iter().find(|(short, _, _)| *short == name) {
            Some((_, section, key)) => Some((section.to_string(), key.to_string())),
            None => name
                .strip_prefix("SPEECH_")
                .and_then(|rest| rest.split_once("__"))
                .map(|(s, k)| (s.to_lowercase(), k.to_lowercase())),
        };
        let Some((section, key)) = target else { continue };
        // Paths and model names stay strings even when they look like numbers.
        let value = match key.as_str() {
            "dir" | "data_dir" | "whisper" | "host" | "api_keys_file" => Value::String(raw.clone()),
            // A list in one variable: comma-separated.
            "api_keys" => Value::Array(raw.split(',').map(|k| Value::String(k.trim().to_owned())).collect()),
            _ => env_value(&raw),
        };
        set(table, &section, &key, value).map_err(|message| ConfigError::Env { name: name.clone(), message })?;
        applied.push((format!("{section}.{key}"), name));
    }
    Ok(applied)
}

/// Builds the configuration from an optional file and the environment `vars`.
pub fn load_from(file: Option<&Path>, vars: impl Iterator<Item = (String, String)>) -> Result<Config, ConfigError> {
    let (mut table, origin) = match file {
        Some(path) => {
            let name = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
            let origin = format!("config file {name}");
            let table = text.parse::<Table>().map_err(|error| ConfigError::Parse { origin: origin.clone(), error })?;
            (table, origin)
        }
        None => (Table::new(), "the environment".to_owned()),
    };
    let from_env = apply_env(&mut table, vars)?;
    // A bad value from a variable is that variable's error, even beside a file.
    let mut config =
        from_table(table).map_err(|(setting, error)| match from_env.iter().find(|(s, _)| *s == setting) {
            Some((_, name)) => ConfigError::Env { name: name.clone(), message: error.message().to_owned() },
            None => ConfigError::Parse { origin, error },
        })?;
    read_key_file(&mut config)?;
    Ok(config)
}

/// The configuration a merged table holds. Its values no longer know their line in the file
/// (and some came from the environment), so an error names the setting by its path instead
/// (`server.port: invalid type: string "high", expected u16`), and comes with that path, for
/// the caller to tell which variable set it.
fn from_table(table: Table) -> Result<Config, (String, toml::de::Error)> {
    serde_path_to_error::deserialize(Value::Table(table)).map_err(|error| {
        let path = error.path().to_string();
        let error = error.into_inner();
        let message = if path == "." { error.message().to_owned() } else { format!("{path}: {}", error.message()) };
        (path, <toml::de::Error as serde::de::Error>::custom(message))
    })
}

/// The configuration from `file` and this process's environment.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    load_from(file, std::env::vars())
}

/// The effective configuration as TOML, with secrets redacted.
pub fn show(config: &Config) -> String {
    let mut shown = config.clone();
    shown.redact_secrets();
    toml::to_string_pretty(&shown).expect("the configuration always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    /// A file of its own for each call: tests run in parallel, and each removes its files.
    fn write(text: &str) -> std::path::PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("speech-config-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn file_then_environment_then_short_forms() {
        let path = write("[server]\nport = 9000\nhost = \"0.0.0.0\"\n[vad]\nthreshold = 0.6\n");
        let c = load_from(Some(&path), vars(&[])).unwrap();
        assert_eq!((c.server.port, c.server.host.as_str(), c.vad.threshold), (9000, "0.0.0.0", 0.6));
        let c = load_from(Some(&path), vars(&[("SPEECH_SERVER__PORT", "9100"), ("SPEECH_LIMITS__MAX_SESSIONS", "3")]))
            .unwrap();
        assert_eq!((c.server.port, c.limits.max_sessions), (9100, 3));
        let c = load_from(Some(&path), vars(&[("SPEECH_PORT", "9200"), ("SPEECH_MODELS_DIR", "/m")])).unwrap();
        assert_eq!((c.server.port, c.models.dir.to_str()), (9200, Some("/m")));
        assert_eq!(load_from(None, vars(&[("PATH", "/bin")])).unwrap().server.port, 8000, "defaults");
        let c = load_from(None, vars(&[("SPEECH_AUTH__API_KEYS", "first-key-1, second-key-2")])).unwrap();
        assert_eq!(c.auth.api_keys, ["first-key-1", "second-key-2"]);
        assert!(show(&c).contains("<redacted>") && !show(&c).contains("first-key-1"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn errors_name_the_setting() {
        let path = write("[server]\nport = \"high\"\n");
        let err = load_from(Some(&path), vars(&[])).unwrap_err().to_string();
        assert!(err.contains("server.port: invalid type"), "{err}");
        std::fs::remove_file(path).unwrap();
        let err = load_from(None, vars(&[("SPEECH_SERVER__PROT", "1")])).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
        let path = write("[server\n");
        assert!(matches!(load_from(Some(&path), vars(&[])), Err(ConfigError::Parse { .. })));
        std::fs::remove_file(path).unwrap();
        let err = load_from(None, vars(&[("SPEECH_LIMITS__MAX_SESSIONS", "-1")])).unwrap_err().to_string();
        assert!(err.contains("limits.max_sessions: invalid value"), "{err}");
        let err = load_from(None, vars(&[("SPEECH_VAD__THRESHOLD", "high")])).unwrap_err().to_string();
        assert!(err.contains("vad.threshold: invalid type: string \"high\""), "{err}");
        // Beside a file, a variable's bad value is named as the variable's.
        let path = write("[server]\nport = 9000\n");
        let err = load_from(Some(&path), vars(&[("SPEECH_PORT", "high")])).unwrap_err();
        assert!(matches!(&err, ConfigError::Env { name, .. } if name == "SPEECH_PORT"), "{err}");
        assert!(err.to_string().contains("server.port: invalid type"), "{err}");
        let c = load_from(Some(&path), vars(&[("SPEECH_VAD__THRESHOLD", "0.5")])).unwrap();
        assert_eq!(c.vad.threshold, 0.5);
        std::fs::write(&path, "[server]\nport = \"high\"\n").unwrap();
        let err = load_from(Some(&path), vars(&[("SPEECH_VAD__THRESHOLD", "0.5")])).unwrap_err();
        assert!(matches!(&err, ConfigError::Parse { origin, .. } if origin.starts_with("config file")), "{err}");
        std::fs::remove_file(path).unwrap();
        let host = load_from(None, vars(&[("SPEECH_SERVER__HOST", "0.0.0.0:8000")])).unwrap().validate().unwrap_err();
        assert_eq!(host.setting, "server.host", "{host}");
    }

    #[test]
    fn key_file_adds_keys_and_its_absence_is_an_error() {
        let keys = write("# rotated 2026-11\nfrom-file-key-1\n\n  from-file-key-2  \n");
        let name = keys.display().to_string();
        let c =
            load_from(None, vars(&[("SPEECH_AUTH__API_KEYS", "inline-key-1"), ("SPEECH_AUTH__API_KEYS_FILE", &name)]))
                .unwrap();
        assert_eq!(c.auth.api_keys, ["inline-key-1", "from-file-key-1", "from-file-key-2"]);
        std::fs::remove_file(keys).unwrap();
        let missing = load_from(None, vars(&[("SPEECH_AUTH__API_KEYS_FILE", "/nonexistent/keys")])).unwrap_err();
        assert!(matches!(missing, ConfigError::KeyFile { .. }), "{missing}");
        assert!(missing.to_string().contains("/nonexistent/keys"), "{missing}");
    }
}
