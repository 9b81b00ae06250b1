//! The vendors' live protocols, driven by the vendors' own SDKs, unmodified: Deepgram's Python
//! SDK on `/v1/listen` and OpenAI's Python SDK (GA and beta) on `/v1/realtime`, each streaming a
//! real recording at real-time pace (tests/clients/*.py print what they received; the judging
//! is here). The words must match our own protocol's on the same audio. Then each vendor's
//! refusals and bad events, and key terms on our own protocol (G.711 phone audio).

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use serde_json::Value;
use speech_service::client::{stream_file, StreamOptions};
use speech_service::eval::reference::{stm_text, JFK_TEXT};
use speech_service::eval::wer::word_error_rate;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// A recording of the tests by name, or the call from 6 s on (`call`): its first 6.6 s are
/// silence, which real-time tests need not wait through.
fn source(name: &str) -> PathBuf {
    if name != "call" {
        return recording(name);
    }
    let out = scratch("call-from-6s.wav");
    if !out.is_file() {
        ffmpeg(&["-ss", "6", "-i", &recording("sample.wav").display().to_string(), "-c", "copy"], &out);
    }
    out
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg, installed by scripts/test.sh");
    assert!(status.success());
}

/// `name` (see `source`) as headerless mono samples for a client: `format` is ffmpeg's
/// (`s16le`, `mulaw`, `alaw`), at `rate`.
fn raw_audio(name: &str, format: &str, rate: u32) -> PathBuf {
    let out = scratch(&format!("{name}-{rate}.{format}"));
    if !out.is_file() {
        let input = source(name).display().to_string();
        ffmpeg(&["-i", &input, "-ac", "1", "-ar", &rate.to_string(), "-f", format], &out);
    }
    out
}

/// Runs a client script of tests/clients with the test environment's Python; its JSON output.
async fn run_client(script: &str, args: &[String]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    let output = tokio::process::Command::new(venv("python")).arg(path).args(args).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed: {stderr}");
    serde_json::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap()
}

/// Our own protocol's words on the same audio (finals do not depend on the pace), measured
/// once per recording for all the tests that compare with it.
async fn our_wer(app: &TestApp, name: &str, reference: &str) -> f64 {
    static MEASURED: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, wer)) = MEASURED.lock().unwrap().iter().find(|(n, _)| n == name) {
        return *wer;
    }
    let options = StreamOptions { speed: 3.0, ..Default::default() };
    let received = stream_file(&app.ws_url(), &source(name), &options, |_| {}).await.unwrap();
    let wer = word_error_rate(reference, &final_text(&messages_of(&received))).wer();
    MEASURED.lock().unwrap().push((name.to_owned(), wer));
    wer
}

fn messages<'a>(out: &'a Value, field: &'a str) -> impl Iterator<Item = (f64, &'a Value)> + 'a {
    out["received"].as_array().unwrap().iter().map(move |r| (r["at"].as_f64().unwrap(), &r[field]))
}

fn deepgram_finals(out: &Value) -> Vec<(f64, &Value)> {
    messages(out, "message").filter(|(_, m)| m["type"] == "Results" && m["is_final"] == true).collect()
}

