//! Keeps whisper.cpp's DTW word timing from aborting the process.
//!
//! whisper.cpp times words by dynamic time warping over the frames of each decoding window that
//! holds text, after a median filter 7 frames wide; the filter asserts that the window spans more
//! than 7 pairs of frames, and a failed assertion calls `abort()`: every stream on the server is
//! gone. A window spans up to its last timestamp token (or to the clip's end, if that is sooner),
//! so two decodes trip it:
//! - text closed by a timestamp under 0.16 s (`<|0.00|> the<|0.12|>`, then the end): Whisper
//!   does that when a prompt leads it to continue the prompt's words at the clip's start.
//!   `conversation.wav` 28.384-30.976 s with the prompt of the stream before it aborted every
//!   time (`tests/stages.rs`);
//! - a sliver of audio under 0.16 s left after a window, decoded as a window of its own (whisper.cpp
//!   only skips the last 0.1 s), where such a prompt again yields text.
//!
//! So, on the decodes that run DTW: a timestamp token that would close text before 0.16 s is
//! never chosen (the decoder picks a later one, or goes on), and a window after the first does
//! not start when the audio left may be that short. whisper.cpp tells where it is only as an
//! integer percentage of the clip (its progress callback, called just before each window), so
//! the guard stops whenever the rest could be under 0.16 s plus that rounding (1% of the clip):
//! at most 0.46 s, for a 30 s clip, that the window before did not cover.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use whisper_rs::{FullParams, WhisperContext};
use whisper_rs_sys::{whisper_context, whisper_state, whisper_token_data};

use super::bias::TermBias;

/// Mel frames per second (10 ms each; a timestamp token is 20 ms).
const FRAMES_PER_SECOND: usize = 100;
/// The DTW median filter's width, in pairs of frames: a window must span more.
const DTW_FILTER: i32 = 7;

/// One decode's guard; it must outlive the decode it is installed on.
pub struct DtwGuard<'a> {
    /// The clip's length in mel frames.
    frames: i32,
    /// whisper.cpp's last progress report, in percent of the clip.
    progress: AtomicI32,
    /// Windows started so far.
    windows: AtomicU32,
    /// The first timestamp token (`<|0.00|>`); every token from it on is a timestamp.
    timestamp_zero: i32,
    n_vocab: usize,
    /// Key terms, whose logits filter this one calls in turn.
    bias: Option<&'a TermBias>,
}

impl<'a> DtwGuard<'a> {
    pub fn new(ctx: &WhisperContext, n_samples: usize, bias: Option<&'a TermBias>) -> Self {
        Self::for_vocabulary(ctx.token_beg(), ctx.n_vocab() as usize, n_samples, bias)
    }

    fn for_vocabulary(timestamp_zero: i32, n_vocab: usize, n_samples: usize, bias: Option<&'a TermBias>) -> Self {
        let frames = n_samples * FRAMES_PER_SECOND / crate::domain::SAMPLE_RATE as usize;
        Self {
            frames: i32::try_from(frames).unwrap_or(i32::MAX),
            progress: AtomicI32::new(0),
            windows: AtomicU32::new(0),
            timestamp_zero,
            n_vocab,
            bias,
        }
    }

    /// Installs the guard's callbacks on `params` (and the key terms' bias with them).
    ///
    /// # Safety
    /// `self` must stay alive and in place until the decode run with `params` has returned
    /// (whisper.cpp calls the callbacks synchronously from `whisper_full`, on its thread).
    pub unsafe fn install(&self, params: &mut FullParams<'_, '_>) {
        let user_data = self as *const Self as *mut c_void;
        // SAFETY: the callbacks only read `user_data` as this guard, which the caller keeps
        // alive across the decode.
        unsafe {
            params.set_progress_callback(Some(Self::on_progress));
            params.set_progress_callback_user_data(user_data);
            params.set_start_encoder_callback(Some(Self::on_window));
            params.set_start_encoder_callback_user_data(user_data);
            params.set_filter_logits_callback(Some(Self::on_logits));
            params.set_filter_logits_callback_user_data(user_data);
        }
    }

    /// Whether a window may start, the last progress report being `percent`.
    fn allows_window(&self, percent: i32) -> bool {
        if self.windows.fetch_add(1, Ordering::Relaxed) == 0 {
            return true;
        }
        // The report is rounded down, so the rest is at most this long, and may be a percent less.
        let rest_at_most = self.frames - (i64::from(self.frames) * i64::from(percent) / 100) as i32;
        let allowed = rest_at_most > 2 * DTW_FILTER + 2 + self.frames / 100 + 1;
        if !allowed {
            tracing::debug!(rest_at_most, frames = self.frames, "not decoding the sliver left after the last window");
        }
        allowed
    }

