//! A server killed mid-stream loses no final it sent: after a restart on the same data
//! directory the session is listed as `interrupted` with every final the client received.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn finals_survive_sigkill_and_the_session_comes_back_interrupted() {
    let _heavy = HEAVY.write().await;
    let data = fresh_data_dir();
    let envs = [("SPEECH_DIARIZATION__ENABLED", "false")];
    let (mut server, app, _logs) = start_binary_with_env(&["serve", "--port", "0"], &data, &envs).await;

    let mut ws = connect(&app.ws_url()).await;
    let ServerMessage::Ready { session_id, .. } = next_message(&mut ws).await else { panic!("ready first") };
    let pcm = jfk_pcm();
    let mut received = Vec::new();
    // Stream until three finals have arrived, then kill the server mid-stream.
    for frame in pcm.chunks(3200) {
        send_binary(&mut ws, frame.to_vec()).await;
        while let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(20), futures_util::StreamExt::next(&mut ws)).await
        {
            if let ServerMessage::Final(segment) = serde_json::from_str(&text).unwrap() {
                received.push(segment);
            }
        }
        if received.len() >= 3 {
            break;
        }
    }
    assert!(received.len() >= 3, "finals before the kill: {received:?}");
    server.start_kill().unwrap();
    server.wait().await.unwrap();

    let (_server, app, _logs) = start_binary_with_env(&["serve", "--port", "0"], &data, &envs).await;
    let (status, session) = http(&app, "GET", &format!("/sessions/{session_id}")).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["state"], "ended");
    assert_eq!(session["close_reason"], "interrupted");
    let stored: Vec<&str> =
        session["transcript"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
    let sent: Vec<&str> = received.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(stored, sent, "every final the client received is stored");
    let (_, list) = http(&app, "GET", "/sessions?state=ended").await;
    assert!(list["sessions"].as_array().unwrap().iter().any(|s| s["id"] == session_id));
    for format in ["text", "srt", "vtt", "json"] {
        let (status, body) =
            http_text(&app, "GET", &format!("/sessions/{session_id}/transcript?format={format}")).await;
        assert_eq!(status, 200, "{format}");
        assert!(body.to_lowercase().contains("americans"), "{format}: {body}");
    }
}

/// Streams jfk.wav (finals only) to a server started with `SPEECH_TEST_PANIC=<fault>` and
/// returns the messages and `/health/detailed`.
async fn stream_with_fault(fault: &str) -> (Vec<ServerMessage>, serde_json::Value, String) {
    let envs = [("SPEECH_TEST_PANIC", fault), ("SPEECH_STREAMING__SPECULATIVE_FINALS", "false")];
    let (_server, app, _logs) = start_binary_with_env(&["serve", "--port", "0"], &fresh_data_dir(), &envs).await;
    let url = format!("{}?interim_results=false", app.ws_url());
    let options = speech_service::client::StreamOptions { speed: 4.0, ..Default::default() };
    let received = speech_service::client::stream_file(&url, &recording("jfk.wav"), &options, |_| {}).await.unwrap();
    let (_, health) = http(&app, "GET", "/health/detailed").await;
    let (_, metrics) = http_text(&app, "GET", "/metrics").await;
    (messages_of(&received), health, metrics)
}

#[tokio::test]
async fn a_panic_in_the_recognition_worker_fails_one_segment_and_the_next_is_transcribed() {
    let _heavy = HEAVY.write().await;
    let (messages, health, metrics) = stream_with_fault("asr:1").await;
    let failed: Vec<&ServerMessage> = messages.iter().filter(|m| error_code(m) == Some(ErrorCode::AsrFailed)).collect();
    assert_eq!(failed.len(), 1, "one segment fails: {messages:?}");
    let text = final_text(&messages).to_lowercase();
    assert!(text.contains("ask not") && text.contains("country"), "the segments after it are transcribed: {text}");
    assert_eq!(messages.last().and_then(close_reason), Some(CloseReason::ClientClose));
    assert_eq!(health["components"]["asr"]["restarts"], 1, "{health}");
    assert_eq!(health["components"]["asr"]["workers"], 2, "the worker is back: {health}");
    assert!(metrics.contains("speech_worker_restarts_total{engine=\"asr\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_panic_in_the_speaker_worker_costs_one_segment_its_label_and_nothing_else() {
    let _heavy = HEAVY.write().await;
    let (messages, health, _) = stream_with_fault("diarization:1").await;
    assert!(final_text(&messages).to_lowercase().contains("country"), "{messages:?}");
    let labelled = finals(&messages).iter().filter(|f| f.speaker.is_some()).count();
    assert!(labelled >= 2, "later segments are labelled: {messages:?}");
    assert_eq!(health["components"]["diarization"]["restarts"], 1, "{health}");
    assert_eq!(health["components"]["diarization"]["state"], "up", "{health}");
}

/// What whisper.cpp cannot return (a CUDA failure on a GPU) ends the process through ggml's
/// fatal path; the reason is logged as an error first, and the finals sent before survive.
#[tokio::test]
async fn a_fatal_model_error_is_logged_before_the_process_ends() {
    let _heavy = HEAVY.write().await;
    let data = fresh_data_dir();
    let envs = [("SPEECH_TEST_PANIC", "asr:3:abort"), ("SPEECH_STREAMING__SPECULATIVE_FINALS", "false")];
    let (mut server, app, logs) = start_binary_with_env(&["serve", "--port", "0"], &data, &envs).await;
    let url = format!("{}?interim_results=false", app.ws_url());
    let options = speech_service::client::StreamOptions { speed: 4.0, ..Default::default() };
    let _ = speech_service::client::stream_file(&url, &recording("jfk.wav"), &options, |_| {}).await;
    let status = tokio::time::timeout(Duration::from_secs(30), server.wait()).await.expect("the process ends").unwrap();
    assert!(!status.success(), "{status:?}");
    // The log reader drains what the process wrote before it ended.
    let line = || logs.lock().unwrap().iter().find(|l| l.contains("whisper.cpp is ending the process")).cloned();
    wait_until("the fatal error's log line", async || line().is_some()).await;
    let fatal: serde_json::Value = serde_json::from_str(&line().unwrap()).unwrap();
    assert_eq!(fatal["level"], "ERROR", "{fatal}");
    assert!(fatal["fields"]["reason"].as_str().unwrap().contains("ggml aborts"), "{fatal}");
}
