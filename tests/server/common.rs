//! Shared helpers: a real server on port 0 with the real models, and a real WebSocket client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use speech_service::app;
pub use speech_service::client::finals;
use speech_service::client::Received;
use speech_service::config::Config;
pub use speech_service::protocol::{ClientMessage, CloseReason, ErrorCode, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Whisper-heavy tests take this lock alone (`write`) so they never run two models at once on
/// two cores. Tests that stream one recording live (in real time, or a few times faster) share
/// it (`read`): they may run beside each other, as a server's streams do (the test binary's two
/// threads make it two at most, and Whisper's workers have one thread each, so nothing spins on
/// a busy core), never beside a heavy test.
pub static HEAVY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub fn models_dir() -> PathBuf {
    std::env::var_os("SPEECH_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

pub fn recording(name: &str) -> PathBuf {
    models_dir().join("recordings").join(name)
}

/// Where a test writes a file or folder of its own: a folder for this run of the test binary in
/// Cargo's scratch folder for integration tests (`target/tmp`), which `scripts/test.sh` empties
/// before the tests. Not the system's temporary folder, where every run's fixtures and each
/// server's data folder piled up (about 45 folders a run), and a failed test's files stayed.
pub fn scratch(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("speech-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    dir.join(name)
}

/// A recording in the telephone band (8 kHz, 300-3400 Hz, made with ffmpeg as a phone line
/// would), in the test's scratch folder.
pub fn phone_band(source: &std::path::Path) -> PathBuf {
    let name = source.file_stem().unwrap().to_string_lossy();
    let path = scratch(&format!("{name}-phone.wav"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(source)
        .args(["-ar", "8000", "-af", "highpass=f=300,lowpass=f=3400"])
        .arg(&path)
        .status()
        .expect("ffmpeg makes the phone-band recording: run scripts/test.sh, which installs it");
    assert!(status.success());
    path
}

/// jfk.wav as the bytes of a `pcm_s16le` stream at 16 kHz.
pub fn jfk_pcm() -> Vec<u8> {
    let samples = speech_service::audio::wav::read_16k(&recording("jfk.wav")).unwrap();
    samples.iter().flat_map(|s| ((s * 32767.0) as i16).to_le_bytes()).collect()
}

pub struct TestApp {
    pub addr: SocketAddr,
}

impl TestApp {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/listen", self.addr)
    }
}

/// Starts a server on its own thread and runtime (so it outlives any one test's runtime).
pub fn spawn_app(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_data(&fresh_data_dir(), tweak)
}

/// A data directory of its own for one server.
pub fn fresh_data_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = scratch(&format!("data-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts a server whose transcripts go to `data_dir`.
pub fn spawn_app_with_data(data_dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::default();
    config.models.dir = models_dir();
    config.store.data_dir = data_dir.to_owned();
    tweak(&mut config);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let config = Arc::new(config);
            let engines = app::load_engines(&config).expect("models are fetched by the test command");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let (state, shutdown_tx) = app::app_state(config, engines).unwrap();
            speech_service::http::serve(listener, state, shutdown_tx, std::future::pending()).await.unwrap();
        });
    });
    TestApp { addr: rx.recv().expect("server thread reports its address") }
}

/// The default server, shared by every test in the binary. Its tests stream side by side on a
/// loaded machine, so its guard on late finals (1 s by default) is set to 5 s: a final one test
/// got late must not refuse another test's stream (once "finals 1.44 s late" did, in a clean-clone
/// run). Admission, that guard included, is tested on servers of its own (`capacity.rs`,
/// `registry::admission`).
pub fn default_app() -> &'static TestApp {
    static APP: std::sync::OnceLock<TestApp> = std::sync::OnceLock::new();
    APP.get_or_init(|| spawn_app(|c| c.admission.max_final_delay_ms = 5000))
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect("upgrade succeeds").0
}

/// The next server message, skipping pings; panics after 60 s.
pub async fn next_message(ws: &mut Ws) -> ServerMessage {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(60), ws.next())
            .await
            .expect("a message within 60 s")
            .expect("socket still open")
            .expect("no protocol error");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("a server message"),
            Message::Close(frame) => panic!("closed unexpectedly: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads messages until `closed`, then the close frame; returns the messages and the close code.
pub async fn until_closed(ws: &mut Ws) -> (Vec<ServerMessage>, Option<u16>) {
    let mut messages = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(120), ws.next()).await.expect("closes in time");
        match next {
            Some(Ok(Message::Text(text))) => messages.push(serde_json::from_str(&text).expect("a server message")),
            Some(Ok(Message::Close(frame))) => return (messages, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return (messages, None),
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
}

pub async fn send_message(ws: &mut Ws, message: &ClientMessage) {
    send_text(ws, &speech_service::client::client_text(message)).await;
}

pub async fn send_binary(ws: &mut Ws, bytes: Vec<u8>) {
    ws.send(Message::Binary(bytes.into())).await.unwrap();
}

/// Concatenated text of every `final`.
pub fn final_text(messages: &[ServerMessage]) -> String {
    finals(messages).iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join(" ")
}

/// The messages of a streamed file.
pub fn messages_of(received: &[Received]) -> Vec<ServerMessage> {
    received.iter().map(|r| r.message.clone()).collect()
}

/// The code of an `error` message.
pub fn error_code(message: &ServerMessage) -> Option<ErrorCode> {
    if let ServerMessage::Error { code, .. } = message {
        Some(*code)
    } else {
        None
    }
}

/// The reason of a `closed` message.
pub fn close_reason(message: &ServerMessage) -> Option<CloseReason> {
    if let ServerMessage::Closed { reason, .. } = message {
        Some(*reason)
    } else {
        None
    }
}

/// Writes jfk.wav at another rate by linear interpolation (independent of our resampler), with
/// every channel the same.
pub fn jfk_at(rate: u32, channels: u16, float: bool) -> PathBuf {
    let audio = speech_service::audio::wav::read(&recording("jfk.wav")).unwrap();
    let n_out = audio.samples.len() * rate as usize / 16_000;
    let path = scratch(&format!("jfk-{rate}-{channels}-{float}.wav"));
    let (bits_per_sample, sample_format) =
        if float { (32, hound::SampleFormat::Float) } else { (16, hound::SampleFormat::Int) };
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample, sample_format };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..n_out {
        let x = i as f64 * 16_000.0 / f64::from(rate);
        let (j, frac) = (x as usize, (x - x.floor()) as f32);
        let next = audio.samples.get(j + 1).copied().unwrap_or(0.0);
        let s = audio.samples[j] * (1.0 - frac) + next * frac;
        for _ in 0..channels {
            if float {
                writer.write_sample(s).unwrap();
            } else {
                writer.write_sample((s * 32767.0) as i16).unwrap();
            }
        }
    }
    writer.finalize().unwrap();
    path
}

/// Speaker turns of a live session (see `client::speaker_turns`).
pub fn live_turns(messages: &[ServerMessage]) -> Vec<speech_service::eval::rttm::Turn> {
    speech_service::client::speaker_turns(messages)
}

/// A minimal HTTP/1.1 request; returns the status and the body text.
pub async fn http_text(app: &TestApp, method: &str, path: &str) -> (u16, String) {
    http_with_headers(app, method, path, "").await
}

/// The same with extra header lines (each ending in CRLF).
pub async fn http_with_headers(app: &TestApp, method: &str, path: &str, headers: &str) -> (u16, String) {
    raw_request(app, method, path, headers, &[]).await
}

/// A minimal HTTP/1.1 request with a body; returns the status and the body text. The server
/// may answer (e.g. 413) before it has read the whole body.
pub async fn raw_request(app: &TestApp, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    let response = whole_response(app, method, path, headers, body).await;
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

/// The response as it came: status line, headers and body.
pub async fn whole_response(app: &TestApp, method: &str, path: &str, headers: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n", app.addr);
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, body).await;
    let mut bytes = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The same, with the body parsed as JSON. A response of a route in the server's OpenAPI
/// document must be documented there with its status and match that schema exactly.
pub async fn http(app: &TestApp, method: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_text(app, method, path).await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    if !body.is_null() {
        if let Err(mismatch) = check_documented(app, method, path, status, &body).await {
            panic!("{mismatch}");
        }
    }
    (status, body)
}

/// Checks `body` against the schema `/openapi.json` gives for this route and status; routes
/// the document leaves out (the WebSocket, the document itself) pass.
pub async fn check_documented(
    app: &TestApp,
    method: &str,
    path: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), String> {
    let (_, doc) = http_text(app, "GET", "/openapi.json").await;
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("the OpenAPI document is JSON");
    let path = path.split('?').next().unwrap_or(path);
    let Some(operation) = operation(&doc, method, path) else { return Ok(()) };
    let schema = &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
    if schema.is_null() {
        return Err(format!("{method} {path}: status {status} is not documented with a JSON body: {body}"));
    }
    let components = &doc["components"]["schemas"];
    let mut root = closed_objects(merged_all_of(schema.clone(), components));
    root["components"] = closed_objects(merged_all_of(doc["components"].clone(), components));
    jsonschema::validate(&root, body)
        .map_err(|e| format!("{method} {path} {status}: the body does not match its documented schema: {e}\n{body}"))
}

/// The documented operation for a concrete path (`/sessions/abc` matches `/sessions/{id}`).
fn operation<'a>(doc: &'a serde_json::Value, method: &str, path: &str) -> Option<&'a serde_json::Value> {
    let parts: Vec<&str> = path.split('/').collect();
    let (_, item) = doc["paths"].as_object()?.iter().find(|(template, _)| {
        let pattern: Vec<&str> = template.split('/').collect();
        pattern.len() == parts.len() && pattern.iter().zip(&parts).all(|(p, s)| p.starts_with('{') || p == s)
    })?;
    item.get(method.to_lowercase())
}

/// The schema with each `allOf` of objects (a flattened struct, such as a session's header in
/// its snapshot) merged into one object, so that closing objects below closes the whole.
fn merged_all_of(mut schema: serde_json::Value, components: &serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut schema {
        if let Some(serde_json::Value::Array(parts)) = map.remove("allOf") {
            let (mut properties, mut required) = (serde_json::Map::new(), Vec::new());
            for part in parts {
                let part = match part["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
                    Some(name) => components[name].clone(),
                    None => part,
                };
                let part = merged_all_of(part, components);
                properties.extend(part["properties"].as_object().cloned().unwrap_or_default());
                required.extend(part["required"].as_array().cloned().unwrap_or_default());
            }
            map.insert("type".into(), "object".into());
            map.insert("properties".into(), properties.into());
            map.insert("required".into(), required.into());
        }
        for value in map.values_mut() {
            *value = merged_all_of(value.take(), components);
        }
    } else if let serde_json::Value::Array(items) = &mut schema {
        items.iter_mut().for_each(|v| *v = merged_all_of(v.take(), components));
    }
    schema
}

/// The schema with every object closed to properties it does not list, so a field sent but
/// not documented fails too.
fn closed_objects(mut schema: serde_json::Value) -> serde_json::Value {
    match &mut schema {
        serde_json::Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), false.into());
            }
            for value in map.values_mut() {
                *value = closed_objects(value.take());
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| *v = closed_objects(v.take())),
        _ => {}
    }
    schema
}

