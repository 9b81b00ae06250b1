//! Soak test: many sessions of mixed kinds against a running server (clean closes, abrupt
//! disconnects mid-utterance, bad frames, idle timeouts, DELETEs from REST), then checks that the
//! server gave back what they took: memory, file descriptors and threads, and that every cleanly
//! closed session's transcript is complete in the store. Run by `scripts/soak.sh`, which starts
//! the server with a short idle timeout; the figures go to docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use speech_service::client::{client_text, encode, get_json, request, Socket};
use speech_service::protocol::{ClientMessage, CloseReason, ServerMessage};
use speech_service::registry::{SessionSnapshot, SessionState};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// The server's process id, for its memory, descriptors and threads.
    #[arg(long)]
    pid: u32,
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Sessions open at once.
    #[arg(long, default_value_t = 6)]
    concurrency: usize,
    /// A 16 kHz recording to take speech from.
    #[arg(long)]
    recording: PathBuf,
}

/// What a session does; sessions take the kinds in turn.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Clean,
    Abrupt,
    BadFrames,
    Idle,
    Deleted,
}

const KINDS: [Kind; 5] = [Kind::Clean, Kind::Abrupt, Kind::BadFrames, Kind::Idle, Kind::Deleted];

/// The server process as /proc shows it.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_mb: f64,
    fds: usize,
    threads: usize,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is running");
    let field = |name: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_default();
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    Usage { rss_mb: field("VmRSS:") / 1024.0, fds, threads: field("Threads:") as usize }
}

/// What went wrong in the sessions, by kind of failure.
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

struct Soak {
    ws_url: String,
    http_url: String,
    speech: Vec<u8>,
}

