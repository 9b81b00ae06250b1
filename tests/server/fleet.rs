//! Replicas sharing one PostgreSQL store: a real PostgreSQL server (Debian's, started here in a
//! temporary directory on a loopback port) and real server processes.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use speech_service::eval::reference::JFK_TEXT;
use speech_service::eval::wer::word_error_rate;

use crate::common::*;

/// A PostgreSQL server of the test's own; stopped (immediately) when dropped.
struct Postgres {
    dir: PathBuf,
    port: u16,
}

/// Debian installs the server programs here, outside PATH.
fn pg_bin(program: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed by scripts/test.sh");
    let mut dirs: Vec<PathBuf> = versions.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL version").join(program)
}

/// Runs a PostgreSQL program; as root, as the `postgres` user (the server refuses root).
fn pg_command(program: &str, args: &[&str]) -> std::process::Output {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut command = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(program));
        c
    } else {
        Command::new(pg_bin(program))
    };
    command.args(args).output().expect("PostgreSQL programs run")
}

impl Postgres {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("speech-pg-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").args(["postgres:postgres"]).arg(&dir).status();
        let data = dir.join("data");
        let out = pg_command("initdb", &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let pg = Self { dir, port: free_port() };
        pg.run();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    fn run(&self) {
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.display());
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let out = pg_command(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "start"],
        );
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        let _ = pg_command("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn replica(pg: &Postgres, name: &str) -> (ServerProcess, TestApp) {
    let url = pg.url();
    let envs = [
        ("SPEECH_STORE__URL", url.as_str()),
        ("SPEECH_STORE__REPLICA_ID", name),
        ("SPEECH_STORE__HEARTBEAT_S", "1"),
        ("SPEECH_STORE__HEARTBEAT_TIMEOUT_S", "3"),
        ("SPEECH_DIARIZATION__ENABLED", "false"),
    ];
    let (child, app, _logs) = start_binary_with_env(&["serve", "--port", "0"], &fresh_data_dir(), &envs).await;
    (child, app)
}

/// Sends `pcm` in 100 ms frames, `speed` times faster than real time.
async fn send_audio(ws: &mut Ws, pcm: &[u8], speed: f64) {
    for frame in pcm.chunks(3200) {
        send_binary(ws, frame.to_vec()).await;
        tokio::time::sleep(Duration::from_secs_f64(0.1 / speed)).await;
    }
}

async fn session_on(app: &TestApp, id: &str) -> serde_json::Value {
    http(app, "GET", &format!("/sessions/{id}")).await.1
}

/// Waits up to `seconds` for `check`, polling every 200 ms.
async fn eventually(what: &str, seconds: u64, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..seconds * 5 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {seconds} s waiting for {what}");
}

#[tokio::test]
async fn replicas_on_one_postgres_list_end_and_serve_each_others_sessions() {
    let _heavy = HEAVY.write().await;
    let pg = Postgres::start();
    let (_a_process, a) = replica(&pg, "replica-a").await;
    let (mut b_process, b) = replica(&pg, "replica-b").await;

    let mut ws = connect(&a.ws_url()).await;
    let ServerMessage::Ready { session_id, .. } = next_message(&mut ws).await else { panic!("ready first") };
    send_audio(&mut ws, &jfk_pcm(), 4.0).await;

    // Live on A, listed by B with A's replica id, finals included.
    eventually("B to list A's live session", 10, async || {
        let (_, list) = http(&b, "GET", "/sessions?state=active").await;
        list["sessions"].as_array().unwrap().iter().any(|s| s["id"] == session_id && s["replica"] == "replica-a")
    })
    .await;
    // Looked up by id at B (one keyed query): A's, live.
    let one = session_on(&b, &session_id).await;
    assert_eq!((&one["state"], &one["replica"]), (&"active".into(), &"replica-a".into()), "{one}");

    // Ended through B: A's client gets `closed` with `terminated`.
    let (status, _) = http(&b, "DELETE", &format!("/sessions/{session_id}")).await;
    assert_eq!(status, 202);
    let (messages, code) = until_closed(&mut ws).await;
    assert_eq!(messages.last().and_then(close_reason), Some(CloseReason::Terminated), "{messages:?}");
    assert_eq!(code, Some(4003));
    let sent = final_text(&messages);
    assert!(word_error_rate(JFK_TEXT, &sent).wer() <= 0.15, "{sent}");

    // B serves the transcript A wrote, and lists the session as ended.
    eventually("B to serve the ended session", 10, async || session_on(&b, &session_id).await["state"] == "ended")
        .await;
    let (status, text) = http_text(&b, "GET", &format!("/sessions/{session_id}/transcript?format=text")).await;
    assert_eq!(status, 200);
    let served: String = text.lines().map(|l| l.split_once(": ").map_or(l, |(_, t)| t)).collect::<Vec<_>>().join(" ");
    assert_eq!(speech_service::eval::wer::normalize(&served), speech_service::eval::wer::normalize(&sent));
    let (_, ended) = http(&b, "GET", "/sessions?state=ended&limit=5").await;
    let listed = ended["sessions"].as_array().unwrap().iter().find(|s| s["id"] == session_id).cloned();
    let listed = listed.unwrap_or_else(|| panic!("{session_id} not listed: {ended}"));
    let stored = session_on(&b, &session_id).await;
    assert_eq!(listed["segments"].as_u64(), Some(stored["transcript"].as_array().unwrap().len() as u64), "{listed}");
    assert_eq!(listed["speakers"], stored["speakers"], "{listed}");
    assert!(listed["segments"].as_u64() > Some(0), "{listed}");
    // A session that ended cannot be ended again, from either replica.
    assert_eq!(http(&b, "DELETE", &format!("/sessions/{session_id}")).await.0, 409);
    // A replica stops cleanly on SIGTERM (it used to abort: the PostgreSQL pool was dropped on
    // a runtime thread as the runtime shut down).
    assert!(send_signal(&b_process, "TERM"));
    let status = tokio::time::timeout(Duration::from_secs(30), b_process.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_replica_killed_mid_stream_leaves_its_session_interrupted_with_its_finals() {
    let _heavy = HEAVY.write().await;
    let pg = Postgres::start();
    let (mut a_process, a) = replica(&pg, "replica-a").await;
    let (_b_process, b) = replica(&pg, "replica-b").await;

    let mut ws = connect(&a.ws_url()).await;
    let ServerMessage::Ready { session_id, .. } = next_message(&mut ws).await else { panic!("ready first") };
    send_audio(&mut ws, &jfk_pcm(), 4.0).await;
    // Silence ends the last utterance. A is killed 0.2 s after its final reaches the client:
    // well before the next heartbeat (every 2 s) could carry it, so only the final's own write
    // (appended to the live row as it is sent) can keep it.
    send_audio(&mut ws, &vec![0u8; 32_000], 4.0).await;
    let mut received = Vec::new();
    while received.len() < 3 {
        if let ServerMessage::Final(segment) = next_message(&mut ws).await {
            received.push(segment.text);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    a_process.start_kill().unwrap();
    a_process.wait().await.unwrap();
    eventually("B to mark the session interrupted", 15, async || {
        session_on(&b, &session_id).await["close_reason"] == "interrupted"
    })
    .await;
    let session = session_on(&b, &session_id).await;
    assert_eq!(session["state"], "ended");
    let text: Vec<&str> =
        session["transcript"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
    assert_eq!(text[..3], received[..], "the finals the client had are kept");
    for format in ["text", "srt", "vtt", "json"] {
        let (status, body) = http_text(&b, "GET", &format!("/sessions/{session_id}/transcript?format={format}")).await;
        assert_eq!(status, 200, "{format}");
        assert!(body.to_lowercase().contains("americans"), "{format}: {body}");
    }
}

#[tokio::test]
async fn postgres_away_mid_stream_loses_no_final() {
    let _heavy = HEAVY.write().await;
    let pg = Postgres::start();
    let (_a_process, a) = replica(&pg, "replica-a").await;

    let mut ws = connect(&a.ws_url()).await;
    let ServerMessage::Ready { session_id, .. } = next_message(&mut ws).await else { panic!("ready first") };
    let pcm = jfk_pcm();
    let (first, rest) = pcm.split_at(pcm.len() / 3);
    send_audio(&mut ws, first, 4.0).await;

    pg.stop();
    send_audio(&mut ws, rest, 4.0).await;
    send_message(&mut ws, &ClientMessage::Close).await;
    let (messages, _) = until_closed(&mut ws).await;
    let sent = final_text(&messages);
    assert!(word_error_rate(JFK_TEXT, &sent).wer() <= 0.15, "the stream went on: {sent}");
    let (status, health) = http(&a, "GET", "/health/detailed").await;
    assert_eq!((status, &health["components"]["store"]["state"]), (200, &serde_json::json!("degraded")), "{health}");
    assert_eq!(health["status"], "degraded");

    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.run();
    // A replica that starts now knows only what reached the database.
    let (_b_process, b) = replica(&pg, "replica-b").await;
    // Until A's writer gets through, B may already have marked the session `interrupted` from
    // A's last heartbeat (A looked dead while the database was away); A's write then wins.
    let stored_text = async || {
        let stored = session_on(&b, &session_id).await;
        let texts: Vec<String> = stored["transcript"]
            .as_array()
            .map(|a| a.iter().map(|s| s["text"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default();
        (texts.join(" "), stored["close_reason"].clone())
    };
    eventually("every final the client received to be stored", 30, async || {
        stored_text().await == (sent.clone(), serde_json::json!("client_close"))
    })
    .await;
    eventually("A's store to recover", 10, async || {
        http(&a, "GET", "/health/detailed").await.1["components"]["store"]["state"] == "up"
    })
    .await;
}
