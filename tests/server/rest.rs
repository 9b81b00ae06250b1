//! The REST API through a real HTTP client against a real server: health, sessions, statistics.

use crate::common::*;

#[tokio::test]
async fn detailed_health_lists_every_component() {
    let app = default_app();
    let (status, body) = http(app, "GET", "/health").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = http(app, "GET", "/health/detailed").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["components"]["asr"]["state"], "up");
    assert_eq!(body["components"]["asr"]["model"], "tiny.en");
    assert_eq!(body["components"]["asr"]["workers"], 2);
    assert_eq!(body["components"]["diarization"]["state"], "up");
    // Every other read-only route answers in its documented shape (`http` checks the schema).
    for path in ["/health/ready", "/sessions", "/stats", "/stats/workers", "/stats/aggregator"] {
        assert_eq!(http(app, "GET", path).await.0, 200, "{path}");
    }
    let (status, body) = http(app, "GET", "/sessions/no-such-session").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("session_not_found")));
    let (status, _) = http(app, "GET", "/sessions?state=asleep").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_session_is_listed_inspected_and_terminated_over_rest() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|_| {});
    let audio = speech_service::audio::wav::read(&recording("jfk.wav")).unwrap();
    let mut ws = connect(&app.ws_url()).await;
    let ServerMessage::Ready { session_id: id, .. } = next_message(&mut ws).await else { panic!("ready first") };
    // "And so my fellow Americans" and the pause after it: one final.
    let head = speech_service::client::encode(&audio.samples[..48_000], speech_service::audio::pcm::Encoding::PcmS16le);
    send_binary(&mut ws, head).await;
    while !matches!(next_message(&mut ws).await, ServerMessage::Final(_)) {}

    let (status, list) = http(&app, "GET", "/sessions?state=active").await;
    assert_eq!(status, 200);
    assert!(list["sessions"].as_array().unwrap().iter().any(|s| s["id"] == id && s["state"] == "active"), "{list}");
    let (status, session) = http(&app, "GET", &format!("/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert!((session["audio_seconds"].as_f64().unwrap() - 3.0).abs() < 0.05, "{session}");
    assert!(session["transcript"][0]["text"].as_str().unwrap().to_lowercase().contains("fellow"), "{session}");
    assert_eq!(session["transcript"][0]["speaker"], "S1");
    assert_eq!(session["client"].as_str().unwrap().split(':').next(), Some("127.0.0.1"));

    let (status, body) = http(&app, "DELETE", &format!("/sessions/{id}")).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("terminating")));
    let (messages, code) = until_closed(&mut ws).await;
    assert_eq!(messages.last().and_then(close_reason), Some(CloseReason::Terminated));
    assert_eq!(code, Some(4003));

    let (_, session) = http(&app, "GET", &format!("/sessions/{id}")).await;
    assert_eq!((session["state"].as_str(), session["close_reason"].as_str()), (Some("ended"), Some("terminated")));
    assert_eq!(session["speakers"], serde_json::json!(["S1"]));
    let (status, body) = http(&app, "DELETE", &format!("/sessions/{id}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("session_ended")));
    let (_, list) = http(&app, "GET", "/sessions?state=ended").await;
    assert_eq!(list["sessions"][0]["id"], id);

    let (status, stats) = http(&app, "GET", "/stats").await;
    assert_eq!(status, 200);
    assert_eq!((stats["sessions"]["total"].as_u64(), stats["sessions"]["active"].as_u64()), (Some(1), Some(0)));
    assert!(stats["segments"].as_u64().unwrap() >= 1 && stats["audio_seconds"].as_f64().unwrap() >= 2.9, "{stats}");
    assert!(stats["real_time_factor"].as_f64().unwrap() > 0.0);
    let (_, workers) = http(&app, "GET", "/stats/workers").await;
    assert_eq!(workers["workers"][0]["name"], "asr");
    assert!(workers["workers"][0]["stats"]["jobs"].as_u64().unwrap() >= 1, "{workers}");
    assert!(workers["workers"][0]["stats"]["job_seconds_p95"].as_f64().unwrap() > 0.0);
    assert_eq!(workers["workers"][1]["name"], "diarization");
    let (_, aggregator) = http(&app, "GET", "/stats/aggregator").await;
    assert!(aggregator["joined"].as_u64().unwrap() + aggregator["timed_out"].as_u64().unwrap() >= 1, "{aggregator}");

    let (status, metrics) = http_text(&app, "GET", "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "speech_sessions_total",
        "speech_sessions_active",
        "speech_segments_total",
        "speech_queue_depth{engine=\"asr\"}",
        // Finals are decoded at a pause (speculative) or after it (final): either counts.
        "speech_inference_seconds_bucket{engine=\"asr\",kind=\"",
        "speech_streams",
        "speech_stream_capacity{engine=\"diarization\"}",
        "speech_ready",
        "speech_final_latency_seconds_count",
        "speech_aggregator_finals_total{outcome=\"joined\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(!metrics.contains(&id), "no per-session label values");
    promtool_check(&metrics);
}

/// `promtool check metrics` when promtool is installed (the test set-up installs it).
fn promtool_check(metrics: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed: exposition format not checked");
        return;
    };
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && report.trim().is_empty(), "promtool: {report}\n{metrics}");
}

#[tokio::test]
async fn unknown_sessions_and_bad_filters_get_json_errors() {
    let app = default_app();
    let (status, body) = http(app, "GET", "/sessions/nope").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("session_not_found")));
    let (status, body) = http(app, "DELETE", "/sessions/nope").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("session_not_found")));
    let (status, body) = http(app, "GET", "/sessions?state=sleeping").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_parameter")));
}