    /// After text, no timestamp that would close it before the filter's span.
    fn mask_early_close(&self, tokens: &[whisper_token_data], logits: &mut [f32]) {
        let after_text = tokens.last().is_some_and(|t| t.id < self.timestamp_zero);
        if !after_text {
            return;
        }
        let first = self.timestamp_zero as usize + 1;
        let past_filter = self.timestamp_zero as usize + DTW_FILTER as usize + 1;
        for logit in logits.iter_mut().take(past_filter).skip(first) {
            *logit = f32::NEG_INFINITY;
        }
    }

    /// # Safety
    /// `user_data` is a guard kept alive by `install`'s caller.
    unsafe fn from_user_data<'g>(user_data: *mut c_void) -> Option<&'g Self> {
        // SAFETY: as above.
        unsafe { (user_data as *const Self).as_ref() }
    }

    unsafe extern "C" fn on_progress(
        _: *mut whisper_context,
        _: *mut whisper_state,
        progress: c_int,
        user_data: *mut c_void,
    ) {
        // SAFETY: `install`'s caller keeps the guard alive across the decode.
        if let Some(guard) = unsafe { Self::from_user_data(user_data) } {
            guard.progress.store(progress, Ordering::Relaxed);
        }
    }

    unsafe extern "C" fn on_window(_: *mut whisper_context, _: *mut whisper_state, user_data: *mut c_void) -> bool {
        // SAFETY: as above.
        unsafe { Self::from_user_data(user_data) }
            .is_none_or(|guard| guard.allows_window(guard.progress.load(Ordering::Relaxed)))
    }

    unsafe extern "C" fn on_logits(
        ctx: *mut whisper_context,
        state: *mut whisper_state,
        tokens: *const whisper_token_data,
        n_tokens: c_int,
        logits: *mut f32,
        user_data: *mut c_void,
    ) {
        // SAFETY: as above.
        let Some(guard) = (unsafe { Self::from_user_data(user_data) }) else { return };
        if logits.is_null() {
            return;
        }
        let generated = match (tokens.is_null(), usize::try_from(n_tokens)) {
            // SAFETY: whisper.cpp passes the tokens decoded so far in this window.
            (false, Ok(n)) => unsafe { std::slice::from_raw_parts(tokens, n) },
            _ => &[],
        };
        {
            // SAFETY: whisper.cpp passes its scores for the whole vocabulary.
            let scores = unsafe { std::slice::from_raw_parts_mut(logits, guard.n_vocab) };
            guard.mask_early_close(generated, scores);
        }
        if let Some(bias) = guard.bias {
            let bias = bias as *const TermBias as *mut c_void;
            // SAFETY: the bias outlives the guard, which outlives the decode.
            unsafe { TermBias::callback(ctx, state, tokens, n_tokens, logits, bias) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tiny.en's vocabulary: `<|0.00|>` is 50363, the last timestamp 51863.
    const ZERO: i32 = 50_363;
    const N_VOCAB: usize = 51_864;

    fn guard(seconds: f64) -> DtwGuard<'static> {
        DtwGuard::for_vocabulary(ZERO, N_VOCAB, (seconds * 16_000.0) as usize, None)
    }

    fn token(id: i32) -> whisper_token_data {
        whisper_token_data { id, tid: 0, p: 0.0, plog: 0.0, pt: 0.0, ptsum: 0.0, t0: 0, t1: 0, t_dtw: 0, vlen: 0.0 }
    }

    #[test]
    fn the_first_window_always_runs_and_a_sliver_after_it_never_does() {
        // 2.592 s: 259 frames, a percent of which is 2.6.
        let guard = guard(2.592);
        assert!(guard.allows_window(0));
        // 94% reported: 16 frames (0.16 s) left at most, and perhaps 13: the filter needs 16.
        assert!(!guard.allows_window(94));
        // 80%: between 0.49 and 0.52 s left, a window worth decoding.
        assert!(guard.allows_window(80));
    }

    #[test]
    fn a_long_clip_stops_within_its_rounding() {
        let guard = guard(30.0);
        guard.allows_window(0);
        // 3000 frames: at 99% at most 30 are left, perhaps none.
        assert!(!guard.allows_window(99));
        assert!(guard.allows_window(98), "30 to 60 frames left");
    }

    #[test]
    fn text_cannot_be_closed_before_the_filter_spans_it() {
        let guard = guard(2.0);
        let mut logits = vec![0.0f32; N_VOCAB];
        let the = 262;
        guard.mask_early_close(&[token(ZERO), token(the)], &mut logits);
        let closing = |k: i32| logits[(ZERO + k) as usize];
        assert!((1..=7).all(|k| closing(k) == f32::NEG_INFINITY), "0.02-0.14 s");
        assert_eq!((closing(0), closing(8)), (0.0, 0.0), "0.00 s closes nothing; 0.16 s spans the filter");
        assert_eq!(logits[the as usize], 0.0, "text is untouched");
        let mut opening = vec![0.0f32; N_VOCAB];
        guard.mask_early_close(&[], &mut opening);
        guard.mask_early_close(&[token(ZERO), token(the), token(ZERO + 20)], &mut opening);
        assert!(opening.iter().all(|l| *l == 0.0), "an opening timestamp may be anything");
    }
}
