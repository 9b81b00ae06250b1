//! Benchmarks on the real models and recordings (not a test: it measures, it does not judge).
//!
//!   cargo run --release --bin bench -- [--model tiny.en|base] [--threads 2]
//!
//! Reports offline real-time factor, streaming latency (end of speech to final, speech start to
//! first partial), VAD cost per frame, and peak memory. Run one model per process so the peak
//! memory figure belongs to that model.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use speech_service::app;
use speech_service::audio::wav;
use speech_service::client::{stream_file, Received, StreamOptions};
use speech_service::config::Config;
use speech_service::engine::Engines;
use speech_service::eval::der;
use speech_service::eval::reference::{stm_text, JFK_TEXT};
use speech_service::eval::rttm::{self, Turn};
use speech_service::eval::wer::word_error_rate;
use speech_service::load::StreamReport;
use speech_service::models::catalog::paths;
use speech_service::pipeline::FRAME_SAMPLES;
use speech_service::protocol::ServerMessage;
use speech_service::speaker::campplus::CamPlus;
use speech_service::speaker::segmentation::Segmentation;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|w| w[0] == name).map_or_else(|| default.to_owned(), |w| w[1].clone())
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    speech_service::engine::stats::percentile(values, p).unwrap_or(f64::NAN)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb =
        status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) / 1024.0
}

fn vad_cost(engines: &Engines, audio: &[f32]) -> anyhow::Result<f64> {
    let mut vad = engines.vad.detector();
    let frames: Vec<&[f32]> = audio.chunks_exact(FRAME_SAMPLES).collect();
    let started = Instant::now();
    for frame in &frames {
        vad.probability(frame)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / frames.len() as f64)
}

/// Offline real-time factor over all files (with speaker labels), the word error rate of each,
/// and the speaker turns of the last.
async fn offline_rtf(
    engines: &Engines,
    config: &Config,
    files: &[PathBuf],
    refs: &[String],
) -> anyhow::Result<(f64, Vec<f64>, Vec<Turn>)> {
    let (mut audio_s, mut spent, mut wers, mut turns) = (0.0, 0.0, Vec::new(), Vec::new());
    for (file, reference) in files.iter().zip(refs) {
        audio_s += speech_service::domain::seconds(wav::read_16k(file)?.len());
        let started = Instant::now();
        let result = speech_service::offline::transcribe_file(file, engines, config, None, true).await?;
        spent += started.elapsed().as_secs_f64();
        let segments = result.segments;
        turns = result.turns;
        let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
        wers.push(word_error_rate(reference, &text.join(" ")).wer());
    }
    Ok((spent / audio_s, wers, turns))
}

/// Segmentation cost per 10 s window and CAM++ cost per second of audio, in milliseconds.
fn speaker_costs(dir: &Path, audio: &[f32]) -> anyhow::Result<(f64, f64)> {
    let mut segmentation = Segmentation::load(&dir.join(paths::SEGMENTATION))?;
    let campplus = CamPlus::load(&dir.join(paths::CAMPPLUS))?;
    let window = &audio[..160_000];
    segmentation.activity(window)?; // warm-up
    let started = Instant::now();
    for _ in 0..5 {
        segmentation.activity(window)?;
    }
    let seg_ms = started.elapsed().as_secs_f64() * 1000.0 / 5.0;
    campplus.embed(window)?;
    let started = Instant::now();
    for _ in 0..3 {
        campplus.embed(window)?;
    }
    let embed_ms_per_s = started.elapsed().as_secs_f64() * 1000.0 / 3.0 / 10.0;
    Ok((seg_ms, embed_ms_per_s))
}

/// Speaker turns of a live session from its finals (labels and merges applied).
fn live_turns(received: &[Received]) -> Vec<Turn> {
    let messages: Vec<ServerMessage> = received.iter().map(|r| r.message.clone()).collect();
    speech_service::client::speaker_turns(&messages)
}

struct LiveRun {
    finals: Vec<f64>,
    partials: Vec<f64>,
    wer: Vec<f64>,
    sample_turns: Vec<Turn>,
}

