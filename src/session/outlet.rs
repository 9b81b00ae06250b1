//! Where a session's messages go and its client's frames come from: the WebSocket itself, or,
//! for one channel of a multichannel stream, the task that owns the socket (`channels.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::config::Config;
use crate::protocol::{CloseReason, ServerMessage};
use crate::registry::{SessionRecord, SessionRegistry};

/// What a channel's session hears from the task that splits the client's frames.
pub enum LaneInput {
    Frame(Message),
    /// The client sent a frame over the limit.
    TooLarge,
}

/// One channel's connection to the task that owns the socket: frames in, messages out (tagged
/// with the channel there).
pub struct Lane {
    pub rx: mpsc::Receiver<LaneInput>,
    pub tx: mpsc::Sender<(u32, ServerMessage)>,
    pub channel: u32,
}

pub enum Wire {
    // Boxed: a socket is large and there is one per session; a lane is a few pointers.
    Socket(Box<WebSocket>),
    Lane(Lane),
}

/// What came from the client.
pub enum ClientEvent {
    Frame(Message),
    TooLarge,
    Gone,
}

/// The client side: sends with a timeout and remembers whether the client can still hear us.
/// Everything sent to a socket is also recorded for the REST API, whether or not the client
/// still listens; a lane's messages are recorded by the task that owns the socket.
pub struct Outlet {
    pub wire: Wire,
    pub open: bool,
    /// A send timed out: the client stopped reading, and is to be dropped.
    pub stalled: bool,
    pub send_timeout: Duration,
    pub record: Arc<SessionRecord>,
    pub registry: Arc<SessionRegistry>,
}

impl Outlet {
    pub fn new(wire: Wire, config: &Config, record: Arc<SessionRecord>, registry: Arc<SessionRegistry>) -> Self {
        let send_timeout = Duration::from_secs(config.limits.send_timeout_s);
        Self { wire, open: true, stalled: false, send_timeout, record, registry }
    }

    pub async fn send(&mut self, message: &ServerMessage) {
        let socket = match &mut self.wire {
            Wire::Lane(lane) => {
                // The owner reads until every lane has finished; a lane never stops sending, so
                // that the owner records everything even after its client went away.
                let _ = timeout(self.send_timeout, lane.tx.send((lane.channel, message.clone()))).await;
                return;
            }
            Wire::Socket(socket) => socket,
        };
        self.record.observe(message);
        if !self.open {
            return;
        }
        let json = serde_json::to_string(message).expect("server messages always serialise");
        let sent = timeout(self.send_timeout, socket.send(Message::Text(json.into()))).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::info!("client stopped reading; it is dropped and its segments finished");
            self.open = false;
            self.stalled = true;
        }
    }

    pub async fn flush(&mut self, outbox: &mut Vec<ServerMessage>) {
        for message in outbox.drain(..) {
            self.send(&message).await;
        }
    }

    /// The client's next frame.
    pub async fn recv(&mut self) -> ClientEvent {
        match &mut self.wire {
            Wire::Socket(socket) => match socket.recv().await {
                Some(Ok(message)) => ClientEvent::Frame(message),
                Some(Err(e)) if is_capacity_error(&e) => ClientEvent::TooLarge,
                _ => ClientEvent::Gone,
            },
            Wire::Lane(lane) => match lane.rx.recv().await {
                Some(LaneInput::Frame(message)) => ClientEvent::Frame(message),
                Some(LaneInput::TooLarge) => ClientEvent::TooLarge,
                None => ClientEvent::Gone,
            },
        }
    }

    /// Marks the session ended (before the client can see it end) and sends the close frame.
    /// A lane leaves both to the task that owns the socket.
    pub async fn close(&mut self, reason: CloseReason) {
        let Wire::Socket(socket) = &mut self.wire else { return };
        self.registry.close(&self.record.header.id, reason);
        if self.open {
            let frame = CloseFrame { code: reason.close_code(), reason: format!("{reason:?}").into() };
            let _ = timeout(self.send_timeout, socket.send(Message::Close(Some(frame)))).await;
            self.open = false;
            await_client_close(socket, reason == CloseReason::FrameTooLarge).await;
        }
    }
}

/// tungstenite refuses messages over its own (larger) cap before we see them.
fn is_capacity_error(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Message too big")
}

/// How long a closing session waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Completes the closing handshake: reads (and drops) whatever the client still sends until
/// its close frame, for at most `CLOSE_WAIT`. Closing a TCP socket with unread audio in it
/// makes the kernel reset the connection, which can destroy the last messages in flight.
/// `hold`: after a frame too large to read, the socket layer has stopped reading; the
/// connection is then kept open (unread) until the deadline, so the client can read what
/// was sent before the kernel resets it.
async fn await_client_close(socket: &mut WebSocket, hold: bool) {
    let deadline = Instant::now() + CLOSE_WAIT;
    // Errors are read past too: after a frame too large to read, the rest of it is still
    // arriving, and it must be drained for the close frame to reach the client.
    loop {
        match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(Message::Close(_)))) | Err(_) => break,
            Ok(Some(_)) => {}
            Ok(None) => {
                if hold {
                    tokio::time::sleep_until(deadline).await;
                }
                break;
            }
        }
    }
}
