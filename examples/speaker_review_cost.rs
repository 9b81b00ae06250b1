//! What looking back at a speaker's turns costs (`speakers.review`), at its worst: one speaker
//! with every remembered turn (64) reliable, reviewed after each utterance. The session runs it
//! on its own task, so it must stay far under a millisecond or two (docs/BENCHMARKS.md).
//!
//! `cargo run --release --example speaker_review_cost`

use std::time::Instant;

use speech_service::speaker::cluster::{ClusterConfig, Evidence, SpeakerTracker};

const DIMENSIONS: usize = 192;
const TURNS: usize = 64;
const REVIEWS: u32 = 200;

/// A deterministic pseudo-random number in [-1, 1) (xorshift), so every run measures the same.
fn next(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state % 2_000_000) as f32 / 1_000_000.0 - 1.0
}

fn main() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let voice: Vec<f32> = (0..DIMENSIONS).map(|_| next(&mut state)).collect();
    let mut tracker = SpeakerTracker::new(ClusterConfig::default());
    let evidence = Evidence { weight: 3.0, reliable: true, narrowband: false, span: 3.0 };
    let mut turn = || -> Vec<f32> {
        // One voice heard differently each time: the voice plus half as much noise.
        voice.iter().map(|v| v + 0.5 * next(&mut state)).collect()
    };
    for _ in 0..TURNS {
        tracker.assign(&turn(), evidence);
    }
    assert_eq!(tracker.active(), 1, "one voice");
    // A review after each new turn, as after each utterance; only the reviews are timed.
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..REVIEWS {
        tracker.assign(&turn(), evidence);
        let start = Instant::now();
        assert!(tracker.review().is_empty(), "one voice is never split");
        spent += start.elapsed();
    }
    let each = spent / REVIEWS;
    println!("review of one speaker with {TURNS} reliable turns of {DIMENSIONS} dimensions: {each:?} each");
}