async fn stream_all(url: &str, files: &[PathBuf], refs: &[String], options: &StreamOptions) -> anyhow::Result<LiveRun> {
    let mut run = LiveRun { finals: Vec::new(), partials: Vec::new(), wer: Vec::new(), sample_turns: Vec::new() };
    for (file, reference) in files.iter().zip(refs) {
        let received = stream_file(url, file, options, |_| {}).await?;
        let report = StreamReport::from_messages("", Some(reference), &received, options.speed);
        run.finals.extend(report.final_latency);
        run.partials.extend(report.first_partial);
        run.wer.push(report.wer.unwrap_or(f64::NAN));
        run.sample_turns = live_turns(&received);
    }
    Ok(run)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let model = arg("--model", "tiny.en");
    let mut config = Config::default();
    config.models.whisper = model.clone();
    config.models.dir = speech_service::models::default_models_dir();
    config.store.enabled = false;
    config.asr.threads = arg("--threads", &config.asr.threads.to_string()).parse()?;
    config.asr.workers = arg("--workers", &config.asr.workers.to_string()).parse()?;
    config.vad.min_silence_ms = arg("--min-silence-ms", &config.vad.min_silence_ms.to_string()).parse()?;
    config.vad.max_utterance_s = arg("--max-utterance-s", &config.vad.max_utterance_s.to_string()).parse()?;
    let speed: f64 = arg("--speed", "1").parse()?;
    let dir = config.models.dir.clone();
    let files = [dir.join(paths::JFK_WAV), dir.join(paths::SAMPLE_WAV)];
    let config = Arc::new(config);
    let engines = app::load_engines(&config)?;

    let sample = wav::read_16k(Path::new(&files[1]))?;
    let vad_ms = vad_cost(&engines, &sample)?;
    let (seg_ms, embed_ms) = speaker_costs(&dir, &sample)?;
    let refs = [JFK_TEXT.to_owned(), stm_text(&dir.join(paths::SAMPLE_STM))?];
    let (rtf, offline_wer, offline_turns) = offline_rtf(&engines, &config, &files, &refs).await?;
    let reference = rttm::parse(&std::fs::read_to_string(dir.join(paths::SAMPLE_RTTM))?).map_err(anyhow::Error::msg)?;
    let offline_der = der::score(&reference, &offline_turns, 0.25).der();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/v1/listen", listener.local_addr()?);
    let (state, shutdown_tx) = app::app_state(config.clone(), engines)?;
    tokio::spawn(speech_service::http::serve(listener, state, shutdown_tx, std::future::pending()));
    let mut live = stream_all(&url, &files, &refs, &StreamOptions { speed, ..Default::default() }).await?;
    let plain_query = vec![("diarize".to_owned(), "false".to_owned())];
    let mut plain =
        stream_all(&url, &files, &refs, &StreamOptions { speed, query: plain_query, ..Default::default() }).await?;
    let live_der = der::score(&reference, &live.sample_turns, 0.25).der();

    println!("| model | threads | offline RTF | WER jfk / sample offline | WER jfk / sample live | final latency p50 / p95 (s) | first partial p50 / p95 (s) | VAD ms/frame | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {model} | {} | {rtf:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} / {:.2} | {:.2} / {:.2} | {vad_ms:.3} | {:.0} |",
        config.asr.threads,
        offline_wer[0],
        offline_wer[1],
        live.wer[0],
        live.wer[1],
        percentile(&mut live.finals, 50.0),
        percentile(&mut live.finals, 95.0),
        percentile(&mut live.partials, 50.0),
        percentile(&mut live.partials, 95.0),
        peak_rss_mb()
    );
    println!();
    println!("| model | segmentation ms / 10 s window | CAM++ ms / s of audio | final latency without / with speakers, p50 (s) | p95 (s) | DER sample offline / live |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {model} | {seg_ms:.0} | {embed_ms:.1} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3} / {:.3} |",
        percentile(&mut plain.finals, 50.0),
        percentile(&mut live.finals, 50.0),
        percentile(&mut plain.finals, 95.0),
        percentile(&mut live.finals, 95.0),
        offline_der,
        live_der
    );
    Ok(())
}
