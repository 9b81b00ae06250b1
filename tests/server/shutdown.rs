//! The real binary: JSON logs, and SIGTERM mid-stream losing no final segment.

use std::time::Duration;

use speech_service::client::{stream_file, StreamOptions};

use crate::common::*;

#[tokio::test]
async fn sigterm_mid_stream_drains_the_session_and_exits_cleanly() {
    let _heavy = HEAVY.write().await;
    let data = fresh_data_dir();
    let (mut server, app, lines) = start_binary(&["serve", "--port", "0"], &data).await;
    let url = app.ws_url();
    let stream = tokio::spawn(async move {
        stream_file(&url, &recording("jfk.wav"), &StreamOptions::default(), |_| {}).await.unwrap()
    });
    // 4 s in: the first sentence is final and "ask not" is still being spoken.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(send_signal(&server, "TERM"));

    let received = stream.await.unwrap();
    let messages = messages_of(&received);
    let finals = finals(&messages);
    let started = messages.iter().filter(|m| matches!(m, ServerMessage::SpeechStarted { .. })).count();
    assert!(finals.len() >= 2, "{messages:?}");
    let with_part0 = finals.iter().filter(|f| f.part == 0).count();
    assert_eq!(with_part0, started, "every utterance that began got its final");
    assert_eq!(messages.last().and_then(close_reason), Some(CloseReason::Shutdown));
    let ServerMessage::Ready { session_id, .. } = &messages[0] else { panic!("{:?}", messages[0]) };

    let status = tokio::time::timeout(Duration::from_secs(60), server.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
    wait_until("the session's last log line", async || logged(&lines, "session ended")).await;
    let lines = lines.lock().unwrap().clone();
    let entries: Vec<serde_json::Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let ended = entries.iter().find(|e| e["fields"]["message"] == "session ended").unwrap();
    assert_eq!(ended["fields"]["reason"], "Shutdown");
    assert_eq!(ended["span"]["session_id"].as_str(), Some(session_id.as_str()));

    // The drained session was written before the process exited: a new server reads it.
    let restarted = spawn_app_with_data(&data, |_| {});
    let (status, session) = http(&restarted, "GET", &format!("/sessions/{session_id}")).await;
    assert_eq!((status, session["close_reason"].as_str()), (200, Some("shutdown")), "{session}");
    assert_eq!(session["transcript"].as_array().unwrap().len(), finals.len());
}

async fn session_limit(app: &TestApp) -> u64 {
    http(app, "GET", "/health/detailed").await.1["components"]["sessions"]["limit"].as_u64().unwrap()
}

fn logged(lines: &std::sync::Mutex<Vec<String>>, text: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.contains(text))
}

#[tokio::test]
async fn config_file_changes_and_sighup_reload_live_settings_and_reject_bad_files() {
    let (server, app, lines, file) =
        start_with_config_file("[limits]\nmax_sessions = 16\n[store]\nenabled = false\n").await;
    assert_eq!(session_limit(&app).await, 16);

    // A change of the file: the limit follows; the port cannot change without a restart.
    std::fs::write(&file, "[limits]\nmax_sessions = 2\n[server]\nport = 1\n[store]\nenabled = false\n").unwrap();
    wait_until("the new limit", async || session_limit(&app).await == 2).await;
    assert!(logged(&lines, "server.port"), "the port change is reported as needing a restart");

    // A bad file is rejected and the running configuration stays.
    std::fs::write(&file, "[limits]\nmax_sessions = \"many\"\n").unwrap();
    wait_until("the rejection", async || logged(&lines, "reload rejected")).await;
    assert_eq!(session_limit(&app).await, 2);

    // SIGHUP reloads too.
    std::fs::write(&file, "[limits]\nmax_sessions = 3\n[store]\nenabled = false\n").unwrap();
    assert!(send_signal(&server, "HUP"));
    wait_until("the limit after SIGHUP", async || session_limit(&app).await == 3).await;
    let (_, health) = http(&app, "GET", "/health/detailed").await;
    assert!(health["config_version"].as_u64().unwrap() >= 3, "{health}");

    // The log level reloads too: once at `warn`, reloads are no longer logged at info level.
    let count = |lines: &std::sync::Mutex<Vec<String>>| {
        lines.lock().unwrap().iter().filter(|l| l.contains("configuration reloaded")).count()
    };
    let before = count(&lines);
    let version = health["config_version"].as_u64().unwrap();
    std::fs::write(&file, "[limits]\nmax_sessions = 3\n[store]\nenabled = false\n[log]\nlevel = \"warn\"\n").unwrap();
    let bumped = async || http(&app, "GET", "/health/detailed").await.1["config_version"].as_u64().unwrap() > version;
    wait_until("the log level reload", bumped).await;
    std::fs::write(&file, "[limits]\nmax_sessions = 4\n[store]\nenabled = false\n[log]\nlevel = \"warn\"\n").unwrap();
    wait_until("the limit at warn level", async || session_limit(&app).await == 4).await;
    assert_eq!(count(&lines), before, "info lines are filtered out after the reload");
}
