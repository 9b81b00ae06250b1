//! Speculative finals. An utterance ends after `min_silence` of quiet, but the audio it will be
//! made of is complete as soon as the quiet has lasted the padding (200 ms): decoding it then,
//! while the rest of the silence passes, has the final ready almost as the utterance ends. If
//! speech resumes the decode is withdrawn (or its result thrown away). Only spare capacity runs
//! it: it waits in the partial lane, and none is started while finals are queued. The session
//! core says when to start and stop one (`Action::Speculate`, `Action::StopSpeculating`);
//! dropping a `Speculation` drops its receiver, which tells the worker to skip it.

use crate::engine::asr::{AsrHandle, Reply, StreamContext};

/// A speculative decode of the open utterance, as it would end at the current pause.
pub struct Speculation {
    segment_id: u64,
    /// Absolute end sample of the clip it decodes.
    end: usize,
    /// The engine's reply and the job's ticket; `None` when the engine had no room.
    pending: Option<(Reply, u64)>,
}

impl Speculation {
    /// Starts the decode of utterance `segment_id`'s clip up to `end` (the core asks once per
    /// pause), if the engine has spare capacity: no final waiting and room in the partial lane.
    pub fn start(segment_id: u64, end: usize, samples: Vec<f32>, asr: &AsrHandle, context: &StreamContext) -> Self {
        let pending = if asr.final_queue_depth() == 0 { asr.try_speculative(samples, context.clone()) } else { None };
        Self { segment_id, end, pending }
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
