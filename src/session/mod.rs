//! One WebSocket connection's life: a single task owns the cheap stateful stages and runs one
//! `select!` loop over client frames, engine replies, the idle timer and shutdown.

pub mod aggregate;
mod changes;
pub mod channels;
pub mod core;
mod deps;
mod front;
mod jobs;
mod outlet;
mod progress;
mod speakers;
mod speculation;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tracing::Instrument;

use self::aggregate::{FinalDone, LateSpeakers};
use self::core::{Input, Session};
pub use self::deps::SessionDeps;
use self::front::AudioFront;
use self::jobs::Jobs;
use self::outlet::{ClientEvent, Outlet, Wire};
use crate::config::Config;
use crate::domain::{EmbeddedTurn, Transcript};
use crate::engine::asr::AsrError;
use crate::engine::diarize::DiarizeError;
use crate::protocol::dialect::Dialect;
use crate::protocol::{CloseReason, ErrorCode, ListenParams, ServerMessage};
use crate::registry::admission::StreamTicket;
use crate::registry::SessionRecord;

/// What the event loop waits for.
enum Event {
    Client(Message),
    ClientGone,
    Partial(Result<Transcript, AsrError>),
    Final(FinalDone),
    LateSpeakers(LateSpeakers),
    SpeakerPrefix(Result<Vec<EmbeddedTurn>, DiarizeError>),
    SpeakerChange(Result<Vec<EmbeddedTurn>, DiarizeError>),
    /// A frame so large the WebSocket layer refused it before we saw it.
    TooLarge,
    /// A vendor's frame its dialect answered itself.
    Answered,
    Idle,
    Shutdown,
    Terminated,
}

/// Runs a session to its end. Never panics on client input; every exit path sends `closed` and
/// moves the session's record to the ended list. With a `dialect`, the client speaks a
/// vendor's protocol, translated at the outlet; the session is the same.
pub async fn run(
    socket: WebSocket,
    params: ListenParams,
    deps: SessionDeps,
    config: Arc<Config>,
    (client, dialect): (SocketAddr, Option<Box<dyn Dialect>>),
    ticket: Arc<StreamTicket>,
) {
    recorded(deps.clone(), client, params.clone(), |id, record| async move {
        let mut outlet = Outlet::new(Wire::Socket(Box::new(socket)), &config, record, deps.registry.clone());
        if let Some(dialect) = dialect {
            outlet = outlet.speaking(dialect);
        }
        serve(outlet, id, params, deps, config, ticket).await
    })
    .await;
}

/// Opens a session's record in the registry under a new id, runs `body` with them inside the
/// session's log span, and moves the record to the ended list with the reason `body` returns.
/// Every stream, mono or multichannel, starts and ends here.
async fn recorded<F, Fut>(deps: SessionDeps, client: SocketAddr, params: ListenParams, body: F)
where
    F: FnOnce(String, Arc<SessionRecord>) -> Fut,
    Fut: std::future::Future<Output = CloseReason>,
{
    let id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("session", session_id = %id, %client, channels = params.channels);
    let record = deps.registry.open(id.clone(), client, params);
    let reason = body(id.clone(), record).instrument(span).await;
    deps.registry.close(&id, reason);
}