fn deepgram_text(out: &Value) -> String {
    let finals = deepgram_finals(out);
    let texts = finals.iter().map(|(_, m)| m["channel"]["alternatives"][0]["transcript"].as_str().unwrap());
    texts.collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn deepgrams_python_sdk_streams_the_call_with_live_speakers() {
    let _heavy = HEAVY.read().await;
    let app = default_app();
    let reference = stm_text(&recording("sample.stm")).unwrap();
    let ours = our_wer(app, "call", &reference).await;
    let audio = raw_audio("call", "s16le", 16_000);
    let args = [app.addr.to_string(), "any-key".into(), audio.display().to_string(), "linear16".into(), "16000".into()];
    let out = run_client("deepgram_client.py", &args).await;
    let wer = word_error_rate(&reference, &deepgram_text(&out)).wer();
    eprintln!("deepgram sdk {}: WER {wer:.3} (ours {ours:.3})", out["sdk_version"]);
    assert!(wer <= ours + 0.01, "WER {wer:.3} against our protocol's {ours:.3}: {}", deepgram_text(&out));

    let all: Vec<&Value> = messages(&out, "message").map(|(_, m)| m).collect();
    // Interim results reach the SDK while an utterance is open (not necessarily before the first
    // final: on a starved machine the first utterance's partials can all be skipped).
    let last_final = all.iter().rposition(|m| m["type"] == "Results" && m["is_final"] == true).unwrap();
    assert!(all[..last_final].iter().any(|m| m["type"] == "Results" && m["is_final"] == false), "interim results");
    assert!(all.iter().any(|m| m["type"] == "SpeechStarted") && all.iter().any(|m| m["type"] == "UtteranceEnd"));
    let finals = deepgram_finals(&out);
    assert!(finals.iter().any(|(_, m)| m["speech_final"] == true));
    let words: Vec<&Value> =
        finals.iter().flat_map(|(_, m)| m["channel"]["alternatives"][0]["words"].as_array().unwrap()).collect();
    for w in &words {
        let confidence = w["confidence"].as_f64().unwrap();
        assert!(w["start"].as_f64() <= w["end"].as_f64() && confidence > 0.0 && confidence <= 1.0, "{w}");
        assert!(w["punctuated_word"].is_string() && w["word"].as_str().unwrap().chars().all(|c| !c.is_uppercase()));
    }
    let speakers: std::collections::BTreeSet<u64> = words.iter().filter_map(|w| w["speaker"].as_u64()).collect();
    assert_eq!(speakers, [0, 1].into(), "both callers, told apart live");
    let last = all.last().unwrap();
    assert_eq!(last["type"], "Metadata", "{last}");
    assert!((last["duration"].as_f64().unwrap() - 24.0).abs() < 0.5, "{last}");
}

#[tokio::test]
async fn deepgrams_sdk_sends_phone_audio_and_finalize_forces_a_final() {
    let _heavy = HEAVY.read().await;
    let app = default_app();
    let audio = raw_audio("jfk.wav", "mulaw", 8_000);
    let args = [
        app.addr.to_string(),
        "any-key".into(),
        audio.display().to_string(),
        "mulaw".into(),
        "8000".into(),
        "6.5".into(),
        "keyterm=Americans|country".into(),
        "diarize=false".into(),
    ];
    let out = run_client("deepgram_client.py", &args).await;
    let wer = word_error_rate(JFK_TEXT, &deepgram_text(&out)).wer();
    assert!(wer <= 0.15, "WER {wer:.3}: {}", deepgram_text(&out));
    let sent = messages(&out, "message").find(|(_, m)| m["type"] == "_finalize_sent").unwrap().0;
    let (at, answer) = deepgram_finals(&out).into_iter().find(|(_, m)| m["from_finalize"] == true).unwrap();
    assert!(at - sent < 1.5, "the Finalize answered {:.2} s after it was sent: {answer}", at - sent);
    assert!(messages(&out, "message").all(|(_, m)| m["type"] != "Error"), "{out}");
}

fn realtime_events(out: &Value) -> Vec<(f64, &Value)> {
    messages(out, "event").collect()
}

/// One transcription item as a client sees it.
#[derive(Debug, Default)]
struct RealtimeItem {
    /// Its deltas joined, and the second each arrived.
    deltas: String,
    delta_times: Vec<f64>,
    /// Its completed transcript (the finals' words), and the second it arrived.
    transcript: String,
    done: f64,
}

/// The items with words, in order.
fn realtime_items(out: &Value) -> Vec<RealtimeItem> {
    let mut items: Vec<(String, RealtimeItem)> = Vec::new();
    for (at, e) in realtime_events(out) {
        let Some(id) = e["item_id"].as_str() else { continue };
        let index = match items.iter().position(|(known, _)| known == id) {
            Some(index) => index,
            None => {
                items.push((id.to_owned(), RealtimeItem::default()));
                items.len() - 1
            }
        };
        let item = &mut items[index].1;
        match e["type"].as_str().unwrap() {
            "conversation.item.input_audio_transcription.delta" => {
                item.deltas.push_str(e["delta"].as_str().unwrap());
                item.delta_times.push(at);
            }
            "conversation.item.input_audio_transcription.completed" => {
                item.transcript = e["transcript"].as_str().unwrap().to_owned();
                assert!(e["usage"]["seconds"].as_f64().unwrap() > 0.0, "{e}");
                item.done = at;
            }
            _ => {}
        }
    }
    items.into_iter().map(|(_, item)| item).filter(|item| !item.transcript.is_empty()).collect()
}

fn joined<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    texts.collect::<Vec<_>>().join(" ")
}

