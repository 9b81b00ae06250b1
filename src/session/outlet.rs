//! Where a session's messages go and its client's frames come from: the WebSocket itself, or,
//! for one channel of a multichannel stream, the task that owns the socket (`channels.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use crate::config::Config;
use crate::protocol::dialect::{Dialect, Frame};
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
    /// A frame of a vendor's protocol that its dialect answered itself: nothing for the core,
    /// but replies to send.
    Answered,
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
    /// The vendor's protocol the client speaks, if not ours (`protocol::dialect`).
    dialect: Option<Box<dyn Dialect>>,
    /// Frames for the core that one client frame came to, not yet handed over.
    inbound: VecDeque<ClientEvent>,
    /// What the dialect answered by itself, sent with the next flush.
    replies: Vec<String>,
}

impl Outlet {
    pub fn new(wire: Wire, config: &Config, record: Arc<SessionRecord>, registry: Arc<SessionRegistry>) -> Self {
        let send_timeout = Duration::from_secs(config.limits.send_timeout_s);
        let (dialect, inbound, replies) = (None, VecDeque::new(), Vec::new());
        Self { wire, open: true, stalled: false, send_timeout, record, registry, dialect, inbound, replies }
    }

    /// The client speaks a vendor's protocol: every frame both ways goes through `dialect`.
    pub fn speaking(mut self, dialect: Box<dyn Dialect>) -> Self {
        self.dialect = Some(dialect);
        self
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
        let texts = match &mut self.dialect {
            None => vec![serde_json::to_string(message).expect("server messages always serialise")],
            Some(dialect) => {
                let mut texts = Vec::new();
                dialect.outbound(message, &mut texts);
                texts
            }
        };
        for text in texts {
            send_text(socket, text, self.send_timeout, &mut self.open, &mut self.stalled).await;
        }
    }

    pub async fn flush(&mut self, outbox: &mut Vec<ServerMessage>) {
        let replies = std::mem::take(&mut self.replies);
        self.send_texts(replies).await;
        for message in outbox.drain(..) {
            self.send(&message).await;
        }
        let mut held = Vec::new();
        if let Some(dialect) = &mut self.dialect {
            dialect.flush(&mut held);
        }
        self.send_texts(held).await;
    }

    async fn send_texts(&mut self, texts: Vec<String>) {
        let Wire::Socket(socket) = &mut self.wire else { return };
        for text in texts {
            if self.open {
                send_text(socket, text, self.send_timeout, &mut self.open, &mut self.stalled).await;
            }
        }
    }

    /// The client's next frame (in our protocol: a vendor's frame comes through its dialect).
    pub async fn recv(&mut self) -> ClientEvent {
        if let Some(event) = self.inbound.pop_front() {
            return event;
        }
        match &mut self.wire {
            Wire::Socket(socket) => match socket.recv().await {
                Some(Ok(message)) => match &mut self.dialect {
                    None => ClientEvent::Frame(message),
                    Some(dialect) => {
                        let Some(frame) = to_frame(message) else { return ClientEvent::Answered };
                        let inbound = dialect.inbound(frame);
                        self.replies.extend(inbound.replies);
                        self.inbound.extend(inbound.frames.into_iter().map(|f| ClientEvent::Frame(to_message(f))));
                        self.inbound.pop_front().unwrap_or(ClientEvent::Answered)
                    }
                },
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
        } else if matches!(reason, CloseReason::ClientClose | CloseReason::Disconnected) {
            // The client closed first: the socket layer queued the answering close frame, and a
            // flush sends it, so the client sees a clean close instead of a dropped connection.
            let _ = timeout(self.send_timeout, futures_util::SinkExt::flush(socket.as_mut())).await;
        }
    }
}

/// Sends one text frame; a client that does not take it within `wait` is marked stalled.
async fn send_text(socket: &mut WebSocket, text: String, wait: Duration, open: &mut bool, stalled: &mut bool) {
    let sent = timeout(wait, socket.send(Message::Text(text.into()))).await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::info!("client stopped reading; it is dropped and its segments finished");
        *open = false;
        *stalled = true;
    }
}

/// A socket message as a dialect reads it; pings and pongs are the socket's own business.
fn to_frame(message: Message) -> Option<Frame> {
    match message {
        Message::Binary(bytes) => Some(Frame::Binary(bytes.to_vec())),
        Message::Text(text) => Some(Frame::Text(text.as_str().to_owned())),
        Message::Close(_) => Some(Frame::Close),
        Message::Ping(_) | Message::Pong(_) => None,
    }
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
        Frame::Text(text) => Message::Text(text.into()),
        Frame::Close => Message::Close(None),
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
