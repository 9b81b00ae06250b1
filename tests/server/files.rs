//! The OpenAI-compatible file API and the audio formats, on the real models: fixtures are made
//! once from jfk.wav with ffmpeg (installed by scripts/test.sh; the server never runs it).

use std::path::PathBuf;
use std::process::Command;

use speech_service::eval::reference::JFK_TEXT;
use speech_service::eval::wer::word_error_rate;

use crate::common::*;

/// Each fixture: file name and the ffmpeg output arguments that make it from jfk.wav.
const FORMATS: &[(&str, &[&str])] = &[
    ("jfk-u8.wav", &["-c:a", "pcm_u8"]),
    ("jfk-s24.wav", &["-c:a", "pcm_s24le"]),
    ("jfk-f32.wav", &["-c:a", "pcm_f32le"]),
    ("jfk-alaw.wav", &["-c:a", "pcm_alaw"]),
    ("jfk-mulaw.wav", &["-c:a", "pcm_mulaw"]),
    ("jfk-44k-stereo.wav", &["-ar", "44100", "-ac", "2"]),
    ("jfk.flac", &["-c:a", "flac"]),
    ("jfk.mp3", &["-c:a", "libmp3lame", "-b:a", "64k"]),
    ("jfk.ogg", &["-c:a", "libvorbis"]),
    ("jfk.m4a", &["-c:a", "aac", "-b:a", "64k"]),
    ("jfk-vorbis.webm", &["-c:a", "libvorbis", "-f", "webm"]),
    ("jfk.opus", &["-c:a", "libopus", "-b:a", "32k"]),
    ("jfk-opus.webm", &["-c:a", "libopus", "-b:a", "32k", "-f", "webm"]),
];

/// The fixtures' directory, made on first use.
fn fixtures() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("formats");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, args) in FORMATS {
            let status = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-y", "-i"])
                .arg(recording("jfk.wav"))
                .args(*args)
                .arg(dir.join(name))
                .status()
                .expect("ffmpeg makes the format fixtures: run scripts/test.sh, which installs it");
            assert!(status.success(), "ffmpeg could not make {name}");
        }
        dir
    })
    .clone()
}

/// One form field: a name and a value, or a file with its name.
enum Field<'a> {
    Text(&'a str, &'a str),
    File(&'a str, Vec<u8>),
}

