//! How alike CAM++ embeddings of one speaker are, and of two, by the length of audio embedded:
//! the measurement behind `speakers.short_slack` (docs/BENCHMARKS.md).
//!
//! `cargo run --release --example embedding_similarity -- RECORDING.wav REFERENCE.rttm`
//!
//! Windows of 1, 1.5, 2 and 3 s are cut every 0.5 s from stretches where the reference has one
//! speaker alone; every pair of windows that do not overlap is compared.

use std::path::Path;

use speech_service::eval::rttm::{self, Turn};
use speech_service::speaker::campplus::{cosine, CamPlus};

const RATE: f64 = 16_000.0;
const HOP: f64 = 0.5;

/// Whether `who` alone speaks from `start` to `end` (checked every 50 ms).
fn alone(turns: &[Turn], who: &str, start: f64, end: f64) -> bool {
    let steps = ((end - start) / 0.05).ceil() as usize;
    (0..steps).map(|i| start + i as f64 * 0.05).all(|t| {
        let speaking: Vec<&Turn> = turns.iter().filter(|x| x.start <= t && t < x.end).collect();
        speaking.len() == 1 && speaking[0].speaker == who
    })
}

fn percentile(sorted: &[f32], q: f64) -> f32 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or(f32::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, recording, reference] = &args[..] else {
        eprintln!("usage: embedding_similarity RECORDING.wav REFERENCE.rttm");
        std::process::exit(2);
    };
    let audio = speech_service::audio::wav::read_16k(Path::new(recording)).expect("a readable WAV file");
    let turns = rttm::parse(&std::fs::read_to_string(reference).expect("a readable RTTM file")).expect("RTTM");
    let model = CamPlus::load(Path::new("models/speaker/campplus_cn_en_common.pt")).expect("run scripts/setup.sh");
    println!("| seconds | windows | same speaker p5 / p25 / p50 | two speakers p50 / p95 / max |");
    println!("|---|---|---|---|");
    for length in [1.0, 1.5, 2.0, 3.0] {
        let mut windows = Vec::new();
        for turn in &turns {
            let mut t = turn.start;
            while t + length <= turn.end {
                if alone(&turns, &turn.speaker, t, t + length) {
                    let clip = &audio[(t * RATE) as usize..((t + length) * RATE) as usize];
                    windows.push((turn.speaker.as_str(), t, model.embed(clip).expect("an embedding")));
                }
                t += HOP;
            }
        }
        let (mut same, mut two) = (Vec::new(), Vec::new());
        for (i, (a, ta, ea)) in windows.iter().enumerate() {
            for (b, _, eb) in windows.iter().skip(i + 1).filter(|(_, tb, _)| (ta - tb).abs() >= length) {
                if a == b {
                    same.push(cosine(ea, eb))
                } else {
                    two.push(cosine(ea, eb))
                }
            }
        }
        same.sort_by(f32::total_cmp);
        two.sort_by(f32::total_cmp);
        println!(
            "| {length} | {} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} |",
            windows.len(),
            percentile(&same, 0.05),
            percentile(&same, 0.25),
            percentile(&same, 0.5),
            percentile(&two, 0.5),
            percentile(&two, 0.95),
            percentile(&two, 1.0)
        );
    }
}
