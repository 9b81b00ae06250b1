//! Speaker models on real recordings: CAM++ embeddings separate the speakers of the call.

use speech_service::audio::wav;
use speech_service::speaker::campplus::{cosine, CamPlus};

use crate::common::*;

/// Speaker turns of an RTTM file, through the project's own parser.
pub fn rttm_turns(path: &std::path::Path) -> Vec<(f64, f64, String)> {
    let turns = speech_service::eval::rttm::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    turns.into_iter().map(|t| (t.start, t.end, t.speaker)).collect()
}

fn campplus() -> CamPlus {
    CamPlus::load(&models_dir().join("speaker/campplus_cn_en_common.pt")).unwrap()
}

#[test]
fn campplus_separates_the_two_callers_and_jfk() {
    let model = campplus();
    let audio = wav::read_16k(&recording("sample.wav")).unwrap();
    let turns = rttm_turns(&recording("sample.rttm"));
    // Turns of at least 1.5 s, cut away from the overlaps at their edges.
    let embedded: Vec<(String, Vec<f32>)> = turns
        .iter()
        .filter(|(s, e, _)| e - s >= 1.5)
        .map(|(s, e, who)| {
            let clip = &audio[((s + 0.2) * 16e3) as usize..((e - 0.2) * 16e3) as usize];
            (who.clone(), model.embed(clip).unwrap())
        })
        .collect();
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    for (i, (a, ea)) in embedded.iter().enumerate() {
        for (b, eb) in &embedded[i + 1..] {
            if a == b {
                same.push(cosine(ea, eb))
            } else {
                diff.push(cosine(ea, eb))
            }
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (same_min, diff_max) = (same.iter().copied().fold(1.0, f32::min), diff.iter().copied().fold(-1.0, f32::max));
    eprintln!(
        "CAM++ on sample: same {:.3} (min {same_min:.3}), different {:.3} (max {diff_max:.3})",
        mean(&same),
        mean(&diff)
    );
    assert!(mean(&same) > mean(&diff) + 0.3, "same {same:?} vs different {diff:?}");
    assert!(same_min > diff_max, "every same-speaker pair beats every cross-speaker pair");

    let jfk = model.embed(&wav::read_16k(&recording("jfk.wav")).unwrap()).unwrap();
    let to_jfk: Vec<f32> = embedded.iter().map(|(_, e)| cosine(&jfk, e)).collect();
    eprintln!("CAM++ jfk to the callers: {to_jfk:?}");
    assert!(to_jfk.iter().all(|&c| c < diff_max), "jfk is further from both callers than they are from each other");
}