/// POSTs a multipart form; returns the status and body text.
async fn post_form(app: &TestApp, path: &str, fields: &[Field<'_>]) -> (u16, String) {
    post_form_with(app, path, "", fields).await
}

/// The same with extra header lines (each ending in CRLF).
async fn post_form_with(app: &TestApp, path: &str, extra_headers: &str, fields: &[Field<'_>]) -> (u16, String) {
    const BOUNDARY: &str = "speech-service-test-boundary";
    let mut body = Vec::new();
    for field in fields {
        body.extend(format!("--{BOUNDARY}\r\n").as_bytes());
        match field {
            Field::Text(name, value) => {
                body.extend(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes())
            }
            Field::File(file_name, bytes) => {
                let head = format!(
                    "Content-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                );
                body.extend(head.as_bytes());
                body.extend(bytes);
                body.extend(b"\r\n");
            }
        }
    }
    body.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    let length = body.len();
    let headers = format!(
        "{extra_headers}Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n"
    );
    raw_request(app, "POST", path, &headers, &body).await
}

async fn transcribe(app: &TestApp, file: &str, bytes: Vec<u8>, format: &str) -> (u16, String) {
    let fields = [Field::File(file, bytes), Field::Text("model", "whisper-1"), Field::Text("response_format", format)];
    post_form(app, "/v1/audio/transcriptions", &fields).await
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn every_format_is_decoded_and_transcribed() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    for (name, _) in FORMATS {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let (status, body) = transcribe(app, name, bytes, "json").await;
        assert_eq!(status, 200, "{name}: {body}");
        let text = json(&body)["text"].as_str().unwrap().to_owned();
        let wer = word_error_rate(JFK_TEXT, &text).wer();
        assert!(wer <= 0.10, "{name}: WER {wer:.3} for {text:?}");
    }
}

#[tokio::test]
async fn response_formats_carry_text_and_timestamps() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let mp3 = std::fs::read(fixtures().join("jfk.mp3")).unwrap();
    let fields = [
        Field::File("jfk.mp3", mp3.clone()),
        Field::Text("model", "tiny.en"),
        Field::Text("response_format", "verbose_json"),
        Field::Text("timestamp_granularities[]", "word"),
        Field::Text("timestamp_granularities[]", "segment"),
    ];
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &fields).await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!((v["task"].as_str(), v["language"].as_str()), (Some("transcribe"), Some("english")));
    assert!((v["duration"].as_f64().unwrap() - 11.0).abs() < 0.1, "{v}");
    let segments = v["segments"].as_array().unwrap();
    assert!(!segments.is_empty() && segments[0]["start"].as_f64().unwrap() < 1.0, "{v}");
    let words = v["words"].as_array().unwrap();
    assert!(words.len() >= 20 && words.last().unwrap()["end"].as_f64().unwrap() > 9.0, "{v}");
    // The decode's own figures: a sure decode of clear speech that is not a loop.
    for s in segments {
        let figure = |name: &str| s[name].as_f64().unwrap_or_else(|| panic!("{name} in {s}"));
        let (logprob, ratio, no_speech) =
            (figure("avg_logprob"), figure("compression_ratio"), figure("no_speech_prob"));
        assert!((-1.0..0.0).contains(&logprob), "mean token log-probability: {s}");
        assert!(ratio > 0.0 && ratio < 2.4 && ratio != 1.0, "compression ratio of the decode: {s}");
        assert!((0.0..0.5).contains(&no_speech), "speech: {s}");
    }
    let aligned_text = v["text"].as_str().unwrap().to_owned();

    let (_, srt) = transcribe(app, "jfk.mp3", mp3.clone(), "srt").await;
    assert!(srt.starts_with("1\n00:00:00,") && srt.contains(" --> "), "{srt}");
    let (_, vtt) = transcribe(app, "jfk.mp3", mp3.clone(), "vtt").await;
    assert!(vtt.starts_with("WEBVTT") && vtt.contains(" <00:00:0"), "{vtt}");
    let (_, text) = transcribe(app, "jfk.mp3", mp3.clone(), "text").await;
    assert!(word_error_rate(JFK_TEXT, &text).wer() <= 0.10, "{text}");
    // Plain text is decoded without the word alignment pass; the words are the same.
    assert_eq!(text.trim(), aligned_text.trim());
    let (status, body) = transcribe(app, "jfk.mp3", mp3, "diarized_json").await;
    let v = json(&body);
    assert_eq!(status, 200, "{body}");
    assert!(v["segments"].as_array().unwrap().iter().all(|s| s["speaker"] == "S1"), "{v}");
}

#[tokio::test]
async fn streamed_transcription_sends_deltas_then_the_whole_text() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let wav = std::fs::read(recording("jfk.wav")).unwrap();
    let fields = [Field::File("jfk.wav", wav), Field::Text("model", "whisper-1"), Field::Text("stream", "true")];
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &fields).await;
    assert_eq!(status, 200, "{body}");
    let events: Vec<serde_json::Value> =
        body.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    let deltas: String =
        events.iter().filter(|e| e["type"] == "transcript.text.delta").map(|e| e["delta"].as_str().unwrap()).collect();
    let done = events.last().unwrap();
    assert_eq!(done["type"], "transcript.text.done", "{body}");
    assert_eq!(deltas, done["text"].as_str().unwrap(), "the deltas add up to the text");
    assert!(word_error_rate(JFK_TEXT, &deltas).wer() <= 0.10, "{deltas}");
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_errors() {
    let app = default_app();
    let error = |body: &str| {
        let v = json(body);
        (v["error"]["code"].as_str().map(str::to_owned), v["error"]["param"].as_str().map(str::to_owned))
    };
    let (status, body) = transcribe(app, "noise.mp3", b"this is not audio at all".repeat(50), "json").await;
    assert_eq!((status, error(&body)), (400, (Some("invalid_audio".into()), Some("file".into()))), "{body}");
    let wav = std::fs::read(recording("jfk.wav")).unwrap();
    let (status, body) = transcribe(app, "cut.wav", wav[..30].to_vec(), "json").await;
    assert_eq!((status, error(&body).0.as_deref()), (400, Some("invalid_audio")), "truncated header: {body}");
    // Found by fuzzing: 2.5 KB claiming a 2.1 GHz sample rate once took gigabytes to resample.
    let huge_rate =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-huge-sample-rate.wav"))
            .unwrap();
    let (status, body) = transcribe(app, "rate.wav", huge_rate, "json").await;
    assert!(status == 400 && body.contains("invalid_audio") && body.contains("2147491648 Hz"), "{body}");
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &[Field::Text("model", "whisper-1")]).await;
    assert_eq!((status, error(&body)), (400, (Some("missing_field".into()), Some("file".into()))), "{body}");
    // A body that is not a form at all gets the same error shape.
    let (status, body) = raw_request(app, "POST", "/v1/audio/transcriptions", "Content-Length: 4\r\n", b"text").await;
    assert_eq!((status, error(&body).0.as_deref()), (400, Some("invalid_form")), "{body}");
    let (status, body) = transcribe(app, "jfk.wav", wav.clone(), "docx").await;
    assert_eq!((status, error(&body).1.as_deref()), (400, Some("response_format")), "{body}");
    let fields = [Field::File("jfk.wav", wav.clone()), Field::Text("model", "whisper-large-v9")];
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &fields).await;
    assert_eq!((status, error(&body).0.as_deref()), (404, Some("model_not_found")), "{body}");
    let fields = [Field::File("jfk.wav", wav.clone()), Field::Text("model", "whisper-1")];
    let (status, body) = post_form(app, "/v1/audio/translations", &fields).await;
    assert_eq!((status, error(&body).0.as_deref()), (400, Some("translation_unavailable")), "tiny.en: {body}");
    let (status, body) = http(app, "GET", "/v1/models").await;
    assert_eq!((status, body["data"][1]["id"].as_str()), (200, Some("tiny.en")), "{body}");
}

