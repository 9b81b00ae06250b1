//! Error tracking: a real server reports a server-side session error to a Sentry-compatible
//! endpoint (a local HTTP receiver here), tagged with the session id and free of speech.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::*;

/// One HTTP request the receiver got: its head and body.
struct Received {
    head: String,
    body: String,
}

/// Accepts requests, answers 200 and passes each on.
async fn receiver() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(request) = read_request(&mut stream).await {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await;
                    let _ = tx.send(request).await;
                }
            });
        }
    });
    (port, rx)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if body.len() >= length {
            return Some(Received { head: head.to_owned(), body: body.to_owned() });
        }
    }
}

#[tokio::test]
async fn a_server_side_session_error_reaches_the_error_tracker_without_speech() {
    let _heavy = HEAVY.write().await;
    let (port, mut requests) = receiver().await;
    let dsn = format!("http://publickey@127.0.0.1:{port}/42");
    let envs = [
        ("SPEECH_TELEMETRY__SENTRY_DSN", dsn.as_str()),
        // Finals still waiting when the client closes are given up at once: `overloaded`.
        ("SPEECH_ASR__FINAL_TIMEOUT_S", "0"),
        ("SPEECH_DIARIZATION__ENABLED", "false"),
    ];
    let (_server, app, _logs) = start_binary_with_env(&["serve", "--port", "0"], &fresh_data_dir(), &envs).await;

    let mut ws = connect(&app.ws_url()).await;
    let ServerMessage::Ready { session_id, .. } = next_message(&mut ws).await else { panic!("ready first") };
    let pcm = jfk_pcm();
    for frame in pcm.chunks(3200) {
        send_binary(&mut ws, frame.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    send_message(&mut ws, &ClientMessage::Close).await;
    let (messages, _) = until_closed(&mut ws).await;
    assert!(messages.iter().any(|m| error_code(m) == Some(ErrorCode::Overloaded)), "{messages:?}");
    let spoken = final_text(&messages).to_lowercase();
    assert!(spoken.contains("americans"), "the session had speech to leak: {spoken}");

    let report = loop {
        let request = tokio::time::timeout(Duration::from_secs(30), requests.recv())
            .await
            .expect("an error report within 30 s")
            .expect("the receiver runs");
        if request.body.contains("\"type\":\"event\"") {
            break request;
        }
    };
    assert!(report.head.starts_with("POST /api/42/envelope/"), "{}", report.head);
    assert!(report.head.to_lowercase().contains("sentry_key=publickey"), "{}", report.head);
    assert!(report.body.contains(&session_id), "tagged with the session: {}", report.body);
    assert!(report.body.contains("overloaded"), "{}", report.body);
    let body = report.body.to_lowercase();
    for word in ["americans", "fellow", "country"] {
        assert!(!body.contains(word), "the report carries speech ({word}): {}", report.body);
    }
}
