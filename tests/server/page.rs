//! The browser page: its headers without a browser, then the real thing in Debian's Chromium
//! (tests/browser/page.mjs, Playwright) with a fake microphone playing the two-person call.

use std::path::PathBuf;

use speech_service::domain::{DecodeQuality, Segment, Transcript};
use speech_service::engine::loops::{compression_ratio, is_looping};
use speech_service::eval::reference::{stm_text, JFK_TEXT};
use speech_service::eval::wer::{normalize, word_error_rate};

use crate::common::*;

const KEY: &str = "page-test-key+/=";

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

fn status(response: &str) -> u16 {
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_page_is_public_typed_cached_and_locked_down() {
    let app = spawn_app(|c| c.auth.api_keys = vec![KEY.to_owned()]);
    let page = whole_response(&app, "GET", "/", "", &[]).await;
    assert_eq!(status(&page), 200, "the page needs no key: {page}");
    assert_eq!(header(&page, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&page, "cache-control"), Some("no-cache"));
    let csp = header(&page, "content-security-policy").expect("a CSP");
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(page.contains("<script type=\"module\" src=\"/assets/app.js\">"));

    // Revalidation: the same ETag gets 304 and no body.
    let etag = header(&page, "etag").expect("an ETag").to_owned();
    let again = whole_response(&app, "GET", "/", &format!("If-None-Match: {etag}\r\n"), &[]).await;
    assert_eq!(status(&again), 304, "{again}");

    for (asset, kind) in [("app.js", "text/javascript"), ("capture.js", "text/javascript"), ("style.css", "text/css")] {
        let response = whole_response(&app, "GET", &format!("/assets/{asset}"), "", &[]).await;
        assert_eq!(status(&response), 200, "{asset}");
        assert!(header(&response, "content-type").unwrap().starts_with(kind), "{asset}");
        assert_eq!(header(&response, "cache-control"), Some("public, max-age=3600"));
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
    }
    let missing = whole_response(&app, "GET", "/assets/secret.txt", "", &[]).await;
    assert_eq!(status(&missing), 404);
    // The data behind the page still needs the key.
    assert_eq!(http_text(&app, "GET", "/sessions").await.0, 401);
}

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What the fake microphone plays, for how long, and whether the run stops after it.
struct Live<'a> {
    wav: &'a std::path::Path,
    seconds: u32,
    only: bool,
}

