//! Speculative finals. An utterance ends after `min_silence` of quiet, but the audio it will be
//! made of is complete as soon as the quiet has lasted the padding (200 ms): decoding it then,
//! while the rest of the silence passes, has the final ready almost as the utterance ends. If
//! speech resumes the decode is withdrawn (or its result thrown away). Only spare capacity runs
//! it: it waits in the partial lane, and none is started while finals are queued.

use crate::engine::asr::{AsrHandle, Reply};
use crate::pipeline::segmenter::Segmenter;

/// A speculative decode of the open utterance, as it would end at the current pause.
pub struct Speculation {
    segment_id: u64,
    /// Absolute end sample of the clip it decodes.
    end: usize,
    /// The engine's reply and the job's ticket; `None` when the engine had no room.
    pending: Option<(Reply, u64)>,
}

impl Speculation {
    /// Starts, keeps or withdraws the speculation after new frames: one per pause, dropped as
    /// soon as the pause is over (dropping the receiver tells the worker to skip it).
    pub fn update(current: &mut Option<Self>, segmenter: &Segmenter, asr: &AsrHandle, language: &Option<String>) {
        let Some((segment_id, end, audio)) = segmenter.clip_if_pause_ends() else {
            *current = None;
            return;
        };
        if current.as_ref().is_some_and(|s| s.segment_id == segment_id && s.end == end) {
            return;
        }
        let pending =
            if asr.final_queue_depth() == 0 { asr.try_speculative(audio.to_vec(), language.clone()) } else { None };
        *current = Some(Self { segment_id, end, pending });
    }

    /// Whether a decode is waiting or running (partials are then not worth asking for).
    pub fn in_flight(current: &Option<Self>) -> bool {
        current.as_ref().is_some_and(|s| s.pending.is_some())
    }

    /// The decode of the utterance `segment_id` ending at `end`, if one was started for exactly
    /// that clip; it is promoted to the final lane with `key` if still waiting.
    pub fn take_for(
        current: &mut Option<Self>,
        segment_id: u64,
        end: usize,
        asr: &AsrHandle,
        key: u64,
    ) -> Option<Reply> {
        let s = current.take().filter(|s| s.segment_id == segment_id && s.end == end)?;
        let (rx, ticket) = s.pending?;
        asr.promote(ticket, key);
        Some(rx)
    }
}
