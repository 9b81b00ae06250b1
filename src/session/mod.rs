//! One WebSocket connection's life: a single task owns the cheap stateful stages and runs one
//! `select!` loop over client frames, engine replies, the idle timer and shutdown.

pub mod admission;
pub mod aggregate;
mod core;
mod front;
mod progress;
pub mod registry;
mod speakers;
mod speculation;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};
use tracing::Instrument;

use self::admission::StreamTicket;
use self::aggregate::{AggregatorStats, FinalDone, LateSpeakers};
use self::core::{Flow, Inflight, Session};
use self::front::AudioFront;
use self::registry::{SessionRecord, SessionRegistry};
use crate::config::Config;
use crate::engine::asr::AsrHandle;
use crate::engine::diarize::DiarizeHandle;
use crate::pipeline::vad::VadModel;
use crate::protocol::{CloseReason, ErrorCode, ListenParams, ServerMessage};

/// What every session needs from the server.
#[derive(Clone)]
pub struct SessionDeps {
    pub asr: AsrHandle,
    /// None when the server runs without speaker models.
    pub diarize: Option<DiarizeHandle>,
    pub aggregator: Arc<AggregatorStats>,
    pub vad: VadModel,
    pub config: Arc<Config>,
    pub shutdown: watch::Receiver<bool>,
    pub registry: Arc<SessionRegistry>,
}

enum Event {
    Client(Message),
    ClientGone,
    Partial(Result<crate::domain::Transcript, crate::engine::asr::AsrError>),
    Final(FinalDone),
    LateSpeakers(LateSpeakers),
    SpeakerPrefix(Result<Vec<crate::domain::EmbeddedTurn>, crate::engine::diarize::DiarizeError>),
    /// A frame so large the WebSocket layer refused it before we saw it.
    TooLarge,
    Idle,
    Shutdown,
    Terminated,
}

/// The socket side: sends with a timeout and remembers whether the client can still hear us.
/// Everything sent is also recorded for the REST API, whether or not the client still listens.
struct Outlet {
    socket: WebSocket,
    open: bool,
    send_timeout: Duration,
    record: Arc<SessionRecord>,
    registry: Arc<SessionRegistry>,
}

impl Outlet {
    async fn send(&mut self, message: &ServerMessage) {
        self.record.observe(message);
        if !self.open {
            return;
        }
        let json = serde_json::to_string(message).expect("server messages always serialise");
        let sent = timeout(self.send_timeout, self.socket.send(Message::Text(json.into()))).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::info!("client stopped reading; further messages are dropped");
            self.open = false;
        }
    }

    async fn flush(&mut self, outbox: &mut Vec<ServerMessage>) {
        for message in outbox.drain(..) {
            self.send(&message).await;
        }
    }

    /// Marks the session ended (before the client can see it end) and sends the close frame.
    async fn close(&mut self, reason: CloseReason) {
        self.registry.close(&self.record.id, reason);
        if self.open {
            let frame = CloseFrame { code: reason.close_code(), reason: format!("{reason:?}").into() };
            let _ = timeout(self.send_timeout, self.socket.send(Message::Close(Some(frame)))).await;
            self.open = false;
            self.await_client_close().await;
        }
    }

    /// Completes the closing handshake: reads (and drops) whatever the client still sends until
    /// its close frame, for at most `CLOSE_WAIT`. Closing a TCP socket with unread audio in it
    /// makes the kernel reset the connection, which can destroy the last messages in flight.
    async fn await_client_close(&mut self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.socket.recv()).await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    }
}

/// How long a closing session waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Runs a session to its end. Never panics on client input; every exit path sends `closed` and
/// moves the session's record to the ended list.
pub async fn run(
    socket: WebSocket,
    params: ListenParams,
    deps: SessionDeps,
    client: SocketAddr,
    ticket: Arc<StreamTicket>,
) {
    let id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("session", session_id = %id, %client);
    let record = deps.registry.open(id.clone(), client, params.clone());
    let (registry, closing_id) = (deps.registry.clone(), id.clone());
    let reason = async move {
        let send_timeout = Duration::from_secs(deps.config.limits.send_timeout_s);
        let mut outlet = Outlet { socket, open: true, send_timeout, record, registry: deps.registry.clone() };
        let front = match AudioFront::new(&params, deps.vad.detector()) {
            Ok(front) => front,
            Err(e) => {
                let message = e.to_string();
                tracing::error!(%message, "cannot start session");
                outlet.send(&ServerMessage::Error { code: ErrorCode::Internal, message }).await;
                outlet.close(CloseReason::Error).await;
                return CloseReason::Error;
            }
        };
        tracing::info!(sample_rate = params.sample_rate, encoding = params.encoding.as_str(), "session started");
        let session = Session::new(id, params, front, deps.clone(), ticket);
        event_loop(session, outlet, deps).await
    }
    .instrument(span)
    .await;
    registry.close(&closing_id, reason);
}

