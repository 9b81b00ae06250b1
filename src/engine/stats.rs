//! Per-worker counters: jobs, busy time, recent job durations and live worker threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub use crate::protocol::rest::WorkerSnapshot;

/// Recent job durations kept for percentiles.
const RECENT: usize = 1024;

#[derive(Debug, Default)]
pub struct WorkerStats {
    pub jobs: AtomicU64,
    pub busy_micros: AtomicU64,
    /// Worker threads running now.
    pub alive: AtomicUsize,
    /// Times a worker caught a panic in its model, answered the job with an error and started
    /// over with fresh model state.
    pub restarts: AtomicU64,
    recent: Mutex<VecDeque<u64>>,
}

/// The nearest-rank percentile `p` (0 to 100) of `sorted` values; `None` when there are none.
/// The one percentile of the crate: worker job times, queue waits, load-run figures.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((p / 100.0) * last as f64).round() as usize])
}

impl WorkerStats {
    pub fn record(&self, took: Duration) {
        let micros = took.as_micros() as u64;
        self.jobs.fetch_add(1, Ordering::Relaxed);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(micros);
    }

    pub fn snapshot(&self) -> WorkerSnapshot {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut seconds: Vec<f64> = recent.iter().map(|&micros| micros as f64 / 1e6).collect();
        drop(recent);
        seconds.sort_by(f64::total_cmp);
        let pct = |p: f64| percentile(&seconds, p * 100.0);
        WorkerSnapshot {
            jobs: self.jobs.load(Ordering::Relaxed),
            busy_seconds: self.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
            alive: self.alive.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            job_seconds_p50: pct(0.5),
            job_seconds_p95: pct(0.95),
        }
    }

    /// Counts a worker thread as alive until the guard drops (also when the thread panics).
    pub fn alive_guard(&self) -> AliveGuard<'_> {
        self.alive.fetch_add(1, Ordering::Relaxed);
        AliveGuard(self)
    }
}

pub struct AliveGuard<'a>(&'a WorkerStats);

impl Drop for AliveGuard<'_> {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_liveness() {
        let stats = WorkerStats::default();
        assert_eq!(stats.snapshot().job_seconds_p50, None);
        for ms in 1..=100 {
            stats.record(Duration::from_millis(ms));
        }
        let s = stats.snapshot();
        assert_eq!(s.jobs, 100);
        assert!(
            (s.job_seconds_p50.unwrap() - 0.051).abs() < 0.002 && (s.job_seconds_p95.unwrap() - 0.095).abs() < 0.002
        );
        {
            let _guard = stats.alive_guard();
            assert_eq!(stats.snapshot().alive, 1);
        }
        assert_eq!(stats.snapshot().alive, 0);
    }
}
