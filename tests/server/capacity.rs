//! Many streams: load-aware admission and readiness on the real binary, the memory an idle
//! session costs, faster finals on request, and the load generator against a real server.

use std::time::Duration;

use speech_service::client::{stream_file, ClientError, Refused, StreamOptions};
use speech_service::load::{self, LoadFile, LoadOptions};

use crate::common::*;

async fn refusal(url: &str) -> Refused {
    let err = stream_file(url, &recording("jfk.wav"), &StreamOptions::default(), |_| {}).await.unwrap_err();
    match err {
        ClientError::Refused(refused) => refused,
        other => panic!("expected a refusal at the upgrade, got {other}"),
    }
}

#[tokio::test]
async fn a_full_server_refuses_streams_and_admits_again_once_load_drops() {
    let _heavy = HEAVY.write().await;
    // Before anything is measured the configured cost applies: at 0.5 of the speaker engine
    // per stream, one stream fills it (target 0.8).
    let envs = [("SPEECH_ADMISSION__PRIOR_DIARIZE_COST", "0.5")];
    let (_server, app, _logs) = start_binary_with_env(&["serve", "--port", "0"], &fresh_data_dir(), &envs).await;
    let (status, ready) = http(&app, "GET", "/health/ready").await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")), "{ready}");

    let url = app.ws_url();
    let first = tokio::spawn(async move {
        stream_file(&url, &recording("jfk.wav"), &StreamOptions::default(), |_| {}).await.unwrap()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, ready) = http(&app, "GET", "/health/ready").await;
    assert_eq!((status, ready["status"].as_str()), (503, Some("at_capacity")), "{ready}");
    assert_eq!(ready["load"]["diarizing_streams"], 1);
    let refused = refusal(&app.ws_url()).await;
    assert_eq!((refused.status, refused.code.as_str(), refused.retry_after), (503, "at_capacity", Some(5)));
    assert!(refused.message.contains("speaker engine"), "{}", refused.message);
    // The vendors' protocols are admitted the same way.
    let realtime = format!("ws://{}/v1/realtime?intent=transcription", app.addr);
    let deepgram = format!("{}?model=nova-3&encoding=linear16&diarize=true", app.ws_url());
    for url in [realtime, deepgram] {
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                assert_eq!(response.status(), 503, "{url}: {body}");
                assert!(body.contains("at_capacity"), "{url}: {body}");
            }
            other => panic!("{url}: expected 503 at the upgrade, got {other:?}"),
        }
    }
    // A stream without speakers does not need the full engine.
    let plain = format!("{}?diarize=false", app.ws_url());
    let (mut ws, _) = tokio_tungstenite::connect_async(&plain).await.expect("admitted without speakers");
    send_message(&mut ws, &ClientMessage::Close).await;
    until_closed(&mut ws).await;

    let received = first.await.unwrap();
    assert!(final_text(&messages_of(&received)).contains("country"));
    wait_until("readiness once the stream ended", async || http(&app, "GET", "/health/ready").await.0 == 200).await;
    let mut ws = connect(&app.ws_url()).await;
    assert!(matches!(next_message(&mut ws).await, ServerMessage::Ready { .. }));
    let (_, stats) = http(&app, "GET", "/stats").await;
    assert_eq!(stats["sessions"]["rejected"], 3, "ours, OpenAI's and Deepgram's: {stats}");
}

/// RSS of the server process, from its own `/stats`.
async fn rss_mb(app: &TestApp) -> f64 {
    http(app, "GET", "/stats").await.1["process"]["rss_bytes"].as_f64().unwrap() / 1e6
}

#[tokio::test]
async fn a_hundred_idle_sessions_cost_little_memory() {
    let app = spawn_app(|c| c.limits.max_sessions = 128);
    let mut sockets = Vec::new();
    // Warm up the runtime and the first session's buffers before the baseline.
    sockets.push(connect(&app.ws_url()).await);
    next_message(sockets.last_mut().unwrap()).await;
    let before = rss_mb(&app).await;
    for batch in 0..11 {
        if batch > 0 {
            // New sessions count as streaming for a second until they send audio or go idle.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        for _ in 0..9 {
            let mut ws = connect(&format!("{}?diarize=false", app.ws_url())).await;
            assert!(matches!(next_message(&mut ws).await, ServerMessage::Ready { .. }));
            sockets.push(ws);
        }
    }
    assert_eq!(sockets.len(), 100);
    let added = rss_mb(&app).await - before;
    assert!(added < 300.0, "100 idle sessions added {added:.0} MB");
    let (_, stats) = http(&app, "GET", "/stats").await;
    assert_eq!(stats["sessions"]["active"], 100);
}

#[tokio::test]
async fn endpointing_ms_sets_the_pause_that_ends_an_utterance() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let speed = StreamOptions { speed: 0.0, ..Default::default() };
    let run = async |query: &str| {
        let url = format!("{}?diarize=false{query}", app.ws_url());
        let received = stream_file(&url, &recording("jfk.wav"), &speed, |_| {}).await.unwrap();
        finals(&messages_of(&received)).len()
    };
    let default_finals = run("").await;
    let patient_finals = run("&endpointing_ms=2000").await;
    assert!(patient_finals < default_finals, "{patient_finals} finals at 2 s against {default_finals} by default");
}

#[tokio::test]
async fn the_load_generator_measures_concurrent_real_streams() {
    let _heavy = HEAVY.write().await;
    let app = default_app();
    let jfk = LoadFile::open(&recording("jfk.wav"), None, 1).unwrap();
    let options = LoadOptions {
        url: app.ws_url(),
        files: vec![jfk],
        stagger: Duration::from_millis(370),
        diarize: None,
        query: Vec::new(),
        speed: 1.0,
        token: None,
    };
    let report = load::run_level(&options, 2).await.unwrap();
    assert_eq!((report.streams, report.admitted), (2, 2));
    assert!(report.errors.is_empty() && report.refused.is_empty(), "{report:?}");
    for stream in &report.per_stream {
        assert_eq!(stream.wer, Some(0.0), "{}", stream.text);
        assert!(stream.partials_per_2s() >= 1.0, "{} partials over {} s", stream.partials, stream.speech_seconds);
        assert!(!stream.final_latency.is_empty() && stream.final_latency.iter().all(|l| *l > 0.0));
    }
    assert!(report.server.rss_mb_max.unwrap() > 100.0 && report.server.cpu_cores.unwrap() > 0.0);
    let row = load::report::table_row(&report);
    assert!(row.starts_with("| 2 | 2 | 0 |"), "{row}");
}
