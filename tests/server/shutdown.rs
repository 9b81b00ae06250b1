//! The real binary: JSON logs, and SIGTERM mid-stream losing no final segment.

use std::process::Stdio;
use std::time::Duration;

use speech_service::client::{stream_file, StreamOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;

#[tokio::test]
async fn sigterm_mid_stream_drains_the_session_and_exits_cleanly() {
    let _heavy = HEAVY.lock().await;
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["--log-format", "json", "--models-dir"])
        .arg(models_dir())
        .args(["serve", "--port", "0"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(server.stderr.take().unwrap()).lines();
    let address = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), logs.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("server logs");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if entry["fields"]["message"] == "listening" {
            break entry["fields"]["address"].as_str().unwrap().to_owned();
        }
    };
    let url = format!("ws://{address}/v1/listen");
    let stream = tokio::spawn(async move {
        stream_file(&url, &recording("jfk.wav"), &StreamOptions::default(), |_| {}).await.unwrap()
    });
    // 4 s in: the first sentence is final and "ask not" is still being spoken.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pid = server.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());

    let received = stream.await.unwrap();
    let messages: Vec<_> = received.iter().map(|r| r.message.clone()).collect();
    let finals: Vec<_> = messages.iter().filter(|m| m["type"] == "final").collect();
    let started = messages.iter().filter(|m| m["type"] == "speech_started").count();
    assert!(finals.len() >= 2, "{messages:?}");
    let with_part0 = finals.iter().filter(|f| f["part"] == 0).count();
    assert_eq!(with_part0, started, "every utterance that began got its final");
    let closed = messages.last().unwrap();
    assert_eq!((closed["type"].as_str(), closed["reason"].as_str()), (Some("closed"), Some("shutdown")));

    let status = tokio::time::timeout(Duration::from_secs(60), server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
    let mut rest = Vec::new();
    while let Ok(Some(line)) = logs.next_line().await {
        rest.push(line);
    }
    let ended = rest
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["fields"]["message"] == "session ended");
    let ended = ended.expect("a JSON log line for the session's end");
    assert_eq!(ended["fields"]["reason"], "Shutdown");
    assert_eq!(ended["span"]["session_id"], messages[0]["session_id"]);
}
