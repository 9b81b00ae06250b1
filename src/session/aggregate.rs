//! The result aggregator: joins each utterance's transcript with its speaker turns. ASR and
//! diarization run concurrently on their engine threads; the join waits for the transcript, then
//! at most `join_timeout` for the speakers. Late speakers come back separately and become a
//! `speaker_update`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::domain::{EmbeddedTurn, Transcript};
use crate::engine::asr::{AsrError, Reply};
use crate::engine::diarize::{DiarizeError, DiarizeReply};

/// Join counters, shared by all sessions (for the statistics API).
#[derive(Debug, Default)]
pub struct AggregatorStats {
    pub joined: AtomicU64,
    pub timed_out: AtomicU64,
    pub late: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
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

/// The speaker turns of an utterance, on their way.
pub type SpeakerFuture = BoxFuture<'static, Result<Vec<EmbeddedTurn>, DiarizeError>>;

/// Waits for the diarization engine's reply.
pub fn from_reply(rx: DiarizeReply) -> SpeakerFuture {
    Box::pin(async move { rx.await.unwrap_or(Err(DiarizeError::WorkerLost)) })
}

/// The speakers of an utterance, as far as the join got.
pub enum Speakers {
    /// Diarization is off for this session.
    Disabled,
    Ready(Result<Vec<EmbeddedTurn>, DiarizeError>),
    /// Not in time: still on their way.
    Late(SpeakerFuture),
}

/// An utterance whose transcript is back, with whatever is known of its speakers.
pub struct FinalDone {
    /// When the utterance ended and went to the engines.
    pub submitted: std::time::Instant,
    pub segment_id: u64,
    pub start: usize,
    pub end: usize,
    pub result: Result<Transcript, AsrError>,
    pub speakers: Speakers,
}

/// The join of one utterance, yielding when its transcript is ready.
pub fn join(
    (segment_id, start, end): (u64, usize, usize),
    asr: Reply,
    diarization: Option<SpeakerFuture>,
    timeout: Duration,
    stats: Arc<AggregatorStats>,
) -> BoxFuture<'static, FinalDone> {
    let submitted = std::time::Instant::now();
    Box::pin(async move {
        let result = asr.await.unwrap_or(Err(AsrError::WorkerLost));
        let speakers = match diarization {
            None => Speakers::Disabled,
            Some(mut rx) => match tokio::time::timeout(timeout, &mut rx).await {
                Ok(r) => {
                    stats.joined.fetch_add(1, Ordering::Relaxed);
                    Speakers::Ready(r)
                }
                Err(_) => {
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                    Speakers::Late(rx)
                }
            },
        };
        FinalDone { submitted, segment_id, start, end, result, speakers }
    })
}

/// Speakers that arrived after their final was sent.
pub struct LateSpeakers {
    pub segment_id: u64,
    pub result: Result<Vec<EmbeddedTurn>, DiarizeError>,
}

pub fn late(segment_id: u64, speakers: SpeakerFuture, stats: Arc<AggregatorStats>) -> BoxFuture<'static, LateSpeakers> {
    Box::pin(async move {
        let result = speakers.await;
        stats.late.fetch_add(1, Ordering::Relaxed);
        LateSpeakers { segment_id, result }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn turn() -> EmbeddedTurn {
        EmbeddedTurn { start: 0, end: 16_000, embedding: None, reliable: true, narrowband: false, embedded: 16_000 }
    }

    #[tokio::test(start_paused = true)]
    async fn speakers_in_time_are_joined() {
        let stats = Arc::new(AggregatorStats::default());
        let (asr_tx, asr_rx) = oneshot::channel();
        let (diar_tx, diar_rx) = oneshot::channel();
        let joined = join((3, 0, 16_000), asr_rx, Some(from_reply(diar_rx)), Duration::from_millis(500), stats.clone());
        diar_tx.send(Ok(vec![turn()])).unwrap();
        asr_tx.send(Ok(Transcript::default())).unwrap();
        let done = joined.await;
        assert_eq!(done.segment_id, 3);
        assert!(matches!(done.speakers, Speakers::Ready(Ok(ref t)) if t.len() == 1));
        assert_eq!(stats.snapshot(), AggregatorCounts { joined: 1, timed_out: 0, late: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn late_speakers_time_out_then_arrive_separately() {
        let stats = Arc::new(AggregatorStats::default());
        let (asr_tx, asr_rx) = oneshot::channel();
        let (diar_tx, diar_rx) = oneshot::channel();
        let joined = join((7, 0, 16_000), asr_rx, Some(from_reply(diar_rx)), Duration::from_millis(500), stats.clone());
        asr_tx.send(Ok(Transcript::default())).unwrap();
        let done = joined.await; // the paused clock jumps past the timeout
        let Speakers::Late(rx) = done.speakers else { panic!("speakers were not late") };
        assert_eq!(stats.snapshot().timed_out, 1);
        let pending = late(7, rx, stats.clone());
        diar_tx.send(Ok(vec![turn()])).unwrap();
        let arrived = pending.await;
        assert_eq!(arrived.segment_id, 7);
        assert!(arrived.result.is_ok());
        assert_eq!(stats.snapshot(), AggregatorCounts { joined: 0, timed_out: 1, late: 1 });
    }

    #[tokio::test]
    async fn without_diarization_the_final_goes_alone() {
        let stats = Arc::new(AggregatorStats::default());
        let (asr_tx, asr_rx) = oneshot::channel();
        asr_tx.send(Err(AsrError::WorkerLost)).unwrap();
        let done = join((1, 0, 10), asr_rx, None, Duration::from_millis(1), stats.clone()).await;
        assert!(matches!(done.speakers, Speakers::Disabled));
        assert!(done.result.is_err());
        assert_eq!(stats.snapshot(), AggregatorCounts::default());
    }
}
