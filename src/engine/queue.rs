//! A bounded two-lane job queue: finals first, then partials.
//!
//! Finals are never dropped: a producer waits (with a timeout) for room. Partials are
//! disposable: when their lane is full the request is refused at once. Within a lane the job
//! with the smallest key goes first (ties in arrival order): sessions key finals by when their
//! audio was due in real time, so a client sending faster than real time cannot push ahead of
//! live ones, and partials by when their session last had one, so every session gets its turn.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// A queued job with its ordering key and the ticket that names it.
struct Entry<T> {
    key: u64,
    ticket: u64,
    /// A partial: counts against the partial slots (speculative finals do not).
    limited: bool,
    job: T,
}

struct Lanes<T> {
    finals: Vec<Entry<T>>,
    partials: Vec<Entry<T>>,
    closed: bool,
    next_ticket: u64,
    /// Partial-lane jobs being worked on now.
    partials_running: usize,
}

impl<T> Lanes<T> {
    fn entry(&mut self, key: u64, limited: bool, job: T) -> Entry<T> {
        self.next_ticket += 1;
        Entry { key, ticket: self.next_ticket, limited, job }
    }
}

/// Removes the job with the smallest key, the earliest queued among equals, skipping those that
/// `needs_slot` while `slots_full`. Says whether the job taken needs a slot.
fn take_first<T>(
    lane: &mut Vec<Entry<T>>,
    slots_full: bool,
    needs_slot: impl Fn(&Entry<T>) -> bool,
) -> Option<(T, bool)> {
    let candidates = lane.iter().enumerate().filter(|(_, e)| !(slots_full && needs_slot(e)));
    let index = candidates.min_by_key(|(_, e)| e.key).map(|(i, _)| i)?;
    let slot = needs_slot(&lane[index]);
    Some((lane.remove(index).job, slot))
}

pub struct JobQueue<T> {
    lanes: Mutex<Lanes<T>>,
    work: Condvar,
    room: Notify,
    final_capacity: usize,
    partial_capacity: usize,
    /// At most this many workers take partial-lane jobs at once, so the others are free the
    /// moment a final arrives.
    partial_slots: usize,
}

/// Held while a worker runs a partial-lane job; gives the slot back when dropped.
pub struct PartialSlot<'q, T> {
    queue: Option<&'q JobQueue<T>>,
}

impl<T> Drop for PartialSlot<'_, T> {
    fn drop(&mut self) {
        if let Some(queue) = self.queue {
            queue.lock().partials_running -= 1;
            queue.work.notify_one();
        }
    }
}

/// Milliseconds since the first call in this process: the clock that queue keys are read on.
pub fn clock_ms() -> u64 {
    clock_ms_at(std::time::Instant::now())
}