async fn event_loop(mut session: Session, mut outlet: Outlet, mut deps: SessionDeps) -> CloseReason {
    let idle = deps.config.limits.idle_timeout();
    let mut terminate = outlet.record.terminate_signal();
    let mut inflight = Inflight::default();
    let mut last_heard = Instant::now();
    outlet.flush(&mut session.outbox).await;
    let reason = loop {
        let event =
            next_event(&mut outlet, &mut inflight, (&mut deps.shutdown, &mut terminate), last_heard + idle).await;
        let flow = match event {
            Event::Client(message) => {
                last_heard = Instant::now();
                on_message(&mut session, message, &mut inflight, &mut outlet).await
            }
            Event::ClientGone => {
                outlet.open = false;
                Flow::Close(CloseReason::Disconnected)
            }
            Event::Partial(result) => {
                let pending = inflight.partial.take().expect("a partial event implies a pending partial");
                session.on_partial(pending, result);
                Flow::Continue
            }
            Event::Final(done) => {
                session.on_final(done, &mut inflight);
                Flow::Continue
            }
            Event::LateSpeakers(late) => {
                session.on_late_speakers(late);
                Flow::Continue
            }
            Event::SpeakerPrefix(result) => {
                inflight.speaker_prefix = None;
                session.on_speaker_prefix(result);
                Flow::Continue
            }
            Event::TooLarge => session.reject_oversized(),
            Event::Idle => {
                let message = format!("no frames received for {} s", idle.as_secs());
                session.outbox.push(ServerMessage::Error { code: ErrorCode::IdleTimeout, message });
                Flow::Close(CloseReason::IdleTimeout)
            }
            Event::Shutdown => Flow::Close(CloseReason::Shutdown),
            Event::Terminated => Flow::Close(CloseReason::Terminated),
        };
        outlet.record.set_audio_seconds(session.audio_seconds());
        outlet.flush(&mut session.outbox).await;
        if let Flow::Close(reason) = flow {
            break reason;
        }
    };
    drain(&mut session, &mut inflight, &mut outlet, reason, &deps.config).await;
    reason
}

async fn next_event(
    outlet: &mut Outlet,
    inflight: &mut Inflight,
    (shutdown, terminate): (&mut watch::Receiver<bool>, &mut watch::Receiver<bool>),
    idle_deadline: Instant,
) -> Event {
    let has_finals = !inflight.finals.is_empty();
    let has_late = !inflight.late.is_empty();
    let partial = async {
        match inflight.partial.as_mut() {
            Some(p) => (&mut p.rx).await,
            None => std::future::pending().await,
        }
    };
    let prefix = async {
        match inflight.speaker_prefix.as_mut() {
            Some(rx) => rx.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        _ = shutdown.changed() => Event::Shutdown,
        _ = terminate.changed() => Event::Terminated,
        Some(done) = inflight.finals.next(), if has_finals => Event::Final(done),
        Some(late) = inflight.late.next(), if has_late => Event::LateSpeakers(late),
        result = prefix => Event::SpeakerPrefix(result.unwrap_or_else(|_| Err(crate::engine::diarize::DiarizeError::Failed("worker stopped".into())))),
        result = partial => Event::Partial(result.unwrap_or(Err(crate::engine::asr::AsrError::WorkerLost))),
        message = outlet.socket.recv() => match message {
            Some(Ok(message)) => Event::Client(message),
            Some(Err(e)) if is_capacity_error(&e) => Event::TooLarge,
            _ => Event::ClientGone,
        },
        _ = sleep_until(idle_deadline) => Event::Idle,
    }
}

/// tungstenite refuses messages over its own (larger) cap before we see them.
fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Message too big")
}

async fn on_message(session: &mut Session, message: Message, inflight: &mut Inflight, outlet: &mut Outlet) -> Flow {
    match message {
        Message::Binary(bytes) => session.on_audio(&bytes, inflight).await,
        Message::Text(text) => session.on_text(text.as_str(), inflight).await,
        Message::Ping(_) | Message::Pong(_) => Flow::Continue,
        Message::Close(_) => {
            // The client closed the socket: it will not read anything more.
            outlet.open = false;
            Flow::Close(CloseReason::Disconnected)
        }
    }
}

/// Finishes the session: flush audio, wait for every final (bounded), send them, then `closed`.
async fn drain(
    session: &mut Session,
    inflight: &mut Inflight,
    outlet: &mut Outlet,
    reason: CloseReason,
    config: &Config,
) {
    session.finish_audio(inflight).await;
    inflight.partial = None;
    let wait = Duration::from_secs(config.asr.final_timeout_s);
    while !inflight.finals.is_empty() {
        match timeout(wait, inflight.finals.next()).await {
            Ok(Some(done)) => session.on_final(done, inflight),
            Ok(None) => break,
            Err(_) => {
                let ids: Vec<String> = inflight.final_ids.iter().map(u64::to_string).collect();
                let message =
                    format!("gave up waiting {} s for the finals of segments {}", wait.as_secs(), ids.join(", "));
                session.outbox.push(ServerMessage::Error { code: ErrorCode::Overloaded, message });
                break;
            }
        }
        outlet.flush(&mut session.outbox).await;
    }
    // Speaker labels still on their way for finals already sent: they are part of the
    // transcript, so they go out before `closed` (speakers are bounded by their own queue wait).
    while !inflight.late.is_empty() {
        match timeout(wait, inflight.late.next()).await {
            Ok(Some(late)) => session.on_late_speakers(late),
            Ok(None) | Err(_) => break,
        }
        outlet.flush(&mut session.outbox).await;
    }
    let closed =
        ServerMessage::Closed { reason, audio_seconds: session.audio_seconds(), segments: session.finals_sent };
    session.outbox.push(closed);
    outlet.record.set_audio_seconds(session.audio_seconds());
    outlet.flush(&mut session.outbox).await;
    outlet.close(reason).await;
    tracing::info!(?reason, audio_seconds = session.audio_seconds(), segments = session.finals_sent, "session ended");
}
