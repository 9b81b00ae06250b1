use speech_service::engine::diarize::{DiarizeConfig, Diarizer};
fn main() {
    let dir = std::path::Path::new("models");
    speech_service::engine::onnx::init(&dir.join("onnxruntime/libonnxruntime.so.1.32.0")).unwrap();
    let mut d = Diarizer::load(
        &dir.join("speaker/segmentation-3.0.onnx"),
        &dir.join("speaker/campplus_cn_en_common.pt"),
        DiarizeConfig::default(),
    )
    .unwrap();
    let audio = speech_service::audio::wav::read_16k(&dir.join("recordings/sample.wav")).unwrap();
    let (a, b): (f64, f64) =
        (std::env::args().nth(1).unwrap().parse().unwrap(), std::env::args().nth(2).unwrap().parse().unwrap());
    let clip = &audio[(a * 16e3) as usize..(b * 16e3) as usize];
    let t0 = std::time::Instant::now();
    let turns = d.diarize(clip).unwrap();
    println!("took {:?}", t0.elapsed());
    for t in &turns {
        println!(
            "{:.2}-{:.2} reliable {} emb {}",
            a + t.start as f64 / 16e3,
            a + t.end as f64 / 16e3,
            t.reliable,
            t.embedding.is_some()
        );
    }
    let mut tracker = speech_service::speaker::cluster::SpeakerTracker::new(Default::default());
    let (labelled, merged) = speech_service::speaker::attribution::label_turns(&mut tracker, &turns);
    println!("labelled {labelled:?} merged {merged:?}");
    for i in 0..turns.len() {
        for j in i + 1..turns.len() {
            if let (Some(x), Some(y)) = (&turns[i].embedding, &turns[j].embedding) {
                println!("{i}-{j}: {:.3}", speech_service::speaker::campplus::cosine(x, y));
            }
        }
    }
}
#[allow(dead_code)]
fn unused() {}
