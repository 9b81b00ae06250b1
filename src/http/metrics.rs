//! `GET /metrics`: brings totals and gauges up to date from the engines, the session registry and
//! admission, then renders the Prometheus exposition text (`telemetry` holds the recorder).

use metrics::{counter, gauge};

use super::state::AppState;
use crate::telemetry::handle;

/// Brings totals and gauges up to date, then renders the exposition text.
pub fn render(state: &AppState) -> String {
    let Some(handle) = handle() else { return String::new() };
    let sessions = state.shared.registry.totals();
    counter!("speech_sessions_total").absolute(sessions.total);
    counter!("speech_sessions_rejected_total").absolute(sessions.rejected);
    gauge!("speech_sessions_active").set(sessions.active as f64);
    counter!("speech_audio_received_seconds_total").absolute(sessions.audio_seconds as u64);
    counter!("speech_segments_total").absolute(sessions.segments);
    for (code, n) in &sessions.errors {
        counter!("speech_errors_total", "code" => code.clone()).absolute(*n);
    }
    gauge!("speech_queue_depth", "engine" => "asr").set(state.shared.engines.asr.queue_depth() as f64);
    gauge!("speech_workers_alive", "engine" => "asr")
        .set(state.shared.engines.asr.stats().worker.snapshot().alive as f64);
    if let Some(d) = &state.shared.engines.diarize {
        gauge!("speech_queue_depth", "engine" => "diarization").set(d.queue_depth() as f64);
        gauge!("speech_workers_alive", "engine" => "diarization").set(d.stats().snapshot().alive as f64);
    }
    let load = state.load_status();
    gauge!("speech_streams").set(load.streams as f64);
    gauge!("speech_stream_capacity", "engine" => "asr").set(load.asr_capacity as f64);
    if state.shared.engines.diarize.is_some() {
        gauge!("speech_stream_capacity", "engine" => "diarization").set(load.diarize_capacity as f64);
    }
    gauge!("speech_ready").set(if load.at_capacity { 0.0 } else { 1.0 });
    let agg = state.shared.aggregator.snapshot();
    for (outcome, n) in [("joined", agg.joined), ("timed_out", agg.timed_out), ("late", agg.late)] {
        counter!("speech_aggregator_finals_total", "outcome" => outcome).absolute(n);
    }
    handle.render()
}
