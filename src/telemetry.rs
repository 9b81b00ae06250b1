//! Prometheus metrics. Durations are recorded where they happen (engine threads, sessions);
//! totals and gauges are read from the engines and the session registry at scrape time, so there
//! is one source of truth for each number. No label takes per-session values.

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::http::AppState;

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
    describe_histogram!("speech_final_latency_seconds", Unit::Seconds, "From the end of an utterance to its final.");
}

/// Records one engine job's duration.
pub fn record_inference(engine: &'static str, kind: &'static str, seconds: f64) {
    metrics::histogram!("speech_inference_seconds", "engine" => engine, "kind" => kind).record(seconds);
}

/// Records how long a final took from the end of its utterance.
pub fn record_final_latency(seconds: f64) {
    metrics::histogram!("speech_final_latency_seconds").record(seconds);
}

/// Brings totals and gauges up to date, then renders the exposition text.
pub fn render(state: &AppState) -> String {
    let Some(handle) = handle() else { return String::new() };
    let sessions = state.registry.totals();
    counter!("speech_sessions_total").absolute(sessions.total);
    counter!("speech_sessions_rejected_total").absolute(sessions.rejected);
    gauge!("speech_sessions_active").set(sessions.active as f64);
    counter!("speech_audio_received_seconds_total").absolute(sessions.audio_seconds as u64);
    counter!("speech_segments_total").absolute(sessions.segments);
    for (code, n) in &sessions.errors {
        counter!("speech_errors_total", "code" => code.clone()).absolute(*n);
    }
    gauge!("speech_queue_depth", "engine" => "asr").set(state.asr.queue_depth() as f64);
    gauge!("speech_workers_alive", "engine" => "asr").set(state.asr.stats().worker.snapshot().alive as f64);
    if let Some(d) = &state.diarize {
        gauge!("speech_queue_depth", "engine" => "diarization").set(d.queue_depth() as f64);
        gauge!("speech_workers_alive", "engine" => "diarization").set(d.stats().snapshot().alive as f64);
    }
    let load = state.load_status();
    gauge!("speech_streams").set(load.streams as f64);
    gauge!("speech_stream_capacity", "engine" => "asr").set(load.asr_capacity as f64);
    if state.diarize.is_some() {
        gauge!("speech_stream_capacity", "engine" => "diarization").set(load.diarize_capacity as f64);
    }
    gauge!("speech_ready").set(if load.at_capacity { 0.0 } else { 1.0 });
    let agg = state.aggregator.snapshot();
    for (outcome, n) in [("joined", agg.joined), ("timed_out", agg.timed_out), ("late", agg.late)] {
        counter!("speech_aggregator_finals_total", "outcome" => outcome).absolute(n);
    }
    handle.render()
}
