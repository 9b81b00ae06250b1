//! Supervision of the engine threads: a panic inside a model call is caught, the job in hand
//! is answered with an error (the session reports `asr_failed` for that segment), the worker
//! starts over with fresh model state, and the restart is counted (`/stats/workers`,
//! `/health/detailed`, `speech_worker_restarts_total`). The server and every other session
//! carry on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::stats::WorkerStats;

/// Runs one model call; `None` when it panicked (logged at error level and counted).
pub fn run<T>(engine: &'static str, stats: &WorkerStats, call: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => Some(value),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            stats.restarts.fetch_add(1, Ordering::Relaxed);
            tracing::error!(engine, panic = %what, "engine worker panicked; the job fails and the worker starts over");
            None
        }
    }
}

/// whisper.cpp ends the process on the errors it cannot return (on a GPU: CUDA out of memory, a
/// lost device, a driver error). No worker can survive that; what we can do is say why, in the
/// structured log and to the error tracker, before it happens, instead of a bare line on stderr.
/// Installed once, when the first Whisper model loads.
pub fn report_fatal_model_errors() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    // SAFETY: the callback is a plain function that lives as long as the process.
    INSTALLED.call_once(|| unsafe {
        whisper_rs_sys::ggml_set_abort_callback(Some(on_ggml_abort));
    });
}

extern "C" fn on_ggml_abort(message: *const std::os::raw::c_char) {
    let reason = match message.is_null() {
        true => "no message".into(),
        // SAFETY: ggml passes its own NUL-terminated message buffer, alive for this call.
        false => unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy(),
    };
    tracing::error!(%reason, "whisper.cpp is ending the process; finals already sent are in the store");
    crate::telemetry::flush_error_reports(std::time::Duration::from_secs(2));
}

/// Test-only fault injection, inert unless `SPEECH_TEST_PANIC=ENGINE:N` is set: the Nth job of
/// that engine (`asr` or `diarization`, counting from 1) panics, once; with `ENGINE:N:abort`
/// whisper.cpp's own fatal error path runs instead (what a CUDA failure does), which ends the
/// process. It lets the test suite check supervision and fatal errors on the real binary.
pub fn inject_fault(engine: &str) {
    static PLAN: OnceLock<Option<(String, u64, bool)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let plan = PLAN.get_or_init(|| {
        let value = std::env::var("SPEECH_TEST_PANIC").ok()?;
        let mut parts = value.split(':');
        let (name, n) = (parts.next()?, parts.next()?.parse().ok()?);
        Some((name.to_owned(), n, parts.next() == Some("abort")))
    });
    if let Some((name, n, abort)) = plan {
        if name == engine && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            if *abort {
                let message = c"injected fault (SPEECH_TEST_PANIC): ggml aborts";
                // SAFETY: a format of one %s with a NUL-terminated argument; ggml_abort never returns.
                unsafe { whisper_rs_sys::ggml_abort(c"supervise.rs".as_ptr(), 0, c"%s".as_ptr(), message.as_ptr()) }
            }
            panic!("injected fault (SPEECH_TEST_PANIC) in the {engine} worker");
        }
    }
}