/// Starts the real binary with `args` and JSON logs; returns it, its address and its log lines
/// as they come.
pub async fn start_binary(
    args: &[&str],
    data_dir: &std::path::Path,
) -> (ServerProcess, TestApp, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    start_binary_with_env(args, data_dir, &[]).await
}

/// A server process a test started. Dropped, it is stopped with SIGTERM (a graceful exit, so an
/// instrumented build writes its coverage; see scripts/coverage.sh), and killed if it is still
/// there 10 s later.
pub struct ServerProcess(tokio::process::Child);

impl std::ops::Deref for ServerProcess {
    type Target = tokio::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ServerProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Sends `signal` (`TERM`, `HUP`, ...) to a process; whether it was delivered.
pub fn send_signal(process: &tokio::process::Child, signal: &str) -> bool {
    let Some(pid) = process.id() else { return false };
    std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status().is_ok_and(|s| s.success())
}

/// Starts the real binary serving with `config` as its config file (`speech.toml` in a fresh
/// directory, which is also its data directory); returns the file too, for reload tests.
pub async fn start_with_config_file(
    config: &str,
) -> (ServerProcess, TestApp, std::sync::Arc<std::sync::Mutex<Vec<String>>>, PathBuf) {
    let dir = fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("speech.toml");
    std::fs::write(&file, config).unwrap();
    let (server, app, lines) = start_binary(&["--config", file.to_str().unwrap(), "serve", "--port", "0"], &dir).await;
    (server, app, lines, file)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !send_signal(&self.0, "TERM") {
            return;
        }
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.start_kill();
    }
}

