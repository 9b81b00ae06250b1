//! `GET /metrics`: brings totals and gauges up to date from the engines, the session registry and
//! admission, then renders the Prometheus exposition text (`telemetry` holds the recorder).

use metrics::{counter, gauge};

use super::state::AppState;
use crate::store::StoreState;
use crate::telemetry::handle;

/// Brings totals and gauges up to date, then renders the exposition text. `store` is the
/// store's state, read just before (off the async workers).
pub fn render(state: &AppState, store: Option<StoreState>) -> String {
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
    let asr = state.shared.engines.asr.stats().worker.snapshot();
    gauge!("speech_workers_alive", "engine" => "asr").set(asr.alive as f64);
    // Busy seconds (whole, as counters here are integers): their rate over the live workers is
    // the engine's busy fraction.
    counter!("speech_worker_busy_seconds_total", "engine" => "asr").absolute(asr.busy_seconds as u64);
    counter!("speech_worker_restarts_total", "engine" => "asr").absolute(asr.restarts);
    if let Some(d) = &state.shared.engines.diarize {
        gauge!("speech_queue_depth", "engine" => "diarization").set(d.queue_depth() as f64);
        let diarize = d.stats().snapshot();
        gauge!("speech_workers_alive", "engine" => "diarization").set(diarize.alive as f64);
        counter!("speech_worker_busy_seconds_total", "engine" => "diarization").absolute(diarize.busy_seconds as u64);
        counter!("speech_worker_restarts_total", "engine" => "diarization").absolute(diarize.restarts);
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
    if let Some(store) = store {
        let up = match store {
            StoreState::Up => 1.0,
            StoreState::Degraded => 0.5,
            StoreState::Down => 0.0,
        };
        gauge!("speech_store_up").set(up);
    }
    handle.render()
}