/// Runs tests/browser/page.mjs against `app`; returns what the page showed.
async fn drive_page(app: &TestApp, full: &TestApp, live: Live<'_>, out_dir: &std::path::Path) -> serde_json::Value {
    let playwright = browser_dir().join("node_modules/playwright-core");
    assert!(playwright.is_dir(), "{} is missing: run scripts/test.sh, which installs it", playwright.display());
    std::fs::create_dir_all(out_dir).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(browser_dir().join("page.mjs"))
        .env("BASE_URL", format!("http://{}", app.addr))
        .env("API_KEY", KEY)
        .env("FULL_URL", format!("http://{}", full.addr))
        .env("LIVE_WAV", live.wav)
        .env("LIVE_SECONDS", live.seconds.to_string())
        .env("ONLY_LIVE", if live.only { "1" } else { "" })
        .env("FILE_WAV", recording("jfk.wav"))
        .env("OUT_DIR", out_dir)
        .output()
        .await
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser run failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// The transcript the server stored for `session` (read with the page's key).
async fn stored_transcript(app: &TestApp, session: &str) -> Vec<Segment> {
    let auth = format!("Authorization: Bearer {KEY}\r\n");
    let (status, body) = http_with_headers(app, "GET", &format!("/sessions/{session}"), &auth).await;
    assert_eq!(status, 200, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).unwrap();
    serde_json::from_value(session["transcript"].clone()).unwrap()
}

/// The call's WER streamed straight to the socket (no browser), as fast as the server takes it.
async fn socket_wer(app: &TestApp, reference: &str) -> f64 {
    let url = format!("{}?token={}", app.ws_url(), url_encode(KEY));
    let options = speech_service::client::StreamOptions { speed: 0.0, ..Default::default() };
    let received = speech_service::client::stream_file(&url, &recording("sample.wav"), &options, |_| {}).await.unwrap();
    word_error_rate(reference, &final_text(&messages_of(&received))).wer()
}

fn as_transcript(s: &Segment) -> Transcript {
    let quality = DecodeQuality { compression_ratio: compression_ratio(&s.text), ..Default::default() };
    Transcript { text: s.text.clone(), words: s.words.clone(), language: s.language.clone(), quality }
}

fn texts(lines: &serde_json::Value) -> Vec<String> {
    lines.as_array().unwrap().iter().map(|l| l["text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_page_captions_the_microphone_with_speakers_and_transcribes_a_dropped_file() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|c| c.auth.api_keys = vec![KEY.to_owned()]);
    // A second server whose one session slot a test client holds (silent, so never idle-closed).
    let full = spawn_app(|c| {
        c.limits.max_sessions = 1;
        c.limits.idle_timeout_s = 600;
    });
    let mut holder = connect(&full.ws_url()).await;
    assert!(matches!(next_message(&mut holder).await, ServerMessage::Ready { .. }));
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-test");
    let live = Live { wav: &recording("sample.wav"), seconds: 31, only: false };
    let page = drive_page(&app, &full, live, &out_dir).await;
    eprintln!("page: {page:#}");
    assert!(page["page_errors"].as_array().unwrap().is_empty(), "script errors: {}", page["page_errors"]);
    assert!(page["refusal"].as_str().unwrap().contains("API key"), "{}", page["refusal"]);
    assert!(page["max_level"].as_f64().unwrap() > 10.0, "the level meter moved");

    // The words of the call, as the page showed them.
    let shown = texts(&page["lines"]);
    let reference = stm_text(&recording("sample.stm")).unwrap();
    let counts = word_error_rate(&reference, &shown.join(" "));
    assert!(counts.wer() <= 0.30, "WER {:.3} ({counts:?}): {shown:?}", counts.wer());

    // Through the browser's audio processing the stored transcript is nearly as good as over
    // the socket, and no final of it is a repetition loop.
    let session = page["session"].as_str().unwrap();
    let stored = stored_transcript(&app, session).await;
    let stored_text: Vec<&str> = stored.iter().map(|s| s.text.as_str()).collect();
    let page_wer = word_error_rate(&reference, &stored_text.join(" ")).wer();
    let socket_wer = socket_wer(&app, &reference).await;
    eprintln!("two-person call: WER {page_wer:.3} through the page, {socket_wer:.3} over the socket");
    // Alone 0.173 against 0.148 (the 5 points), in every run. On a starved machine
    // Chromium's capture and audio processing give slightly different audio each run, and
    // tiny.en reads it differently (0.173-0.259 seen: CI, or the test pinned to one core); the
    // server's words are a function of the audio it got (the captured audio, replayed in real
    // time or at once, gives the same finals). So the bound here is 15 points. A loop is far
    // more: "And so my fellow Americans." seven times adds some 30 points.
    assert!(page_wer <= socket_wer + 0.15, "page {page_wer:.3} against socket {socket_wer:.3}: {stored_text:?}");
    assert!(stored.iter().all(|s| !is_looping(&as_transcript(s))), "a looping final was stored: {stored_text:?}");
    // Two people, two labels, two colours: each label its own colour, and two labels hold
    // nearly all the words (live clustering may give a lone first "Hello." a label of its own).
    let lines = page["lines"].as_array().unwrap();
    let mut pairs: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["speaker"].as_str().unwrap(), l["colour"].as_str().unwrap())).collect();
    pairs.sort();
    pairs.dedup();
    let mut colours: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    colours.sort();
    colours.dedup();
    assert_eq!(colours.len(), pairs.len(), "one colour per speaker, one speaker per colour: {pairs:?}");
    let mut words: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in lines {
        *words.entry(l["speaker"].as_str().unwrap()).or_default() +=
            l["text"].as_str().unwrap().split_whitespace().count();
    }
    let mut counts: Vec<usize> = words.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = counts.iter().sum();
    assert!(counts.len() >= 2 && (counts[0] + counts[1]) * 10 >= total * 9, "two speakers carry the call: {words:?}");
    assert!(counts[1] * 4 >= total, "the second voice is a real speaker: {words:?}");
    assert!(lines.iter().all(|l| l["latency"].as_str().unwrap().ends_with(" s")), "each final shows its latency");

    // The download holds the same words as the page (its lines carry `S1: ` labels).
    let download = page["download"].as_str().unwrap();
    let unlabelled: Vec<&str> = download.lines().map(|l| l.split_once(": ").map_or(l, |(_, t)| t)).collect();
    assert_eq!(normalize(&unlabelled.join(" ")), normalize(&shown.join(" ")), "{download}");

    // The session, reopened from the list, shows the same lines.
    let opened: Vec<&str> = page["opened_lines"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(opened, shown);

    // The dropped file, with its speaker.
    let file_lines = page["file_lines"].as_array().unwrap();
    let file_text = texts(&page["file_lines"]).join(" ");
    assert!(word_error_rate(JFK_TEXT, &file_text).wer() <= 0.10, "{file_text}");
    assert!(file_lines.iter().all(|l| l["speaker"] == "S1"), "{file_lines:?}");
    assert!(page["file_error"].as_str().unwrap().contains("could not be read as audio"), "{}", page["file_error"]);
    assert_eq!(page["phone_overflow"], false, "the page fits a phone-sized screen");
    assert!(out_dir.join("page.png").is_file());

    // Keyboard first, and errors a person can act on.
    assert_eq!(page["tab_order"], serde_json::json!(["skip", "key", "start"]), "tab order");
    assert_eq!(page["delete_status"], 202);
    assert!(page["ended_message"].as_str().unwrap().contains("ended on the server"), "{}", page["ended_message"]);
    assert_eq!(page["ended_retry"], true, "a way to start again");
    assert!(
        page["denied_message"].as_str().unwrap().contains("Microphone access was denied"),
        "{}",
        page["denied_message"]
    );
    assert!(page["full_message"].as_str().unwrap().contains("server is full"), "{}", page["full_message"]);
    drop(holder);
}

/// Silence, then white noise, then mains hum with noise: what a microphone hears with no one
/// speaking. A 16 kHz WAV file in the test's scratch folder.
fn quiet_wav() -> PathBuf {
    let path = scratch("quiet.wav");
    let mut seed = 12345u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    };
    let second = 16_000;
    let mut samples = vec![0.0f32; 4 * second];
    samples.extend((0..4 * second).map(|_| 0.05 * noise()));
    let hum = |i: usize| 0.1 * (i as f32 * 50.0 * std::f32::consts::TAU / 16_000.0).sin();
    samples.extend((0..4 * second).map(|i| hum(i) + 0.02 * noise()));
    speech_service::audio::wav::write_16k(&path, &samples).unwrap();
    path
}

#[tokio::test]
async fn the_page_sends_no_words_for_silence_noise_and_hum() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|c| c.auth.api_keys = vec![KEY.to_owned()]);
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-test-quiet");
    let quiet = quiet_wav();
    let page = drive_page(&app, &app, Live { wav: &quiet, seconds: 12, only: true }, &out_dir).await;
    assert!(page["page_errors"].as_array().unwrap().is_empty(), "script errors: {}", page["page_errors"]);
    assert_eq!(texts(&page["lines"]), Vec::<String>::new(), "no words on the page");
    let stored = stored_transcript(&app, page["session"].as_str().unwrap()).await;
    let words: Vec<&str> = stored.iter().map(|s| s.text.as_str()).filter(|t| !t.trim().is_empty()).collect();
    assert!(words.is_empty(), "no words stored: {words:?}");
}