impl Soak {
    /// Opens a stream, waiting as a client should while the server says it is at capacity.
    async fn open(&self) -> Result<(Socket, String), String> {
        use tokio_tungstenite::tungstenite::Error;
        let mut refusals = 0;
        let mut socket = loop {
            match tokio_tungstenite::connect_async(&self.ws_url).await {
                Ok((socket, _)) => break socket,
                Err(Error::Http(response)) if response.status() == 503 && refusals < 120 => {
                    refusals += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        match next(&mut socket).await {
            Some(ServerMessage::Ready { session_id, .. }) => Ok((socket, session_id)),
            other => Err(format!("expected ready, got {other:?}")),
        }
    }

    /// `ms` of speech from the start of the recording, in 100 ms frames, as fast as taken.
    async fn send_speech(&self, socket: &mut Socket, ms: usize) -> Result<(), String> {
        let bytes = (ms * 32).min(self.speech.len());
        for frame in self.speech[..bytes].chunks(3200) {
            socket.send(Message::Binary(frame.to_vec().into())).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn run(&self, kind: Kind) -> Result<(), String> {
        let (mut socket, id) = self.open().await?;
        match kind {
            Kind::Clean => {
                self.send_speech(&mut socket, 4000).await?;
                send(&mut socket, &ClientMessage::Close).await?;
                let messages = until_closed(&mut socket).await;
                expect_reason(&messages, CloseReason::ClientClose)?;
                self.check_stored(&id, &messages).await
            }
            Kind::Abrupt => {
                // Mid-word: 1.7 s into the recording, then the TCP connection goes away.
                self.send_speech(&mut socket, 1700).await?;
                drop(socket);
                Ok(())
            }
            Kind::BadFrames => {
                socket.send(Message::Text("not json".into())).await.map_err(|e| e.to_string())?;
                socket.send(Message::Text(r#"{"type":"rewind"}"#.into())).await.map_err(|e| e.to_string())?;
                socket.send(Message::Binary(vec![1, 2, 3].into())).await.map_err(|e| e.to_string())?;
                send(&mut socket, &ClientMessage::Close).await?;
                let messages = until_closed(&mut socket).await;
                let errors = messages.iter().filter(|m| matches!(m, ServerMessage::Error { .. })).count();
                if errors < 3 {
                    return Err(format!("bad frames: {errors} errors in {messages:?}"));
                }
                expect_reason(&messages, CloseReason::ClientClose)
            }
            Kind::Idle => expect_reason(&until_closed(&mut socket).await, CloseReason::IdleTimeout),
            Kind::Deleted => {
                self.send_speech(&mut socket, 1000).await?;
                let (status, body) = request(&self.http_url, "DELETE", &format!("/sessions/{id}"), None)
                    .await
                    .map_err(|e| e.to_string())?;
                if status != 202 {
                    return Err(format!("DELETE: {status} {body}"));
                }
                expect_reason(&until_closed(&mut socket).await, CloseReason::Terminated)
            }
        }
    }

    /// The store has every final the client got, in order (it is written by a thread of its own:
    /// give it a moment).
    async fn check_stored(&self, id: &str, messages: &[ServerMessage]) -> Result<(), String> {
        let sent: Vec<String> = speech_service::client::finals(messages).iter().map(|f| f.text.clone()).collect();
        if sent.is_empty() {
            return Err(format!("session {id}: no finals for 4 s of speech"));
        }
        let mut stored = Vec::new();
        for _ in 0..50 {
            let session: SessionSnapshot =
                get_json(&self.http_url, &format!("/sessions/{id}"), None).await.map_err(|e| e.to_string())?;
            stored = session.transcript.into_iter().map(|s| s.text).collect();
            if session.state == SessionState::Ended && stored == sent {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("session {id}: stored {stored:?}, sent {sent:?}"))
    }
}

async fn next(socket: &mut Socket) -> Option<ServerMessage> {
    let wait = Duration::from_secs(30);
    while let Ok(Some(Ok(message))) = tokio::time::timeout(wait, socket.next()).await {
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).ok();
        }
    }
    None
}

async fn send(socket: &mut Socket, message: &ClientMessage) -> Result<(), String> {
    socket.send(Message::Text(client_text(message).into())).await.map_err(|e| e.to_string())
}

async fn until_closed(socket: &mut Socket) -> Vec<ServerMessage> {
    let mut messages = Vec::new();
    while let Some(message) = next(socket).await {
        let closed = matches!(message, ServerMessage::Closed { .. });
        messages.push(message);
        if closed {
            break;
        }
    }
    messages
}

fn expect_reason(messages: &[ServerMessage], want: CloseReason) -> Result<(), String> {
    match messages.last() {
        Some(ServerMessage::Closed { reason, .. }) if *reason == want => Ok(()),
        other => Err(format!("expected closed {want:?}, got {other:?}")),
    }
}

/// Runs sessions `range` with `concurrency` open at once.
async fn batch(soak: &Arc<Soak>, tally: &Arc<Tally>, range: std::ops::Range<usize>, concurrency: usize) {
    futures_util::stream::iter(range)
        .for_each_concurrent(concurrency, |i| {
            let (soak, tally) = (soak.clone(), tally.clone());
            async move {
                let kind = KINDS[i % KINDS.len()];
                if let Err(e) = soak.run(kind).await {
                    tally.fail(format!("#{i} {kind:?}: {e}"));
                }
                tally.done.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
}

fn show(label: &str, u: Usage) {
    println!("{label:<26} RSS {:7.1} MB   fds {:4}   threads {:3}", u.rss_mb, u.fds, u.threads);
}

/// The server's resting state: spare threads of the blocking pool end after 10 s idle.
async fn settled(pid: u32) -> Usage {
    tokio::time::sleep(Duration::from_secs(12)).await;
    usage(pid)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let samples = speech_service::audio::wav::read_16k(&args.recording).expect("the recording reads");
    let http_url = args.url.trim_end_matches('/').to_owned();
    let ws_url = format!("{}/v1/listen", http_url.replacen("http", "ws", 1));
    let soak =
        Arc::new(Soak { ws_url, http_url, speech: encode(&samples, speech_service::audio::pcm::Encoding::PcmS16le) });
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let baseline = usage(args.pid);
    show("before", baseline);
    let warm = 50.min(args.sessions);
    batch(&soak, &tally, 0..warm, args.concurrency).await;
    let after_warm = settled(args.pid).await;
    show(&format!("after {warm} sessions"), after_warm);
    batch(&soak, &tally, warm..args.sessions, args.concurrency).await;
    let end = settled(args.pid).await;
    show(&format!("after {} sessions", args.sessions), end);
    let (health, _) = request(&soak.http_url, "GET", "/health", None).await.unwrap_or((0, String::new()));
    let failures = tally.failures.lock().unwrap().clone();
    println!(
        "{} sessions in {:.0} s, {} failed; /health {health}",
        tally.done.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    failures.iter().take(20).for_each(|f| println!("  {f}"));
    let growth = end.rss_mb - after_warm.rss_mb;
    let checks = [
        (growth <= 30.0, format!("RSS grew {growth:.1} MB after the first {warm} sessions (limit 30)")),
        (end.fds <= baseline.fds, format!("descriptors {} -> {}", baseline.fds, end.fds)),
        (end.threads <= baseline.threads, format!("threads {} -> {}", baseline.threads, end.threads)),
        (health == 200, format!("/health answered {health}")),
        (failures.is_empty(), format!("{} sessions did not behave", failures.len())),
    ];
    let mut ok = true;
    for (pass, what) in checks {
        println!("{} {what}", if pass { "ok  " } else { "FAIL" });
        ok &= pass;
    }
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
