//! `speech-service transcribe`: a tool to pipe and script. The transcript goes to stdout (or to
//! files, one per format); stderr carries only warnings and, on a terminal, a progress bar.
//! The input is checked before any model loads.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use speech_service::audio::decode::FileDecoder;
use speech_service::audio::AudioError;
use speech_service::config::Config;
use speech_service::engine::asr::DecodeOptions;
use speech_service::offline::{self, Format};
use speech_service::{app, domain};

#[derive(clap::Args)]
pub struct TranscribeArgs {
    /// An audio file: WAV, FLAC, MP3, Ogg Vorbis or Opus, M4A/AAC or WebM.
    file: PathBuf,
    /// `tiny.en` (default), `base`, or a ggml file (`models.whisper`).
    #[arg(long)]
    model: Option<String>,
    /// One format, or several separated by commas (then with --output-dir).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "text")]
    format: Vec<Format>,
    /// Write NAME.txt / .json / .srt / .vtt / .rttm here instead of printing.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Language code; default: the model's, or detection for multilingual models.
    #[arg(long)]
    language: Option<String>,
    /// ggml threads (`asr.threads`); default 2.
    #[arg(long)]
    threads: Option<usize>,
    /// Skip speaker labels (and the speaker models).
    #[arg(long)]
    no_diarize: bool,
    /// Transcribe each channel of a multichannel file (a stereo call) as its own stream: the
    /// channel is the speaker (S1 left, S2 right) and every segment carries its `channel`.
    #[arg(long)]
    multichannel: bool,
}

fn extension(format: Format) -> &'static str {
    match format {
        Format::Text => "txt",
        Format::Json => "json",
        Format::Srt => "srt",
        Format::Vtt => "vtt",
        Format::Rttm => "rttm",
    }
}

/// A progress bar over the file's length, on a terminal only.
fn progress_bar(duration: Option<f64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(duration.map_or(0, |d| (d * 1000.0) as u64));
    let template = "{spinner} [{elapsed_precise}] {bar:40} {percent}% of the audio {msg}";
    bar.set_style(ProgressStyle::with_template(template).expect("the template is valid"));
    Some(bar)
}

pub async fn run(args: TranscribeArgs, mut config: Config) -> anyhow::Result<()> {
    if args.no_diarize && args.format.contains(&Format::Rttm) {
        anyhow::bail!("--format rttm needs speaker labels; drop --no-diarize");
    }
    if args.format.len() > 1 && args.output_dir.is_none() {
        anyhow::bail!("several formats need --output-dir (one file each)");
    }
    // The input first: a missing or non-audio file fails before a second of model loading.
    let decoder = FileDecoder::open(&args.file).map_err(|e| match e {
        e @ AudioError::Open { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(args.file.display().to_string()),
    })?;
    let channels = decoder.channels();
    if args.multichannel && !(2..=config.limits.max_channels as usize).contains(&channels) {
        anyhow::bail!(
            "--multichannel needs a file of 2 to {} channels; {} has {channels}",
            config.limits.max_channels,
            args.file.display()
        );
    }
    if let Some(model) = args.model {
        config.models.whisper = model;
    }
    // One file is decoded one utterance at a time: one worker with both cores' threads.
    config.asr.workers = 1;
    config.asr.threads = args.threads.unwrap_or(2);
    // With --multichannel the channels are the speakers: no speaker models are needed.
    config.diarization.enabled &= !args.no_diarize && !args.multichannel;
    let diarize = config.diarization.enabled;
    // JSON and WebVTT carry each word's time: those need Whisper's word alignment. Speakers do
    // not: splitting an utterance between speakers at whisper.cpp's coarse word times labels
    // as many words right on the two-speaker call as the aligned times (docs/BENCHMARKS.md).
    let word_timings = args.format.iter().any(|f| f.has_word_timings());
    let workload = app::Workload::File { word_timings };
    let vad = app::load_vad(&config, workload)?;
    let bar = progress_bar(decoder.duration());
    // The file is decoded and its utterances found while Whisper loads.
    let utterances = offline::Utterances::start(decoder, vad.clone(), &config.vad);
    let engines = app::load_engines_with(&config, workload, vad)?;
    let started = Instant::now();
    let mut on_utterance = |_: &domain::Transcript, end: f64| {
        if let Some(bar) = &bar {
            bar.set_position((end * 1000.0) as u64);
            let rtf = started.elapsed().as_secs_f64() / end.max(0.001);
            bar.set_message(format!("real-time factor {rtf:.3}"));
        }
    };
    let options = DecodeOptions { language: args.language, text_only: !word_timings, ..Default::default() };
    let file = if args.multichannel {
        drop(utterances);
        let open = || FileDecoder::open(&args.file);
        offline::transcribe_channels(&open, channels, &engines, &config, options).await?
    } else {
        offline::transcribe_utterances(utterances, &engines, &config, options, diarize, &mut on_utterance).await?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let name = args.file.file_stem().map_or_else(|| "audio".into(), |s| s.to_string_lossy().into_owned());
    match &args.output_dir {
        None => crate::print_out(&offline::render(&file.transcription, args.format[0], &name))?,
        Some(dir) => write_outputs(dir, &name, &args.format, &file.transcription)?,
    }
    Ok(())
}

fn write_outputs(dir: &Path, name: &str, formats: &[Format], t: &offline::Transcription) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for format in formats {
        let path = dir.join(format!("{name}.{}", extension(*format)));
        std::fs::write(&path, offline::render(t, *format, name))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