/// Every delta, speaker segment (a final's part) and completed transcript with the second it
/// arrived, one a line: where a path's words part from our protocol's, this says whether early
/// deltas or a final put them there.
fn text_events(out: &Value) -> String {
    let text_of = |e: &Value| e.get("delta").or_else(|| e.get("text")).or_else(|| e.get("transcript")).cloned();
    let lines =
        realtime_events(out).into_iter().filter_map(|(at, e)| Some(format!("{at:.2} {} {}", e["type"], text_of(e)?)));
    lines.collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn openais_sdk_streams_the_call_with_early_deltas_and_speakers() {
    let _heavy = HEAVY.read().await;
    let app = default_app();
    let reference = stm_text(&recording("sample.stm")).unwrap();
    let ours = our_wer(app, "call", &reference).await;
    let audio = raw_audio("call", "s16le", 24_000);
    let base = format!("http://{}/v1", app.addr);
    let out =
        run_client("openai_realtime_client.py", &[base, audio.display().to_string(), "pcm16".into(), "ga".into()])
            .await;
    let events = realtime_events(&out);
    assert_eq!(events[0].1["type"], "session.created", "{}", events[0].1);
    assert_eq!(events[0].1["session"]["type"], "transcription");
    assert!(events.iter().any(|(_, e)| e["type"] == "session.updated"));
    let items = realtime_items(&out);
    let text = joined(items.iter().map(|item| item.transcript.as_str()));
    let wer = word_error_rate(&reference, &text).wer();
    // The early deltas may word a few of the finals' words otherwise or miss some (words the
    // partials did not have, never sent out of order), but never send one twice: two words sent
    // again beside three missed came to 6.3% in the run that found that defect.
    let deltas = joined(items.iter().map(|item| item.deltas.as_str()));
    let apart = word_error_rate(&text, &deltas).wer();
    eprintln!("openai sdk {} (GA): WER {wer:.3} (ours {ours:.3}), deltas {apart:.3} apart", out["sdk_version"]);
    assert!(wer <= ours + 0.01, "WER {wer:.3} against our protocol's {ours:.3}: {text}\n{}", text_events(&out));
    assert!(apart < 0.06, "the deltas are {apart:.3} from the transcripts: {deltas}\n{}", text_events(&out));
    // Words stream while the utterance is still open: a delta well before its item completes.
    let early = items.iter().filter(|item| item.delta_times.first().is_some_and(|d| item.done - d >= 0.4)).count();
    assert!(early >= 2, "{items:?}");
    let speakers: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|(_, e)| e["type"] == "conversation.item.input_audio_transcription.segment")
        .map(|(_, e)| e["speaker"].as_str().unwrap())
        .collect();
    assert_eq!(speakers.len(), 2, "both callers: {speakers:?}");
    let completed = events.iter().find(|(_, e)| e["type"] == "conversation.item.input_audio_transcription.completed");
    assert!(completed.unwrap().1["logprobs"].as_array().is_some_and(|l| !l.is_empty()), "asked with include");
    assert!(events.iter().all(|(_, e)| e["type"] != "error"), "{out}");
}