#[tokio::test]
async fn silence_is_an_empty_text_and_big_uploads_are_refused_with_413() {
    let app = spawn_app(|c| c.limits.max_upload_bytes = 200_000);
    let silence = wav_bytes(&vec![0.0; 32_000]);
    let (status, body) = transcribe(&app, "silence.wav", silence, "json").await;
    assert_eq!((status, json(&body)["text"].as_str()), (200, Some("")), "{body}");
    let big = std::fs::read(recording("jfk.wav")).unwrap();
    let (status, body) = transcribe(&app, "jfk.wav", big, "json").await;
    assert_eq!(status, 413, "{body}");
}

/// 16 kHz mono 16-bit WAV bytes of `samples`.
fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for s in samples {
        writer.write_sample((s * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    cursor.into_inner()
}

fn cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .arg("--models-dir")
        .arg(models_dir())
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn transcribe_reads_an_mp3_prints_only_the_transcript_and_writes_several_formats() {
    let _heavy = HEAVY.write().await;
    let mp3 = fixtures().join("jfk.mp3");
    let output = cli(&["transcribe".as_ref(), "--no-diarize".as_ref(), mp3.as_os_str()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(word_error_rate(JFK_TEXT, &text).wer() <= 0.10, "{text}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "nothing on stderr but warnings");

    let dir = scratch("cli-out");
    let args = [
        "transcribe".as_ref(),
        "--format".as_ref(),
        "srt,json".as_ref(),
        "--output-dir".as_ref(),
        dir.as_os_str(),
        mp3.as_os_str(),
    ];
    let output = cli(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let srt = std::fs::read_to_string(dir.join("jfk.srt")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jfk.json")).unwrap()).unwrap();
    assert!(srt.contains("[S1]") && json["segments"][0]["words"].as_array().is_some_and(|w| !w.is_empty()), "{srt}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn transcribe_refuses_a_bad_input_at_once_in_one_line() {
    let garbage = scratch("garbage.mp3");
    std::fs::write(&garbage, b"not audio at all").unwrap();
    for (path, reason) in [(garbage.clone(), "not an audio file"), (PathBuf::from("/no/such/file.wav"), "cannot open")]
    {
        // A models directory with nothing in it: the input must be refused before any model is
        // looked for.
        let output = Command::new(env!("CARGO_BIN_EXE_speech-service"))
            .args(["--models-dir", "/no/models/here", "transcribe"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(reason) && stderr.contains(path.to_str().unwrap()), "{stderr}");
    }
    std::fs::remove_file(garbage).unwrap();
}

/// The Python with the pinned `openai` package, made by scripts/test.sh.
fn openai_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/test.sh, which makes it", python.display());
    python
}

async fn run_openai_client(app: &TestApp, audio: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openai_client.py");
    let output = tokio::process::Command::new(openai_python())
        .arg(script)
        .arg(format!("http://{}/v1", app.addr))
        .arg(audio)
        .args(extra)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "openai client failed: {}", String::from_utf8_lossy(&output.stderr));
    json(&String::from_utf8_lossy(&output.stdout))
}

#[tokio::test]
async fn the_official_openai_client_works_unmodified() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let audio = fixtures().join("jfk.mp3");
    let out = run_openai_client(app, &audio, &[]).await;
    let wer = |text: &serde_json::Value| word_error_rate(JFK_TEXT, text.as_str().unwrap()).wer();
    for key in ["json", "text"] {
        assert!(wer(&out[key]) <= 0.10, "{key}: {}", out[key]);
    }
    assert!(out["srt"].as_str().unwrap().contains(" --> "), "{}", out["srt"]);
    assert!(out["vtt"].as_str().unwrap().starts_with("WEBVTT"), "{}", out["vtt"]);
    let verbose = &out["verbose"];
    assert_eq!(verbose["language"], "english");
    assert!(wer(&verbose["text"]) <= 0.10, "{verbose}");
    let words = verbose["words"].as_array().unwrap();
    let (first, last) = (&words[0], words.last().unwrap());
    assert!(first["start"].as_f64().unwrap() < 1.2 && last["end"].as_f64().unwrap() > 9.0, "{verbose}");
    assert!(words.windows(2).all(|w| w[0]["start"].as_f64() <= w[1]["start"].as_f64()), "words in order");
    assert_eq!(out["stream"]["deltas"], out["stream"]["done"], "{}", out["stream"]);
    assert!(wer(&out["stream"]["done"]) <= 0.10);
    assert_eq!((out["error"]["status"].as_u64(), out["error"]["code"].as_str()), (Some(404), Some("model_not_found")));
}

#[tokio::test]
async fn translations_work_on_a_multilingual_model() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|c| {
        c.models.whisper = "base".into();
        c.diarization.enabled = false;
    });
    let audio = recording("jfk.wav");
    let out = run_openai_client(&app, &audio, &["translate"]).await;
    let text = out["translation"].as_str().unwrap();
    assert!(word_error_rate(JFK_TEXT, text).wer() <= 0.20, "{text}");
}

#[tokio::test]
async fn api_keys_guard_the_file_api_and_logs_off_a_terminal_have_no_colour() {
    let app = spawn_app(|c| c.auth.api_keys = vec!["file-key-123".into()]);
    let silence = wav_bytes(&[0.0; 16_000]);
    let (status, _) = transcribe(&app, "silence.wav", silence.clone(), "json").await;
    assert_eq!(status, 401, "no key");
    let fields = [Field::File("silence.wav", silence), Field::Text("model", "whisper-1")];
    let (status, body) =
        post_form_with(&app, "/v1/audio/transcriptions", "Authorization: Bearer file-key-123\r\n", &fields).await;
    assert_eq!(status, 200, "{body}");

    // stderr is a pipe here: log lines carry no terminal colour codes.
    let output = cli(&[
        "--log".as_ref(),
        "info".as_ref(),
        "transcribe".as_ref(),
        "--no-diarize".as_ref(),
        recording("jfk.wav").as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INFO") && !stderr.contains('\u{1b}'), "{stderr}");
}

#[tokio::test]
async fn multichannel_files_are_transcribed_channel_by_channel_and_mono_is_refused() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let (path, _) = stereo_call();
    let stereo = std::fs::read(path).unwrap();
    let form = |bytes: Vec<u8>, extra: Option<(&'static str, &'static str)>| {
        let mut fields = vec![
            Field::File("call.wav", bytes),
            Field::Text("model", "whisper-1"),
            Field::Text("response_format", "diarized_json"),
            Field::Text("multichannel", "true"),
        ];
        fields.extend(extra.map(|(k, v)| Field::Text(k, v)));
        fields
    };
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &form(stereo.clone(), None)).await;
    assert_eq!(status, 200, "{body}");
    let unprompted = json(&body);
    let segments = unprompted["segments"].as_array().unwrap().clone();
    let speakers: std::collections::BTreeSet<&str> = segments.iter().filter_map(|s| s["speaker"].as_str()).collect();
    assert_eq!(speakers, ["S1", "S2"].into(), "the channels are the speakers: {body}");
    let starts: Vec<f64> = segments.iter().map(|s| s["start"].as_f64().unwrap()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "both channels interleaved by time: {starts:?}");

    // The prompt reaches every channel's decodes: written without punctuation, it makes the
    // transcript so (it was once dropped here).
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &form(stereo.clone(), Some(LOWER_CASE))).await;
    assert_eq!(status, 200, "{body}");
    let stops = |v: &serde_json::Value| {
        let text = v["segments"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect::<String>();
        text.matches(['.', '?', ',']).count()
    };
    let (plain, prompted) = (stops(&unprompted), stops(&json(&body)));
    assert!(prompted * 3 < plain, "the prompt's style: {prompted} stops against {plain}: {body}");

    let error = |body: &str| json(body)["error"]["param"].as_str().map(str::to_owned);
    let jfk = std::fs::read(recording("jfk.wav")).unwrap();
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &form(jfk, None)).await;
    assert_eq!((status, error(&body).as_deref()), (400, Some("multichannel")), "{body}");
    assert!(body.contains("invalid_parameter") && body.contains("the file has 1"), "{body}");
    let (status, body) = post_form(app, "/v1/audio/transcriptions", &form(stereo, Some(("stream", "true")))).await;
    assert_eq!((status, error(&body).as_deref()), (400, Some("stream")), "{body}");
}

/// A decode that loops is read again with beam search, and whisper.cpp draws beam candidates
/// with a random generator that a worker's state kept from job to job: a clip of the stereo
/// call's left channel that loops came back with other words (and another `avg_logprob`) on each
/// repeat of the same request to one server. One worker makes every repeat meet that generator.
#[tokio::test]
async fn a_clip_read_again_for_a_loop_gives_the_same_words_on_every_request() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|c| {
        c.asr.workers = 1;
        c.diarization.enabled = false;
    });
    let stereo = std::fs::read(&stereo_call().0).unwrap();
    let fields = [
        Field::File("call.wav", stereo),
        Field::Text("model", "whisper-1"),
        Field::Text("response_format", "verbose_json"),
        Field::Text("multichannel", "true"),
    ];
    let retries_before = loop_retries(&app).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, body) = post_form(&app, "/v1/audio/transcriptions", &fields).await;
        assert_eq!(status, 200, "{body}");
        let segments = json(&body)["segments"].as_array().unwrap().clone();
        answers
            .push(segments.iter().map(|s| (s["text"].to_string(), s["avg_logprob"].to_string())).collect::<Vec<_>>());
    }
    assert!(loop_retries(&app).await >= retries_before + 3, "every request read a looping clip again");
    assert_eq!(answers[0], answers[1], "the second request");
    assert_eq!(answers[0], answers[2], "the third request");
}

