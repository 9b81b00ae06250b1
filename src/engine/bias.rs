//! Key terms as a bias on Whisper's next-token scores (whisper.cpp's logits filter callback):
//! at each step, the token that would start a term, or continue one the decode has begun, gets
//! a bonus. Unlike a prompt, it leaves the decoder's context as it is, so words that are not key
//! terms are decoded as without them (docs/BENCHMARKS.md, "Key terms").

use std::os::raw::{c_int, c_void};

use whisper_rs::WhisperContext;
use whisper_rs_sys::{whisper_context, whisper_state, whisper_token_data};

/// Added to the score of a term's first token: enough to tip a near tie, not to put the term
/// where nothing like it was said.
pub const START_BONUS: f32 = 2.0;
/// Added to the next token of a term the decode has begun.
pub const CONTINUE_BONUS: f32 = 4.0;

/// The terms of a decode, as token sequences.
pub struct TermBias {
    terms: Vec<Vec<i32>>,
    /// Tokens from here on are not text (end of text, timestamps, ...).
    eot: i32,
    n_vocab: usize,
}

impl TermBias {
    /// The terms as the model's tokens, each as it reads mid-sentence (with a leading space);
    /// `None` when there are none.
    pub fn new(ctx: &WhisperContext, keyterms: &[String]) -> Option<Self> {
        let terms: Vec<Vec<i32>> = keyterms
            .iter()
            .filter_map(|term| ctx.tokenize(&format!(" {}", term.trim()), 64).ok())
            .filter(|tokens| !tokens.is_empty())
            .collect();
        (!terms.is_empty()).then(|| Self { terms, eot: ctx.token_eot(), n_vocab: ctx.n_vocab() as usize })
    }

    /// Adds the bonuses to `logits` after the text tokens `generated`.
    pub fn apply(&self, generated: &[i32], logits: &mut [f32]) {
        for term in &self.terms {
            // The longest start of the term the decode ends with: its next token continues it.
            let begun = (1..term.len()).rev().find(|&k| generated.ends_with(&term[..k])).unwrap_or(0);
            let bonus = if begun == 0 { START_BONUS } else { CONTINUE_BONUS };
            if let Some(logit) = logits.get_mut(term[begun] as usize).filter(|l| l.is_finite()) {
                *logit += bonus;
            }
        }
    }

    /// The callback whisper.cpp calls at each decoding step, with `self` as its user data.
    ///
    /// # Safety
    /// `user_data` must point to a live `TermBias` for as long as the decode that calls it runs
    /// (whisper.cpp calls it synchronously from `whisper_full`, on the calling thread).
    pub unsafe extern "C" fn callback(
        _ctx: *mut whisper_context,
        _state: *mut whisper_state,
        tokens: *const whisper_token_data,
        n_tokens: c_int,
        logits: *mut f32,
        user_data: *mut c_void,
    ) {
        if user_data.is_null() || logits.is_null() {
            return;
        }
        // SAFETY: the caller keeps the TermBias alive across the decode (see above).
        let bias = unsafe { &*(user_data as *const TermBias) };
        let tokens = match (tokens.is_null(), usize::try_from(n_tokens)) {
            (false, Ok(n)) => unsafe { std::slice::from_raw_parts(tokens, n) },
            _ => &[],
        };
        // SAFETY: whisper.cpp passes its scores for the whole vocabulary.
        let logits = unsafe { std::slice::from_raw_parts_mut(logits, bias.n_vocab) };
        let generated: Vec<i32> = tokens.iter().map(|t| t.id).filter(|&id| id < bias.eot).collect();
        bias.apply(&generated, logits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bias(terms: Vec<Vec<i32>>) -> TermBias {
        TermBias { terms, eot: 1000, n_vocab: 10 }
    }

    #[test]
    fn a_term_is_started_then_continued() {
        let b = bias(vec![vec![3, 4, 5]]);
        let mut logits = vec![0.0; 10];
        b.apply(&[1, 2], &mut logits);
        assert_eq!((logits[3], logits[4]), (START_BONUS, 0.0), "nothing begun: its first token");
        let mut logits = vec![0.0; 10];
        b.apply(&[1, 3], &mut logits);
        assert_eq!((logits[3], logits[4]), (0.0, CONTINUE_BONUS), "begun: its next token");
        let mut logits = vec![0.0; 10];
        b.apply(&[3, 4], &mut logits);
        assert_eq!(logits[5], CONTINUE_BONUS);
    }

    #[test]
    fn suppressed_tokens_stay_suppressed_and_ids_out_of_range_are_skipped() {
        let b = bias(vec![vec![2], vec![42]]);
        let mut logits = vec![0.0; 10];
        logits[2] = f32::NEG_INFINITY;
        b.apply(&[], &mut logits);
        assert_eq!(logits[2], f32::NEG_INFINITY);
        assert!(logits.iter().all(|l| *l == 0.0 || l.is_infinite()));
    }
}
