//! The result aggregator: joins each utterance's transcript with its speaker turns. ASR and
//! diarization run concurrently on their engine threads; the join waits for the transcript, then
//! at most `join_timeout` for the speakers. Late speakers come back separately and become a
//! `speaker_update`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::engine::asr::{AsrError, Transcript};
use crate::engine::diarize::{DiarizeError, DiarizeReply, EmbeddedTurn};

/// Join counters, shared by all sessions (for the statistics API).
#[derive(Debug, Default)]
pub struct AggregatorStats {
    pub joined: AtomicU64,
    pub timed_out: AtomicU64,
    pub late: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AggregatorCounts {
    pub joined: u64,
    pub timed_out: u64,
    pub late: u64,
}

impl AggregatorStats {
    pub fn snapshot(&self) -> AggregatorCounts {
        AggregatorCounts {
            joined: self.joined.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
        }
    }
}

/// The speakers of an utterance, as far as the join got.
pub enum Speakers {
    /// Diarization is off for this session.
    Disabled,
    Ready(Result<Vec<EmbeddedTurn>, DiarizeError>),
    /// Not in time: the receiver is still waiting.
    Late(DiarizeReply),
}

/// An utterance whose transcript is back, with whatever is known of its speakers.
pub struct FinalDone {
    pub segment_id: u64,
    pub start: usize,
    pub end: usize,
    pub result: Result<Transcript, AsrError>,
    pub speakers: Speakers,
}

/// The join of one utterance, yielding when its transcript is ready.
pub fn join(
    (segment_id, start, end): (u64, usize, usize),
    asr: oneshot::Receiver<Result<Transcript, AsrError>>,
    diarization: Option<DiarizeReply>,
    timeout: Duration,
    stats: Arc<AggregatorStats>,
) -> BoxFuture<'static, FinalDone> {
    Box::pin(async move {
        let result = asr.await.unwrap_or(Err(AsrError::WorkerLost));
        let speakers = match diarization {
            None => Speakers::Disabled,
            Some(mut rx) => match tokio::time::timeout(timeout, &mut rx).await {
                Ok(r) => {
                    stats.joined.fetch_add(1, Ordering::Relaxed);
                    Speakers::Ready(r.unwrap_or_else(|_| Err(DiarizeError::Failed("worker stopped".into()))))
                }
                Err(_) => {
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    Speakers::Late(rx)
                }
            },
        };
        FinalDone { segment_id, start, end, result, speakers }
    })
}

/// Speakers that arrived after their final was sent.
pub struct LateSpeakers {
    pub segment_id: u64,
    pub result: Result<Vec<EmbeddedTurn>, DiarizeError>,
}

pub fn late(segment_id: u64, rx: DiarizeReply, stats: Arc<AggregatorStats>) -> BoxFuture<'static, LateSpeakers> {
    Box::pin(async move {
        let result = rx.await.unwrap_or_else(|_| Err(DiarizeError::Failed("worker stopped".into())));
        stats.late.fetch_add(1, Ordering::Relaxed);
        LateSpeakers { segment_id, result }
    })
}