async fn loop_retries(app: &TestApp) -> u64 {
    let (_, metrics) = http_text(app, "GET", "/metrics").await;
    let line = metrics.lines().find(|l| l.starts_with("speech_asr_loop_retries_total "));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
}

/// A prompt in lower case without punctuation, which Whisper's transcript follows.
const LOWER_CASE: (&str, &str) =
    ("prompt", "hello there so i was saying that we could meet on friday and then we talk");

#[tokio::test]
async fn a_prompt_of_any_length_is_taken_and_read_from_its_end() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let wav = std::fs::read(recording("jfk.wav")).unwrap();
    // 220 KB, as a client that sends a whole earlier transcript does: OpenAI reads its end.
    let long = "the quick brown fox jumps over the lazy dog ".repeat(5000);
    let (status, whole) = with_prompt(app, &wav, &long).await;
    assert_eq!(status, 200, "{whole}");
    let tail = speech_service::protocol::vocabulary::prompt_tail(&long).unwrap();
    assert!(tail.len() <= 800, "{}", tail.len());
    let (_, from_tail) = with_prompt(app, &wav, &tail).await;
    assert_eq!(json(&whole)["text"], json(&from_tail)["text"], "the decoder is given the prompt's end");
    assert!(word_error_rate(JFK_TEXT, json(&whole)["text"].as_str().unwrap()).wer() <= 0.15, "{whole}");
}

async fn with_prompt(app: &TestApp, wav: &[u8], prompt: &str) -> (u16, String) {
    let fields =
        [Field::File("jfk.wav", wav.to_vec()), Field::Text("model", "whisper-1"), Field::Text("prompt", prompt)];
    post_form(app, "/v1/audio/transcriptions", &fields).await
}