/// Serves one stream of mono audio through `outlet` until it ends.
async fn serve(
    mut outlet: Outlet,
    id: String,
    params: ListenParams,
    deps: SessionDeps,
    config: Arc<Config>,
    ticket: Arc<StreamTicket>,
) -> CloseReason {
    let front = match AudioFront::new(&params, deps.engines.vad.detector()) {
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
    let jobs = Jobs::new(&deps, &config, ticket, &params);
    let session = Session::new(id, params, &config, deps.engines.asr.model());
    let idle = config.limits.idle_timeout();
    event_loop(session, jobs, front, outlet, deps.shutdown, idle).await
}

/// The session's loop: waits for the next event, lets the core react, carries out its actions.
async fn event_loop(
    mut session: Session,
    mut jobs: Jobs,
    mut front: AudioFront,
    mut outlet: Outlet,
    mut shutdown: watch::Receiver<bool>,
    idle: Duration,
) -> CloseReason {
    let mut terminate = outlet.record.terminate_signal();
    let mut last_heard = Instant::now();
    let mut outbox = Vec::new();
    let first = session.take_actions();
    jobs.run(&mut session, first, &mut outbox).await;
    outlet.flush(&mut outbox).await;
    let reason = loop {
        let event = next_event(&mut outlet, &mut jobs, (&mut shutdown, &mut terminate), last_heard + idle).await;
        let input = match event {
            Event::Client(message) => {
                last_heard = Instant::now();
                match client_input(&session, &mut jobs, &mut front, message, &mut outlet) {
                    Some(input) => input,
                    None => continue,
                }
            }
            Event::ClientGone => {
                outlet.open = false;
                Input::ClientGone
            }
            Event::Partial(result) => jobs.partial_done(result),
            Event::Final(done) => Input::Final(jobs.final_done(done)),
            Event::LateSpeakers(late) => Input::LateSpeakers { segment_id: late.segment_id, result: late.result },
            Event::SpeakerPrefix(result) => {
                jobs.inflight.speaker_prefix = None;
                Input::SpeakerPrefix(result)
            }
            Event::SpeakerChange(result) => {
                jobs.inflight.speaker_change = None;
                Input::SpeakerChange(result)
            }
            Event::TooLarge => Input::TooLarge(None),
            Event::Answered => {
                last_heard = Instant::now();
                outlet.flush(&mut outbox).await;
                continue;
            }
            Event::Idle => Input::Idle(idle.as_secs()),
            Event::Shutdown => Input::Shutdown,
            Event::Terminated => Input::Terminated,
        };
        let actions = session.handle(input);
        let close = jobs.run(&mut session, actions, &mut outbox).await;
        outlet.record.set_audio_seconds(session.audio_seconds());
        outlet.flush(&mut outbox).await;
        if let Some(reason) = close {
            break reason;
        }
        // A client that stopped reading is treated as gone: nothing more is read from it, its
        // segments are finished, and the connection is dropped.
        if std::mem::take(&mut outlet.stalled) {
            let actions = session.handle(Input::ClientGone);
            if let Some(reason) = jobs.run(&mut session, actions, &mut outbox).await {
                break reason;
            }
        }
    };
    drain(&mut session, &mut jobs, &mut front, &mut outlet, reason).await;
    reason
}

/// The reply of a job in flight; never, when none is.
async fn reply<T>(rx: Option<&mut oneshot::Receiver<T>>) -> Result<T, oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

async fn next_event(
    outlet: &mut Outlet,
    jobs: &mut Jobs,
    (shutdown, terminate): (&mut watch::Receiver<bool>, &mut watch::Receiver<bool>),
    idle_deadline: Instant,
) -> Event {
    let inflight = &mut jobs.inflight;
    let has_finals = !inflight.finals.is_empty();
    let has_late = !inflight.late.is_empty();
    let partial = reply(inflight.partial.as_mut().map(|p| &mut p.rx));
    let prefix = reply(inflight.speaker_prefix.as_mut());
    let change = reply(inflight.speaker_change.as_mut());
    tokio::select! {
        biased;
        _ = shutdown.changed() => Event::Shutdown,
        _ = terminate.changed() => Event::Terminated,
        Some(done) = inflight.finals.next(), if has_finals => Event::Final(done),
        Some(late) = inflight.late.next(), if has_late => Event::LateSpeakers(late),
        result = prefix => Event::SpeakerPrefix(result.unwrap_or(Err(DiarizeError::WorkerLost))),
        result = change => Event::SpeakerChange(result.unwrap_or(Err(DiarizeError::WorkerLost))),
        result = partial => Event::Partial(result.unwrap_or(Err(AsrError::WorkerLost))),
        event = outlet.recv() => match event {
            ClientEvent::Frame(message) => Event::Client(message),
            ClientEvent::TooLarge => Event::TooLarge,
            ClientEvent::Gone => Event::ClientGone,
            ClientEvent::Answered => Event::Answered,
        },
        _ = sleep_until(idle_deadline) => Event::Idle,
    }
}

/// What a client frame tells the core; audio is checked for size, then decoded and scored here
/// (the VAD model runs on this task: it is cheap). `None` for pings and pongs.
fn client_input(
    session: &Session,
    jobs: &mut Jobs,
    front: &mut AudioFront,
    message: Message,
    outlet: &mut Outlet,
) -> Option<Input> {
    match message {
        Message::Binary(bytes) if !session.accepts_frame(bytes.len()) => Some(Input::TooLarge(Some(bytes.len()))),
        Message::Binary(bytes) => {
            jobs.heard();
            Some(match front.push(&bytes) {
                Ok(frames) => Input::Audio(frames),
                Err(e) => Input::AudioFailed(e),
            })
        }
        Message::Text(text) => Some(Input::Text(text.as_str().to_owned())),
        Message::Ping(_) | Message::Pong(_) => None,
        Message::Close(_) => {
            // The client closed the socket: it will not read anything more.
            outlet.open = false;
            Some(Input::ClientGone)
        }
    }
}

/// Finishes the session: flush audio, wait for every final (bounded), send them, then `closed`.
async fn drain(
    session: &mut Session,
    jobs: &mut Jobs,
    front: &mut AudioFront,
    outlet: &mut Outlet,
    reason: CloseReason,
) {
    let mut outbox = Vec::new();
    let last = Input::EndOfAudio { frames: front.finish(), dropped_bytes: front.dropped_bytes };
    let actions = session.handle(last);
    jobs.run(session, actions, &mut outbox).await;
    jobs.inflight.partial = None;
    let wait = jobs.final_timeout();
    while !jobs.inflight.finals.is_empty() {
        match timeout(wait, jobs.inflight.finals.next()).await {
            Ok(Some(done)) => {
                let actions = session.handle(Input::Final(jobs.final_done(done)));
                jobs.run(session, actions, &mut outbox).await;
            }
            Ok(None) => break,
            Err(_) => {
                let ids: Vec<String> = jobs.inflight.final_ids.iter().map(u64::to_string).collect();
                let message =
                    format!("gave up waiting {} s for the finals of segments {}", wait.as_secs(), ids.join(", "));
                outbox.push(ServerMessage::Error { code: ErrorCode::Overloaded, message });
                break;
            }
        }
        outlet.flush(&mut outbox).await;
    }
    // Speaker labels still on their way for finals already sent: they are part of the
    // transcript, so they go out before `closed` (speakers are bounded by their own queue wait).
    while !jobs.inflight.late.is_empty() {
        match timeout(wait, jobs.inflight.late.next()).await {
            Ok(Some(late)) => {
                let actions = session.handle(Input::LateSpeakers { segment_id: late.segment_id, result: late.result });
                jobs.run(session, actions, &mut outbox).await;
            }
            Ok(None) | Err(_) => break,
        }
        outlet.flush(&mut outbox).await;
    }
    jobs.stream_ended();
    outbox.push(session.closed(reason));
    outlet.record.set_audio_seconds(session.audio_seconds());
    outlet.flush(&mut outbox).await;
    outlet.close(reason).await;
    let (audio_seconds, segments) = (session.audio_seconds(), session.finals_sent());
    tracing::info!(?reason, audio_seconds, segments, "session ended");
}