/// The same with extra environment variables (`SPEECH_...` settings).
pub async fn start_binary_with_env(
    args: &[&str],
    data_dir: &std::path::Path,
    envs: &[(&str, &str)],
) -> (ServerProcess, TestApp, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["--log-format", "json", "--models-dir"])
        .arg(models_dir())
        .args(args)
        .env("SPEECH_DATA_DIR", data_dir)
        .envs(envs.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(server.stderr.take().unwrap()).lines();
    let address = loop {
        let line =
            tokio::time::timeout(Duration::from_secs(60), logs.next_line()).await.unwrap().unwrap().expect("logs");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        if entry["fields"]["message"] == "listening" {
            break entry["fields"]["address"].as_str().unwrap().parse().unwrap();
        }
    };
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = logs.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    (ServerProcess(server), TestApp { addr: address }, lines)
}

/// Polls `check` every 100 ms for up to 10 s.
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A program of the test set-up's Python environment (`target/test-venv`, made by scripts/test.sh).
pub fn venv(program: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin").join(program);
    assert!(path.is_file(), "{} is missing: run scripts/test.sh, which installs it", path.display());
    path
}

/// The two-person call as a stereo WAV (one party per channel, `eval::conversation::stereo_call`)
/// and what each channel's party says; written once per test binary.
pub fn stereo_call() -> &'static (PathBuf, [String; 2]) {
    static CALL: std::sync::OnceLock<(PathBuf, [String; 2])> = std::sync::OnceLock::new();
    CALL.get_or_init(|| {
        let call = speech_service::audio::wav::read_16k(&recording("sample.wav")).unwrap();
        let stm = std::fs::read_to_string(recording("sample.stm")).unwrap();
        let stereo = speech_service::eval::conversation::stereo_call(&call, &stm);
        let path = scratch("call-stereo.wav");
        let [left, right] = &stereo.channels;
        speech_service::audio::wav::write_16k_channels(&path, &[left, right]).unwrap();
        (path, stereo.texts)
    })
}

/// `text` percent-encoded for a query string.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks the timing invariants of every final: ordered, inside the audio, words inside segments.
pub fn assert_timestamps(messages: &[ServerMessage], duration: f64) {
    let mut previous_end = 0.0;
    for f in finals(messages) {
        let (start, end) = (f.start, f.end);
        assert!(start >= previous_end - 1e-6 && start < end && end <= duration + 0.05, "segment {start}-{end}");
        previous_end = end;
        let mut word_start = start;
        for w in &f.words {
            assert!(
                w.start >= word_start - 1e-6 && w.end >= w.start && w.end <= end + 1e-6,
                "word {w:?} outside {start}-{end}"
            );
            word_start = w.start;
        }
    }
}