/// The queue clock's reading at `at` (0 for instants before the clock started).
pub fn clock_ms_at(at: std::time::Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    at.saturating_duration_since(*EPOCH.get_or_init(std::time::Instant::now)).as_millis() as u64
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
            lanes: Mutex::new(Lanes {
                finals: Vec::new(),
                partials: Vec::new(),
                closed: false,
                next_ticket: 0,
                partials_running: 0,
            }),
            work: Condvar::new(),
            room: Notify::new(),
            final_capacity: final_capacity.max(1),
            partial_capacity,
            partial_slots: usize::MAX,
        }
    }

    /// Limits how many partial-lane jobs run at once (at least one).
    pub fn with_partial_slots(mut self, slots: usize) -> Self {
        self.partial_slots = slots.max(1);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Lanes<T>> {
        // A worker that panicked mid-job leaves the lanes consistent: recover the guard.
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Finals waiting.
    pub fn final_depth(&self) -> usize {
        self.lock().finals.len()
    }

    /// Jobs waiting, finals and partials together.
    pub fn depth(&self) -> usize {
        let lanes = self.lock();
        lanes.finals.len() + lanes.partials.len()
    }

    /// Queues a disposable job, or refuses it at once when its lane is full. The ticket lets
    /// [`promote`](Self::promote) move it to the final lane later.
    pub fn try_push_partial(&self, key: u64, job: T) -> Result<u64, PushError> {
        self.try_push_disposable(key, true, job)
    }

    /// Like a partial, but ahead of every partial and not held back by the partial slots.
    pub fn try_push_speculative(&self, job: T) -> Result<u64, PushError> {
        self.try_push_disposable(0, false, job)
    }

    fn try_push_disposable(&self, key: u64, limited: bool, job: T) -> Result<u64, PushError> {
        let mut lanes = self.lock();
        if lanes.closed {
            return Err(PushError::Closed);
        }
        if lanes.partials.len() >= self.partial_capacity {
            return Err(PushError::Full);
        }
        let entry = lanes.entry(key, limited, job);
        let ticket = entry.ticket;
        lanes.partials.push(entry);
        self.work.notify_one();
        Ok(ticket)
    }

    /// Queues a job that must not be lost, waiting up to `timeout` for room.
    pub async fn push_final(&self, key: u64, job: T, timeout: Duration) -> Result<(), (PushError, T)> {
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
                    let entry = lanes.entry(key, false, job);
                    lanes.finals.push(entry);
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
    /// at least every `tick` so a worker never waits unboundedly on a lost notification. Keep
    /// the slot until the job is done.
    pub fn pop_blocking(&self, tick: Duration) -> Option<(T, PartialSlot<'_, T>)> {
        let mut lanes = self.lock();
        loop {
            let slots_full = lanes.partials_running >= self.partial_slots;
            // A final whose key lies ahead of the clock (a client sending faster than real time)
            // needs a slot like a partial, so such clients never hold every worker. Finals with
            // smaller keys are never early when a larger one is not, so order is kept.
            let now = clock_ms();
            let taken = take_first(&mut lanes.finals, slots_full, |e| e.key > now);
            if taken.is_some() {
                self.room.notify_waiters();
            }
            if let Some((job, needs_slot)) =
                taken.or_else(|| take_first(&mut lanes.partials, slots_full, |e| e.limited))
            {
                lanes.partials_running += usize::from(needs_slot);
                return Some((job, PartialSlot { queue: needs_slot.then_some(self) }));
            }
            if lanes.closed {
                return None;
            }
            lanes = self.work.wait_timeout(lanes, tick).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Moves a job still waiting in the partial lane to the final lane with `key`: the job has
    /// become one that must not be lost. `false` when it is no longer waiting (a worker took it).
    /// The final lane may briefly hold one job over its capacity this way.
    pub fn promote(&self, ticket: u64, key: u64) -> bool {
        let mut lanes = self.lock();
        let Some(index) = lanes.partials.iter().position(|e| e.ticket == ticket) else { return false };
        let entry = lanes.partials.remove(index);
        lanes.finals.push(Entry { key, limited: false, ..entry });
        true
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

    fn pop<T>(q: &JobQueue<T>) -> Option<T> {
        q.pop_blocking(Duration::from_millis(1)).map(|(job, _slot)| job)
    }

    #[test]
    fn partial_slots_keep_workers_free_for_finals() {
        let q = JobQueue::new(4, 4).with_partial_slots(1);
        q.try_push_partial(0, "p1").unwrap();
        q.try_push_partial(0, "p2").unwrap();
        let (first, slot) = q.pop_blocking(Duration::from_millis(1)).unwrap();
        assert_eq!(first, "p1");
        q.try_push_speculative("speculative").unwrap();
        assert_eq!(pop(&q), Some("speculative"), "speculative finals need no slot");
        let second_worker = std::thread::scope(|scope| {
            let waiting = scope.spawn(|| pop(&q));
            std::thread::sleep(Duration::from_millis(30));
            assert!(!waiting.is_finished(), "the one partial slot is taken: p2 waits");
            drop(slot);
            waiting.join().unwrap()
        });
        assert_eq!(second_worker, Some("p2"));
    }

    #[test]
    fn finals_jump_ahead_of_partials_and_full_partial_lane_refuses() {
        let q = JobQueue::new(2, 1);
        let p1 = q.try_push_partial(0, "p1").unwrap();
        assert_eq!(q.try_push_partial(0, "p2"), Err(PushError::Full));
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(q.push_final(0, "f1", Duration::from_millis(10))).unwrap();
        assert_eq!(pop(&q), Some("f1"));
        assert_eq!(pop(&q), Some("p1"));
        assert_eq!(q.depth(), 0);
        assert!(!q.promote(p1, 0), "a job a worker took cannot be promoted");
    }

    #[test]
    fn smallest_key_first_and_arrival_order_among_equals() {
        let q = JobQueue::new(8, 8);
        for (key, job) in [(5, "late-a"), (3, "early"), (5, "late-b")] {
            q.try_push_partial(key, job).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let now = clock_ms();
        rt.block_on(q.push_final(now + 60_000, "final-fast-client", Duration::from_millis(10))).unwrap();
        rt.block_on(q.push_final(now, "final-live", Duration::from_millis(10))).unwrap();
        let order: Vec<_> = (0..5).map_while(|_| pop(&q)).collect();
        assert_eq!(order, ["final-live", "final-fast-client", "early", "late-a", "late-b"]);
    }

    #[test]
    fn finals_ahead_of_real_time_take_a_partial_slot() {
        let q = JobQueue::new(4, 4).with_partial_slots(1);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let ahead = clock_ms() + 60_000;
        rt.block_on(q.push_final(ahead, "early-1", Duration::from_millis(10))).unwrap();
        rt.block_on(q.push_final(ahead, "early-2", Duration::from_millis(10))).unwrap();
        let (first, slot) = q.pop_blocking(Duration::from_millis(1)).unwrap();
        assert_eq!(first, "early-1");
        rt.block_on(q.push_final(clock_ms(), "live", Duration::from_millis(10))).unwrap();
        assert_eq!(pop(&q), Some("live"), "a live final needs no slot");
        drop(slot);
        assert_eq!(pop(&q), Some("early-2"));
    }

    #[test]
    fn a_promoted_job_goes_with_the_finals() {
        let q = JobQueue::new(4, 4);
        q.try_push_partial(0, "partial").unwrap();
        let speculative = q.try_push_partial(0, "speculative").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(q.push_final(7, "final", Duration::from_millis(10))).unwrap();
        assert!(q.promote(speculative, 3));
        let order: Vec<_> = (0..3).map_while(|_| pop(&q)).collect();
        assert_eq!(order, ["speculative", "final", "partial"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_final_lane_times_out_and_returns_the_job() {
        let q = JobQueue::new(1, 1);
        q.push_final(0, 1, Duration::from_secs(1)).await.unwrap();
        let err = q.push_final(0, 2, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err, (PushError::Full, 2));
    }

    #[tokio::test]
    async fn a_waiting_final_gets_in_when_a_worker_takes_a_job() {
        let q = std::sync::Arc::new(JobQueue::new(1, 1));
        q.push_final(0, 1, Duration::from_secs(1)).await.unwrap();
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                q.pop_blocking(Duration::from_millis(10)).map(|(job, _)| job)
            })
        };
        q.push_final(0, 2, Duration::from_secs(5)).await.unwrap();
        assert_eq!(worker.join().unwrap(), Some(1));
        q.close();
        assert_eq!(pop(&q), Some(2));
        assert_eq!(pop(&q), None);
    }
}