/// A GET with one header line; returns the status.
async fn http_with(app: &TestApp, path: &str, header: &str) -> u16 {
    http_with_headers(app, "GET", path, &format!("{header}\r\n")).await.0
}

#[tokio::test]
async fn api_keys_guard_rest_and_websocket_but_not_health() {
    let app = spawn_app(|c| {
        c.auth.api_keys = vec!["key-one-123".into()];
        c.auth.public_metrics = false;
    });
    let (status, body) = http(&app, "GET", "/sessions").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(http_with(&app, "/sessions", "Authorization: Bearer wrong-key-000").await, 401);
    assert_eq!(http_with(&app, "/sessions", "Authorization: Bearer key-one-123").await, 200);
    assert_eq!(http(&app, "GET", "/health").await.0, 200, "health is public by default");
    assert_eq!(http(&app, "GET", "/metrics").await.0, 401, "metrics made private");

    // The WebSocket is refused before the upgrade without a key, and accepted with ?token=.
    match tokio_tungstenite::connect_async(app.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let mut ws = connect(&format!("{}?token=key-one-123", app.ws_url())).await;
    assert!(matches!(next_message(&mut ws).await, ServerMessage::Ready { .. }));
    send_message(&mut ws, &ClientMessage::Close).await;
    until_closed(&mut ws).await;
}

/// Transcripts are written to SQLite in the data directory and a new server on the same
/// directory (a restart) still serves them.
#[tokio::test]
async fn ended_transcripts_survive_a_restart() {
    let _heavy = HEAVY.write().await;
    let data = fresh_data_dir();
    let first = spawn_app_with_data(&data, |_| {});
    let options = speech_service::client::StreamOptions { speed: 0.0, ..Default::default() };
    let received =
        speech_service::client::stream_file(&first.ws_url(), &recording("jfk.wav"), &options, |_| {}).await.unwrap();
    let ServerMessage::Ready { session_id: id, .. } = &received[0].message else { panic!("ready first") };
    let finals = finals(&messages_of(&received)).len();

    let second = spawn_app_with_data(&data, |_| {});
    let mut session = serde_json::Value::Null;
    for _ in 0..50 {
        let (status, body) = http(&second, "GET", &format!("/sessions/{id}")).await;
        if status == 200 {
            session = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(session["state"], "ended", "{session}");
    assert_eq!(session["close_reason"], "client_close");
    assert_eq!(session["transcript"].as_array().unwrap().len(), finals);
    assert!((session["audio_seconds"].as_f64().unwrap() - 11.0).abs() < 0.05);
    let text: Vec<&str> =
        session["transcript"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(text.join(" ").to_lowercase().contains("ask not"), "{text:?}");

    let (status, srt) = http_text(&second, "GET", &format!("/sessions/{id}/transcript?format=srt")).await;
    assert_eq!(status, 200);
    assert!(srt.starts_with("1\n00:00:00,") && srt.contains("[S1]"), "{srt}");
    // Stored words come back: the WebVTT cues time each word.
    let (_, vtt) = http_text(&second, "GET", &format!("/sessions/{id}/transcript?format=vtt")).await;
    assert!(vtt.starts_with("WEBVTT") && vtt.contains("<v S1>") && vtt.contains(" <00:00:0"), "{vtt}");
    let (_, text) = http_text(&second, "GET", &format!("/sessions/{id}/transcript?format=text")).await;
    assert!(text.lines().count() == finals && text.starts_with("S1: "), "{text}");
    let (status, body) = http(&second, "GET", &format!("/sessions/{id}/transcript?format=doc")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_parameter")));
    let (_, list) = http(&second, "GET", "/sessions?state=ended").await;
    let listed = list["sessions"].as_array().unwrap().iter().find(|s| s["id"] == *id).cloned();
    // Read back from the store, a list entry still counts its segments and names its speakers.
    let listed = listed.unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(listed["segments"].as_u64(), Some(finals as u64), "{listed}");
    assert_eq!(listed["speakers"], serde_json::json!(["S1"]), "{listed}");
    let (_, health) = http(&second, "GET", "/health/detailed").await;
    assert_eq!(health["components"]["store"]["state"], "up");
}

#[tokio::test]
async fn responses_off_their_documented_schema_are_caught() {
    let app = default_app();
    let check =
        async |status: u16, body: serde_json::Value| check_documented(app, "GET", "/health", status, &body).await;
    assert_eq!(check(200, serde_json::json!({ "status": "ok" })).await, Ok(()));
    assert!(check(200, serde_json::json!({ "status": "ok", "extra": 1 })).await.is_err(), "undocumented field");
    assert!(check(200, serde_json::json!({ "status": 5 })).await.is_err(), "wrong type");
    assert!(check(200, serde_json::json!({})).await.is_err(), "missing field");
    assert!(check(418, serde_json::json!({ "status": "ok" })).await.is_err(), "undocumented status");
    let error = serde_json::json!({ "error": { "code": "unauthorized", "message": "missing API key" } });
    assert_eq!(check(401, error).await, Ok(()), "every route documents 401");
}

#[tokio::test]
async fn openapi_document_describes_every_rest_endpoint() {
    let app = default_app();
    let (status, doc) = http(app, "GET", "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health/detailed", "get"),
        ("/metrics", "get"),
        ("/sessions", "get"),
        ("/sessions/{id}", "get"),
        ("/sessions/{id}", "delete"),
        ("/sessions/{id}/transcript", "get"),
        ("/stats", "get"),
        ("/stats/workers", "get"),
        ("/stats/aggregator", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("SessionSnapshot") && schemas.contains_key("ErrorBody"));
    let (status, page) = http_text(app, "GET", "/docs").await;
    assert_eq!(status, 200);
    assert!(page.contains("/openapi.json"));
}