#[tokio::test]
async fn openais_beta_sdk_sends_g711_and_a_commit_forces_the_item() {
    let _heavy = HEAVY.read().await;
    let app = default_app();
    let audio = raw_audio("jfk.wav", "mulaw", 8_000);
    let base = format!("http://{}/v1", app.addr);
    let args = [base, audio.display().to_string(), "pcmu".into(), "beta".into(), "6.5".into()];
    let out = run_client("openai_realtime_client.py", &args).await;
    let events = realtime_events(&out);
    assert_eq!(events[0].1["type"], "transcription_session.created");
    let updated = events.iter().find(|(_, e)| e["type"] == "transcription_session.updated").unwrap().1;
    assert_eq!(updated["session"]["input_audio_format"], "g711_ulaw");
    let items = realtime_items(&out);
    let text = joined(items.iter().map(|item| item.transcript.as_str()));
    assert!(word_error_rate(JFK_TEXT, &text).wer() <= 0.15, "{text}");
    let sent = events.iter().find(|(_, e)| e["type"] == "_commit_sent").unwrap().0;
    let done = items.iter().map(|item| item.done).find(|done| *done > sent).unwrap();
    assert!(done - sent < 1.5, "the commit completed its item {:.2} s after it was sent", done - sent);
}

#[tokio::test]
async fn deepgrams_javascript_sdk_streams_under_node() {
    let _heavy = HEAVY.read().await;
    let app = default_app();
    let ours = our_wer(app, "jfk.wav", JFK_TEXT).await;
    let audio = raw_audio("jfk.wav", "s16le", 16_000);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/deepgram_client.mjs");
    let output = tokio::process::Command::new("node")
        .arg(script)
        .args([&app.addr.to_string(), "any-key", &audio.display().to_string(), "linear16", "16000", "-"])
        .output()
        .await
        .expect("node, with tests/clients/node_modules installed by scripts/test.sh");
    assert!(output.status.success(), "node client failed: {}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    let wer = word_error_rate(JFK_TEXT, &deepgram_text(&out)).wer();
    eprintln!("deepgram js sdk {}: WER {wer:.3} (ours {ours:.3})", out["sdk_version"]);
    assert!(wer <= ours + 0.01, "WER {wer:.3} against our protocol's {ours:.3}: {}", deepgram_text(&out));
    let all: Vec<&Value> = messages(&out, "message").map(|(_, m)| m).collect();
    // Interim results reach the SDK while an utterance is open (not necessarily before the first
    // final: on a starved machine the first utterance's partials can all be skipped).
    let last_final = all.iter().rposition(|m| m["type"] == "Results" && m["is_final"] == true).unwrap();
    assert!(all[..last_final].iter().any(|m| m["type"] == "Results" && m["is_final"] == false), "interim results");
    assert!(deepgram_finals(&out).iter().all(|(_, m)| m["channel"]["alternatives"][0]["words"][0]["speaker"] == 0));
    assert_eq!(all.last().unwrap()["type"], "Metadata");
}

/// Opens a WebSocket with extra request headers; the refusal's status and body if refused.
async fn try_upgrade(url: &str, headers: &[(&'static str, &str)]) -> Result<Ws, (u16, Value)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    for &(name, value) in headers {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(|b| serde_json::from_slice(b).unwrap()).unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn vendor_handshakes_are_refused_in_each_vendors_shape() {
    let app = spawn_app(|c| c.auth.api_keys = vec!["dg-key-1".into()]);
    let listen = |query: &str| format!("ws://{}/v1/listen?{query}", app.addr);
    let token = [("authorization", "Token dg-key-1")];
    let (status, body) = try_upgrade(&listen("model=nova-3&encoding=opus"), &token).await.err().unwrap();
    assert_eq!((status, body["err_code"].as_str()), (400, Some("INVALID_QUERY_PARAMETER")), "{body}");
    assert!(body["err_msg"].as_str().unwrap().contains("encoding") && body["request_id"].is_string(), "{body}");
    let (status, _) = try_upgrade(&listen("model=nova-3&encoding=linear16"), &[("authorization", "Token wrong")])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 401, "a wrong key is refused before anything else");
    let mut ws = try_upgrade(&listen("model=nova-3&encoding=linear16&sample_rate=16000"), &token).await.unwrap();
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let metadata = loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => break serde_json::from_str::<Value>(&text).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("closed before Metadata: {other:?}"),
        }
    };
    assert_eq!(metadata["type"], "Metadata", "{metadata}");
    // A browser's way: the key as the second of the subprotocols `token, KEY`.
    let browser = [("sec-websocket-protocol", "token, dg-key-1")];
    let ws = try_upgrade(&listen("model=nova-3&encoding=linear16"), &browser).await;
    assert!(ws.is_ok(), "admitted with its key offered as a subprotocol");

    let realtime = format!("ws://{}/v1/realtime?model=gpt-realtime", app.addr);
    let bearer = [("authorization", "Bearer dg-key-1")];
    let (status, body) = try_upgrade(&realtime, &bearer).await.err().unwrap();
    assert_eq!(status, 400);
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["param"].as_str()),
        (Some("invalid_request_error"), Some("intent"))
    );
    let english_only = format!("{realtime}&intent=transcription&language=fr");
    let (status, body) = try_upgrade(&english_only, &bearer).await.err().unwrap();
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("language")), "{body}");
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn malformed_vendor_events_get_their_protocols_errors_and_the_session_goes_on() {
    use base64::Engine as _;
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let url = format!("ws://{}/v1/realtime?intent=transcription", app.addr);
    let mut ws = try_upgrade(&url, &[]).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "session.created");
    let bad = [
        ("{not json", "invalid_json"),
        (r#"{"type":"conversation.item.create"}"#, "unknown_event_type"),
        (r#"{"type":"input_audio_buffer.append","audio":"***"}"#, "invalid_base64"),
        (
            r#"{"type":"session.update","session":{"audio":{"input":{"format":{"type":"audio/flac"}}}}}"#,
            "invalid_value",
        ),
    ];
    for (event, code) in bad {
        send_text(&mut ws, event).await;
        let error = next_json(&mut ws).await;
        assert_eq!((error["type"].as_str(), error["error"]["code"].as_str()), (Some("error"), Some(code)), "{event}");
    }
    // The session still transcribes: jfk at 24 kHz, fast, then a commit.
    let samples = speech_service::audio::wav::read_16k(&recording("jfk.wav")).unwrap();
    let at_24k: Vec<u8> =
        (0..samples.len() * 3 / 2).flat_map(|i| ((samples[i * 2 / 3] * 32767.0) as i16).to_le_bytes()).collect();
    for chunk in at_24k.chunks(48_000) {
        let audio = base64::engine::general_purpose::STANDARD.encode(chunk);
        send_text(&mut ws, &format!(r#"{{"type":"input_audio_buffer.append","audio":"{audio}"}}"#)).await;
    }
    send_text(&mut ws, r#"{"type":"input_audio_buffer.commit"}"#).await;
    let mut transcript = String::new();
    while !transcript.contains("country") {
        let event = next_json(&mut ws).await;
        assert_ne!(event["type"], "error", "{event}");
        if event["type"] == "conversation.item.input_audio_transcription.completed" {
            transcript.push_str(event["transcript"].as_str().unwrap());
        }
    }

    let deepgram = format!("ws://{}/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000", app.addr);
    let mut ws = try_upgrade(&deepgram, &[]).await.unwrap();
    send_text(&mut ws, "{not json").await;
    let error = next_json(&mut ws).await;
    assert_eq!(
        (error["type"].as_str(), error["variant"].as_str()),
        (Some("Error"), Some("INVALID_MESSAGE")),
        "{error}"
    );
    send_binary(&mut ws, jfk_pcm()).await;
    send_text(&mut ws, r#"{"type":"CloseStream"}"#).await;
    let mut said = String::new();
    loop {
        let message = next_json(&mut ws).await;
        match message["type"].as_str() {
            Some("Results") => said.push_str(message["channel"]["alternatives"][0]["transcript"].as_str().unwrap()),
            Some("Metadata") => break,
            _ => {}
        }
    }
    assert!(said.contains("country"), "{said}");
}

/// jfk.wav through our protocol as 8 kHz mu-law, with `query` and `configure` messages sent
/// before the audio; the messages that came back.
async fn jfk_by_phone(app: &TestApp, query: &str, configure: &[ClientMessage]) -> Vec<ServerMessage> {
    let url = format!("{}?encoding=mulaw&sample_rate=8000{query}", app.ws_url());
    let mut ws = connect(&url).await;
    assert!(matches!(next_message(&mut ws).await, ServerMessage::Ready { .. }));
    let mut answers = Vec::new();
    for message in configure {
        send_message(&mut ws, message).await;
        answers.push(next_message(&mut ws).await);
    }
    for chunk in std::fs::read(raw_audio("jfk.wav", "mulaw", 8_000)).unwrap().chunks(8_000) {
        send_binary(&mut ws, chunk.to_vec()).await;
    }
    send_message(&mut ws, &ClientMessage::Close).await;
    let (messages, _) = until_closed(&mut ws).await;
    answers.extend(messages);
    answers
}

#[tokio::test]
async fn key_terms_get_a_misheard_word_right_and_change_mid_stream() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let said = |messages: &[ServerMessage]| final_text(messages).to_lowercase();
    // Over the phone, tiny.en hears "fellow america" (docs/BENCHMARKS.md, "Key terms").
    let plain = said(&jfk_by_phone(app, "", &[]).await);
    assert!(!plain.contains("americans") && plain.contains("country"), "{plain}");
    let helped = said(&jfk_by_phone(app, "&keyterm=Americans", &[]).await);
    assert!(helped.contains("americans"), "{helped}");

    let too_many =
        ClientMessage::Configure { keyterms: Some(vec!["x".into(); 51]), prompt: None, endpointing_ms: None };
    let terms =
        ClientMessage::Configure { keyterms: Some(vec!["Americans".into()]), prompt: None, endpointing_ms: None };
    let messages = jfk_by_phone(app, "", &[too_many, terms]).await;
    assert_eq!(error_code(&messages[0]), Some(ErrorCode::InvalidVocabulary), "{:?}", messages[0]);
    let ServerMessage::Configured { vocabulary, .. } = &messages[1] else { panic!("{:?}", messages[1]) };
    assert_eq!(vocabulary.keyterms, ["Americans"]);
    assert!(said(&messages).contains("americans"), "{}", said(&messages));
}

/// The close frame's code once the server ends the connection (frames before it skipped).
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn vendor_sessions_are_listed_and_ended_through_rest_like_ours() {
    let app = spawn_app(|_| {});
    let realtime = format!("ws://{}/v1/realtime?intent=transcription", app.addr);
    let mut openai = try_upgrade(&realtime, &[]).await.unwrap();
    let created = next_json(&mut openai).await;
    let openai_id = created["session"]["id"].as_str().unwrap().trim_start_matches("sess_").to_owned();
    let deepgram = format!("ws://{}/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000", app.addr);
    let mut dg = try_upgrade(&deepgram, &[]).await.unwrap();
    // Deepgram's protocol sends nothing when a stream opens, so its session may register a
    // moment after the upgrade: the listing is read again until it shows.
    let active = async || http(&app, "GET", "/sessions?state=active").await.1;
    wait_until("both sessions listed", async || active().await["sessions"].as_array().is_some_and(|s| s.len() >= 2))
        .await;
    let listed = active().await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    let mulaw = sessions.iter().find(|s| s["encoding"] == "mulaw").expect("Deepgram's session, in its encoding");
    assert_eq!(mulaw["sample_rate"], 8000);
    let dg_id = mulaw["id"].as_str().unwrap().to_owned();
    assert!(sessions.iter().any(|s| s["id"] == openai_id.as_str()), "the session.created id is the REST id");

    for (id, ws) in [(openai_id, &mut openai), (dg_id, &mut dg)] {
        let (status, body) = http(&app, "DELETE", &format!("/sessions/{id}")).await;
        assert_eq!((status, body["status"].as_str()), (202, Some("terminating")), "{body}");
        assert_eq!(close_code(ws).await, Some(4003), "ended with `terminated`");
    }
    let (_, ended) = http(&app, "GET", "/sessions?state=ended").await;
    let reasons: Vec<&str> =
        ended["sessions"].as_array().unwrap().iter().map(|s| s["close_reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["terminated", "terminated"], "{ended}");
}
