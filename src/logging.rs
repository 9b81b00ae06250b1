//! Structured logs with `tracing`: human-readable or JSON lines on stderr, with a filter that a
//! configuration reload can change.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogHandle(reload::Handle<EnvFilter, Registry>);

/// A log filter that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LogFilterError {
    #[error("`{filter}` is not a log filter")]
    Invalid {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// Fuzzing config files found two ways a filter hurts tracing-subscriber: characters beyond
    /// ASCII make it slice inside a character and panic, and span field matchers (`{...}`, each
    /// compiled as a regular expression) can take it 30 s to build from 500 bytes. Filters are
    /// therefore short ASCII without field matchers.
    #[error("`{0}` is not a log filter: only ASCII, at most {MAX_FILTER_LEN} bytes, no span field matchers ({{...}})")]
    Unsafe(String),
    #[error("the log filter could not be replaced")]
    Reload(#[from] reload::Error),
}

/// symphonia logs what it cannot decode at error level; `audio::decode` reports the same as
/// its own error, once, so symphonia's lines are left out.
const QUIET_TARGETS: &str = ",symphonia=off";

/// Longer than any filter a person writes (`speech_service=debug,tower_http=info,info` is 42).
const MAX_FILTER_LEN: usize = 256;

fn parse(filter: &str) -> Result<EnvFilter, LogFilterError> {
    if !filter.is_ascii() || filter.len() > MAX_FILTER_LEN || filter.contains('{') {
        return Err(LogFilterError::Unsafe(filter.to_owned()));
    }
    EnvFilter::try_new(format!("{filter}{QUIET_TARGETS}"))
        .map_err(|source| LogFilterError::Invalid { filter: filter.to_owned(), source })
}

impl LogHandle {
    pub fn set_level(&self, filter: &str) -> Result<(), LogFilterError> {
        Ok(self.0.reload(parse(filter)?)?)
    }
}

/// Installs the global subscriber; `filter` is a `tracing` filter such as `info`.
pub fn init(filter: &str, json: bool) -> LogHandle {
    let filter = parse(filter).unwrap_or_else(|_| EnvFilter::new(format!("info{QUIET_TARGETS}")));
    let (filter, handle) = reload::Layer::new(filter);
    let output = if json {
        fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr).boxed()
    } else {
        // Colour codes only on a terminal: a log file or pipe gets plain text.
        fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).boxed()
    };
    tracing_subscriber::registry().with(filter).with(output).with(error_reports()).init();
    LogHandle(handle)
}

/// Error-level events become error reports (warnings their breadcrumbs) when error tracking is
/// configured (`telemetry::init_error_reports`); without a client they are dropped at once.
fn error_reports<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
    use tracing_subscriber::filter::LevelFilter;
    ErrorLayer::new().with_filter(LevelFilter::ERROR).and_then(BreadcrumbLayer::new().with_filter(LevelFilter::WARN))
}
/// Whether `filter` is a valid log filter; the error says why not.
pub fn valid_filter(filter: &str) -> Result<(), String> {
    parse(filter).map(drop).map_err(|e| chain(&e))
}

/// An error and its causes, outermost first, as one line: how errors are logged.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod filter_tests {
    use super::valid_filter;

    /// Found by fuzzing config files: the first filter made tracing-subscriber slice inside a
    /// character and panic while the configuration was validated; the second (a span field
    /// matcher) took it 30 s to compile.
    #[test]
    fn filters_that_hurt_the_log_library_are_refused_first() {
        let fuzzed = "\t\t\t\t\tI\t\t\t000telemetry1n\u{74c}min_=[0# ers[s";
        assert!(valid_filter(fuzzed).unwrap_err().contains("only ASCII"));
        let slow = format!("[{{={}}}]", "v".repeat(200));
        assert!(valid_filter(&slow).unwrap_err().contains("no span field matchers"));
        assert!(valid_filter(&"a".repeat(300)).is_err(), "too long");
        assert!(valid_filter("speech_service=debug,info").is_ok());
    }
}
