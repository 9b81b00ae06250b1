//! Bad input gets a specific error, never a panic or a hang, and the server keeps serving.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::common::*;

/// Connects expecting the upgrade to be refused; returns the status and JSON body.
async fn refused(url: &str) -> (u16, serde_json::Value) {
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (response.status().as_u16(), serde_json::from_slice(&body).expect("JSON error body"))
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected the upgrade to be refused"),
    }
}

#[tokio::test]
async fn bad_query_values_are_refused_with_400_naming_the_parameter() {
    let app = default_app();
    for (query, name) in [
        ("sample_rate=abc", "sample_rate"),
        ("encoding=opus", "encoding"),
        ("language=fr", "language"),
        ("interim_results=maybe", "interim_results"),
        ("speed=2", "speed"),
        ("max_speakers=0", "max_speakers"),
        ("min_speakers=3&max_speakers=2", "min_speakers"),
        ("diarize=perhaps", "diarize"),
        ("endpointing_ms=20", "endpointing_ms"),
    ] {
        let (status, body) = refused(&format!("{}?{query}", app.ws_url())).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], "invalid_parameter");
        assert!(body["error"]["message"].as_str().unwrap().contains(name), "{query}: {body}");
    }
}

#[tokio::test]
async fn malformed_and_unknown_messages_get_errors_and_the_session_goes_on() {
    let app = default_app();
    let mut ws = connect(&app.ws_url()).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    send_text(&mut ws, "{not json").await;
    let m = next_json(&mut ws).await;
    assert_eq!((m["type"].as_str(), m["code"].as_str()), (Some("error"), Some("invalid_json")));
    send_text(&mut ws, r#"{"type":"rewind"}"#).await;
    let m = next_json(&mut ws).await;
    assert_eq!(m["code"], "unknown_message_type");
    assert!(m["message"].as_str().unwrap().contains("rewind"));
    send_text(&mut ws, r#"{"type":"keepalive"}"#).await;
    send_binary(&mut ws, vec![0; 3200]).await;
    send_text(&mut ws, r#"{"type":"close"}"#).await;
    let (messages, code) = until_closed(&mut ws).await;
    let closed = messages.last().unwrap();
    assert_eq!((closed["type"].as_str(), closed["reason"].as_str()), (Some("closed"), Some("client_close")));
    assert!((closed["audio_seconds"].as_f64().unwrap() - 0.1).abs() < 0.04, "{closed}");
    assert_eq!(code, Some(1000));
}

#[tokio::test]
async fn a_trailing_odd_byte_is_reported_at_close() {
    let app = default_app();
    let mut ws = connect(&app.ws_url()).await;
    next_json(&mut ws).await;
    send_binary(&mut ws, vec![0; 3201]).await;
    send_text(&mut ws, r#"{"type":"close"}"#).await;
    let (messages, _) = until_closed(&mut ws).await;
    let error = messages.iter().find(|m| m["type"] == "error").expect("an error about the odd byte");
    assert_eq!(error["code"], "incomplete_sample");
    assert_eq!(messages.last().unwrap()["type"], "closed");
}

#[tokio::test]
async fn oversized_frames_close_the_session_with_1009() {
    let app = spawn_app(|c| c.limits.max_frame_bytes = 4096);
    for size in [5_000, 20_000] {
        let mut ws = connect(&app.ws_url()).await;
        next_json(&mut ws).await;
        send_binary(&mut ws, vec![0; size]).await;
        let (messages, code) = until_closed(&mut ws).await;
        assert_eq!(messages[0]["code"], "frame_too_large", "{size} bytes: {messages:?}");
        assert_eq!(messages.last().unwrap()["reason"], "frame_too_large");
        assert_eq!(code, Some(1009));
    }
}

#[tokio::test]
async fn an_idle_client_is_told_and_closed() {
    let app = spawn_app(|c| c.limits.idle_timeout_s = 1);
    let mut ws = connect(&app.ws_url()).await;
    next_json(&mut ws).await;
    let (messages, code) = until_closed(&mut ws).await;
    assert_eq!(messages[0]["code"], "idle_timeout");
    assert_eq!(messages.last().unwrap()["reason"], "idle_timeout");
    assert_eq!(code, Some(4001));
}

#[tokio::test]
async fn session_limit_refuses_with_503_and_a_vanished_client_frees_its_slot() {
    let _heavy = HEAVY.lock().await;
    let app = spawn_app(|c| c.limits.max_sessions = 1);
    let audio = speech_service::audio::wav::read(&recording("jfk.wav")).unwrap();
    let mut first = connect(&app.ws_url()).await;
    next_json(&mut first).await;
    let (status, body) = refused(&app.ws_url()).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "too_many_sessions");

    // Half an utterance, then the client vanishes without a close frame.
    let bytes =
        speech_service::client::encode(&audio.samples[..40_000], speech_service::audio::pcm::Encoding::PcmS16le);
    first.send(tokio_tungstenite::tungstenite::Message::Binary(bytes.into())).await.unwrap();
    drop(first);

    // The session drains its utterance and gives the slot back; a new client gets in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut second = loop {
        match tokio_tungstenite::connect_async(app.ws_url()).await {
            Ok((ws, _)) => break ws,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("slot never freed: {e}"),
        }
    };
    assert_eq!(next_json(&mut second).await["type"], "ready");
    send_text(&mut second, r#"{"type":"close"}"#).await;
    let (messages, _) = until_closed(&mut second).await;
    assert_eq!(messages.last().unwrap()["reason"], "client_close");
}
