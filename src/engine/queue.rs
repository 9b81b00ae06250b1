//! A bounded two-lane job queue: finals first, then partials.
//!
//! Finals are never dropped: a producer waits (with a timeout) for room. Partials are
//! disposable: when their lane is full the request is refused at once.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

struct Lanes<T> {
    finals: VecDeque<T>,
    partials: VecDeque<T>,
    closed: bool,
}

pub struct JobQueue<T> {
    lanes: Mutex<Lanes<T>>,
    work: Condvar,
    room: Notify,
    final_capacity: usize,
    partial_capacity: usize,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    Full,
    Closed,
}

impl<T> JobQueue<T> {
    pub fn new(final_capacity: usize, partial_capacity: usize) -> Self {
        Self {
            lanes: Mutex::new(Lanes { finals: VecDeque::new(), partials: VecDeque::new(), closed: false }),
            work: Condvar::new(),
            room: Notify::new(),
            final_capacity: final_capacity.max(1),
            partial_capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lanes<T>> {
        // A worker that panicked mid-job leaves the lanes consistent: recover the guard.
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Jobs waiting, finals and partials together.
    pub fn depth(&self) -> usize {
        let lanes = self.lock();
        lanes.finals.len() + lanes.partials.len()
    }

    /// Queues a disposable job, or refuses it at once when its lane is full.
    pub fn try_push_partial(&self, job: T) -> Result<(), PushError> {
        let mut lanes = self.lock();
        if lanes.closed {
            return Err(PushError::Closed);
        }
        if lanes.partials.len() >= self.partial_capacity {
            return Err(PushError::Full);
        }
        lanes.partials.push_back(job);
        self.work.notify_one();
        Ok(())
    }

    /// Queues a job that must not be lost, waiting up to `timeout` for room.
    pub async fn push_final(&self, job: T, timeout: Duration) -> Result<(), (PushError, T)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut lanes = self.lock();
                if lanes.closed {
                    return Err((PushError::Closed, job));
                }
                if lanes.finals.len() < self.final_capacity {
                    lanes.finals.push_back(job);
                    self.work.notify_one();
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err((PushError::Full, job));
            }
        }
    }

    /// Blocks a worker thread until a job arrives (finals first) or the queue closes. Wakes up
    /// at least every `tick` so a worker never waits unboundedly on a lost notification.
    pub fn pop_blocking(&self, tick: Duration) -> Option<T> {
        let mut lanes = self.lock();
        loop {
            if let Some(job) = lanes.finals.pop_front() {
                self.room.notify_waiters();
                return Some(job);
            }
            if let Some(job) = lanes.partials.pop_front() {
                return Some(job);
            }
            if lanes.closed {
                return None;
            }
            lanes = self.work.wait_timeout(lanes, tick).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Stops accepting jobs; workers finish what is queued, then see `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finals_jump_ahead_of_partials_and_full_partial_lane_refuses() {
        let q = JobQueue::new(2, 1);
        q.try_push_partial("p1").unwrap();
        assert_eq!(q.try_push_partial("p2"), Err(PushError::Full));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(q.push_final("f1", Duration::from_millis(10))).unwrap();
        assert_eq!(q.pop_blocking(Duration::from_millis(1)), Some("f1"));
        assert_eq!(q.pop_blocking(Duration::from_millis(1)), Some("p1"));
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_final_lane_times_out_and_returns_the_job() {
        let q = JobQueue::new(1, 1);
        q.push_final(1, Duration::from_secs(1)).await.unwrap();
        let err = q.push_final(2, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err, (PushError::Full, 2));
    }

    #[tokio::test]
    async fn a_waiting_final_gets_in_when_a_worker_takes_a_job() {
        let q = std::sync::Arc::new(JobQueue::new(1, 1));
        q.push_final(1, Duration::from_secs(1)).await.unwrap();
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                q.pop_blocking(Duration::from_millis(10))
            })
        };
        q.push_final(2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(worker.join().unwrap(), Some(1));
        q.close();
        assert_eq!(q.pop_blocking(Duration::from_millis(1)), Some(2));
        assert_eq!(q.pop_blocking(Duration::from_millis(1)), None);
    }
}
