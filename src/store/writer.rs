//! The writer thread both stores share: a bounded queue that never blocks the caller, a named
//! thread that drains it, and a close that stops the queue and waits for what is in it.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::domain::Segment;

/// A write names the session it belongs to, for the log when it cannot be queued.
pub trait SessionWrite {
    fn session_id(&self) -> &str;
}

/// What a store's writer thread applies, in the order the sessions made them. `S` is the
/// store's session record.
pub enum Write<S> {
    /// A session opened: recorded as live.
    Begin(S),
    /// A final was sent; the session's audio so far comes along.
    Append { id: String, segment: Segment, audio_seconds: f64 },
    /// The session ended: its record and every segment, as they finally are.
    End(S),
}

impl<S: SessionWrite> SessionWrite for Write<S> {
    fn session_id(&self) -> &str {
        match self {
            Self::Begin(s) | Self::End(s) => s.session_id(),
            Self::Append { id, .. } => id,
        }
    }
}

/// Applies `batch` in one go; when that fails and `retry_singly` accepts the error (the database
/// refused a write, rather than going away), applies each write on its own, so one bad write
/// does not take the others with it: each refused one is logged and given up. Other errors are
/// returned for the caller to retry the whole batch.
pub fn apply_batch<W: SessionWrite, E: std::error::Error>(
    batch: &[W],
    mut apply: impl FnMut(&[W]) -> Result<(), E>,
    retry_singly: impl Fn(&E) -> bool,
) -> Result<(), E> {
    match apply(batch) {
        Err(e) if retry_singly(&e) => {
            tracing::warn!(error = %crate::logging::chain(&e), writes = batch.len(), "batched store write failed; writing one by one");
            for write in batch {
                if let Err(e) = apply(std::slice::from_ref(write)) {
                    tracing::error!(session_id = %write.session_id(), error = %crate::logging::chain(&e), "the store refused a write; it is given up");
                }
            }
            Ok(())
        }
        other => other,
    }
}

pub struct WriterThread<T> {
    writes: Mutex<Option<SyncSender<T>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<T: SessionWrite + Send + 'static> WriterThread<T> {
    /// Starts `run` on the `store-writer` thread, fed by a queue of `capacity`.
    pub fn spawn(capacity: usize, run: impl FnOnce(Receiver<T>) + Send + 'static) -> Self {
        let (writes, queue) = sync_channel::<T>(capacity);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(queue))
            .expect("spawning a thread only fails when the OS is out of resources");
        Self { writes: Mutex::new(Some(writes)), thread: Mutex::new(Some(thread)) }
    }

    /// Queues a write; never blocks. A full or closed queue loses it, with an error in the log
    /// naming its session.
    pub fn send(&self, write: T) {
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writes) = writes.as_ref() else {
            return tracing::error!(session_id = %write.session_id(), "store closed: not persisted");
        };
        if let Err(TrySendError::Full(w) | TrySendError::Disconnected(w)) = writes.try_send(write) {
            tracing::error!(session_id = %w.session_id(), "store queue full or closed: not persisted");
        }
    }

    /// Stops taking writes and waits for the thread to finish those queued.
    pub fn close(&self) {
        drop(self.writes.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}
