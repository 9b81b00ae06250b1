//! Prometheus metrics: the recorder, the metric descriptions, and the durations recorded where
//! they happen (engine threads, sessions). Totals and gauges are read at scrape time by
//! `http::metrics`, so there is one source of truth for each number. No label takes per-session
//! values.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `_seconds` metric: 10 ms to 30 s.
const BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use; `None` if another recorder was installed.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!("speech_sessions_total", "WebSocket sessions started.");
    describe_counter!("speech_sessions_rejected_total", "Sessions refused: at capacity or at the session limit.");
    describe_gauge!("speech_streams", "Sessions streaming audio now (idle ones left out).");
    describe_gauge!("speech_stream_capacity", "Streams an engine can serve at the target load, at the measured cost.");
    describe_gauge!("speech_ready", "1 while a new stream would be admitted, 0 while at capacity.");
    describe_gauge!("speech_sessions_active", "Sessions open now.");
    describe_counter!("speech_audio_received_seconds_total", Unit::Seconds, "Audio received from clients.");
    describe_counter!("speech_segments_total", "Final segments sent.");
    describe_counter!("speech_errors_total", "Errors sent to clients, by code.");
    describe_gauge!("speech_queue_depth", "Jobs waiting for an engine.");
    describe_gauge!("speech_workers_alive", "Engine worker threads running.");
    describe_counter!("speech_aggregator_finals_total", "Finals by how they met their speakers.");
    describe_histogram!("speech_inference_seconds", Unit::Seconds, "Time an engine spent on one job.");
    describe_counter!(
        "speech_asr_loop_retries_total",
        "Decodes that looked like a repetition loop and were decoded again with beam search."
    );
    describe_counter!(
        "speech_asr_tail_retries_total",
        "Continuations' finals whose decode stopped over 1.5 s before the speech the VAD heard, decoded again with the whole window."
    );
    describe_histogram!("speech_final_latency_seconds", Unit::Seconds, "From the end of an utterance to its final.");
    describe_counter!(
        "speech_worker_busy_seconds_total",
        Unit::Seconds,
        "Time engine workers spent on jobs (whole seconds), by engine."
    );
    describe_counter!("speech_worker_restarts_total", "Panics caught in engine workers, which then started over.");
    describe_gauge!("speech_store_up", "The transcript store: 1 up, 0.5 degraded (writes waiting), 0 down.");
}

/// Fields an error report never carries: what was said, or the audio.
const PRIVATE_FIELDS: &[&str] = &["text", "transcript", "words", "delta", "prompt", "audio", "samples"];

/// Sends error-level logs and panics to the Sentry-compatible endpoint `dsn`, tagged with the
/// session id when there is one, stripped of any field that could hold speech. Keep the guard
/// alive for the life of the process: dropping it flushes what is queued.
pub fn init_error_reports(dsn: &str) -> Result<sentry::ClientInitGuard, String> {
    let dsn: sentry::types::Dsn = dsn.parse().map_err(|e| format!("`telemetry.sentry_dsn` is not a DSN: {e}"))?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(concat!("speech-service@", env!("CARGO_PKG_VERSION")).into());
    options.send_default_pii = false;
    options.before_send = Some(std::sync::Arc::new(|event| Some(scrub(event))));
    Ok(sentry::init(options))
}

fn scrub(mut event: sentry::protocol::Event<'static>) -> sentry::protocol::Event<'static> {
    event.extra.retain(|key, _| !PRIVATE_FIELDS.contains(&key.as_str()));
    for context in event.contexts.values_mut() {
        if let sentry::protocol::Context::Other(fields) = context {
            fields.retain(|key, _| !PRIVATE_FIELDS.contains(&key.as_str()));
            if let Some(id) = fields.get("session_id").and_then(|v| v.as_str()) {
                event.tags.insert("session_id".into(), id.to_owned());
            }
        }
    }
    event
}

/// Sends what the error tracker has queued, waiting at most `timeout`: for a process about to
/// end without running destructors (an abort).
pub fn flush_error_reports(timeout: std::time::Duration) {
    if let Some(client) = sentry::Hub::current().client() {
        client.flush(Some(timeout));
    }
}

/// Records one engine job's duration.
pub fn record_inference(engine: &'static str, kind: &'static str, seconds: f64) {
    metrics::histogram!("speech_inference_seconds", "engine" => engine, "kind" => kind).record(seconds);
}

/// A decode looked like a repetition loop and was decoded again with beam search.
pub fn record_loop_retry() {
    metrics::counter!("speech_asr_loop_retries_total").increment(1);
}

/// A continuation's decode stopped well before its speech ended and was decoded again with the
/// whole encoder window.
pub fn record_tail_retry() {
    metrics::counter!("speech_asr_tail_retries_total").increment(1);
}

/// Records how long a final took from the end of its utterance.
pub fn record_final_latency(seconds: f64) {
    metrics::histogram!("speech_final_latency_seconds").record(seconds);
}

#[cfg(test)]
mod report_tests {
    use super::scrub;
    use sentry::protocol::{Context, Event};

    #[test]
    fn reports_lose_speech_fields_and_gain_the_session_tag() {
        let mut event = Event::default();
        event.extra.insert("text".into(), "and so my fellow Americans".into());
        event.extra.insert("code".into(), "asr_failed".into());
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("session_id".to_owned(), serde_json::json!("abc"));
        fields.insert("transcript".to_owned(), serde_json::json!("ask not"));
        event.contexts.insert("Rust Tracing Fields".into(), Context::Other(fields.into_iter().collect()));
        let event = scrub(event);
        assert!(!event.extra.contains_key("text") && event.extra.contains_key("code"));
        let Some(Context::Other(fields)) = event.contexts.get("Rust Tracing Fields") else { panic!("context kept") };
        assert!(!fields.contains_key("transcript") && fields.contains_key("session_id"));
        assert_eq!(event.tags.get("session_id").map(String::as_str), Some("abc"));
    }
}
