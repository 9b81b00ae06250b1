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

/// Test-only fault injection, inert unless `SPEECH_TEST_PANIC=ENGINE:N` is set: the Nth job of
/// that engine (`asr` or `diarization`, counting from 1) panics, once. It lets the test suite
/// check supervision on the real binary.
pub fn inject_fault(engine: &str) {
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let plan = PLAN.get_or_init(|| {
        let value = std::env::var("SPEECH_TEST_PANIC").ok()?;
        let (name, n) = value.split_once(':')?;
        Some((name.to_owned(), n.parse().ok()?))
    });
    if let Some((name, n)) = plan {
        if name == engine && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            panic!("injected fault (SPEECH_TEST_PANIC) in the {engine} worker");
        }
    }
}
