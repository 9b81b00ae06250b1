//! Structured logs with `tracing`: human-readable or JSON lines on stderr, with a filter that a
//! configuration reload can change.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogHandle(reload::Handle<EnvFilter, Registry>);

impl LogHandle {
    pub fn set_level(&self, filter: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(filter).map_err(|e| format!("log.level: {e}"))?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber; `filter` is a `tracing` filter such as `info`.
pub fn init(filter: &str, json: bool) -> LogHandle {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output = if json {
        fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    tracing_subscriber::registry().with(filter).with(output).init();
    LogHandle(handle)
}

/// Whether `filter` is a valid log filter.
pub fn valid_filter(filter: &str) -> Result<(), String> {
    EnvFilter::try_new(filter).map(drop).map_err(|e| format!("log.level `{filter}`: {e}"))
}
