//! A WebSocket client that streams a WAV file, paced like a live source. Used by the `stream`
//! command, the end-to-end tests and the latency benchmark.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::audio::pcm::Encoding;
use crate::audio::{g711, wav};
use crate::domain::Segment;
use crate::protocol::{ClientMessage, ServerMessage};

/// How to stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// 1.0 is real time; 2.0 twice as fast; 0 sends as fast as possible.
    pub speed: f64,
    pub chunk_ms: u32,
    pub encoding: Encoding,
    /// Extra query parameters, e.g. `language=en`.
    pub query: Vec<(String, String)>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self { speed: 1.0, chunk_ms: 100, encoding: Encoding::PcmS16le, query: Vec::new() }
    }
}

/// Encodes samples the way a client declares them.
pub fn encode(samples: &[f32], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::PcmS16le => samples.iter().flat_map(|&s| to_i16(s).to_le_bytes()).collect(),
        Encoding::PcmF32le => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
        Encoding::Mulaw => samples.iter().map(|&s| g711::linear_to_mulaw(to_i16(s))).collect(),
        Encoding::Alaw => samples.iter().map(|&s| g711::linear_to_alaw(to_i16(s))).collect(),
    }
}

fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * 32767.0) as i16
}

/// A server message and when it arrived, in seconds of audio sent so far (the stream clock).
#[derive(Debug, Clone)]
pub struct Received {
    pub message: ServerMessage,
    /// Seconds since the first audio was sent, in wall-clock time.
    pub wall: f64,
    /// Seconds of audio sent when the message arrived.
    pub audio_sent: f64,
}

fn listen_url(base: &str, audio: &wav::WavAudio, options: &StreamOptions) -> String {
    let mut url = base.to_owned();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    let declared = [("sample_rate", audio.sample_rate.to_string()), ("encoding", options.encoding.as_str().to_owned())];
    let channels = (audio.channels > 1).then(|| ("channels", audio.channels.to_string()));
    let declared = declared.into_iter().chain(channels).map(|(k, v)| (k.to_owned(), v));
    for (k, v) in declared.chain(options.query.iter().cloned()) {
        url.push(sep);
        url.push_str(&format!("{k}={v}"));
        sep = '&';
    }
    url
}

/// The server answered the upgrade with an HTTP error instead of a WebSocket.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the server refused the session: HTTP {status} {code}: {message}")]
pub struct Refused {
    pub status: u16,
    /// The `error.code` of the JSON body, e.g. `at_capacity`.
    pub code: String,
    pub message: String,
    /// Seconds from the `Retry-After` header, when given.
    pub retry_after: Option<u64>,
}

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("the WebSocket failed")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server sent a message this client cannot read")]
    Message(#[from] serde_json::Error),
    #[error("the server closed the session before `{0}`")]
    ClosedBefore(&'static str),
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    #[error("cannot reach {authority}")]
    Http {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {status_line}")]
    Status { path: String, status_line: String },
    #[error("{path}: malformed HTTP response")]
    MalformedHttp { path: String },
    #[error("{path}: the body is not the JSON expected")]
    Body {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the socket; a refusal at the upgrade becomes a [`Refused`] error (downcast it).
async fn connect(url: &str) -> Result<Socket, ClientError> {
    use tokio_tungstenite::tungstenite::Error;
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(Error::Http(response)) => {
            let body: serde_json::Value =
                response.body().as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
            let header = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
            Err(Refused {
                status: response.status().as_u16(),
                code: body["error"]["code"].as_str().unwrap_or_default().to_owned(),
                message: body["error"]["message"].as_str().unwrap_or_default().to_owned(),
                retry_after: header.and_then(|v| v.parse().ok()),
            }
            .into())
        }
        Err(source) => Err(ClientError::Connect { url: url.to_owned(), source }),
    }
}

/// Connects and waits for `ready`; the socket is returned open, with no audio sent.
pub async fn open_ready(url: &str) -> Result<Socket, ClientError> {
    let mut socket = connect(url).await?;
    while let Some(message) = socket.next().await {
        if let Message::Text(text) = message? {
            if let ServerMessage::Ready { .. } = serde_json::from_str(&text)? {
                return Ok(socket);
            }
        }
    }
    Err(ClientError::ClosedBefore("ready"))
}

/// Streams `path` to `url` at the file's own rate, sends `close`, and returns every
/// message up to `closed`. `on_message` sees each one as it arrives.
pub async fn stream_file(
    url: &str,
    path: &Path,
    options: &StreamOptions,
    on_message: impl FnMut(&Received) + Send,
) -> Result<Vec<Received>, ClientError> {
    let audio = wav::read(path)?;
    stream_audio(url, &audio, options, on_message).await
}

/// Streams decoded audio to `url` like [`stream_file`].
pub async fn stream_audio(
    url: &str,
    audio: &wav::WavAudio,
    options: &StreamOptions,
    mut on_message: impl FnMut(&Received) + Send,
) -> Result<Vec<Received>, ClientError> {
    let pcm = encode(&audio.samples, options.encoding);
    let url = listen_url(url, audio, options);
    let socket = connect(&url).await?;
    let (mut tx, mut rx) = socket.split();
    // A chunk and the clock count whole frames: one sample of every channel.
    let frame = options.encoding.bytes_per_sample() * usize::from(audio.channels.max(1));
    let chunk_bytes = (audio.sample_rate as usize * options.chunk_ms as usize / 1000).max(1) * frame;
    let started = Instant::now();
    let bytes_per_sec = f64::from(audio.sample_rate) * frame as f64;
    let mut received = Vec::new();
    let mut chunks = pcm.chunks(chunk_bytes);
    let mut sent_bytes = 0usize;
    let mut close_sent = false;
    loop {
        let due = Duration::from_secs_f64(if options.speed > 0.0 {
            sent_bytes as f64 / bytes_per_sec / options.speed
        } else {
            0.0
        });
        tokio::select! {
            message = rx.next() => {
                let Some(message) = message else { return Err(ClientError::ClosedBefore("closed")) };
                if let Message::Text(text) = message? {
                    let r = Received { message: serde_json::from_str(&text)?, wall: started.elapsed().as_secs_f64(), audio_sent: sent_bytes as f64 / bytes_per_sec };
                    on_message(&r);
                    let is_closed = matches!(r.message, ServerMessage::Closed { .. });
                    received.push(r);
                    if is_closed {
                        return Ok(received);
                    }
                }
            }
            _ = tokio::time::sleep_until((started + due).into()), if !close_sent => {
                let sent = match chunks.next() {
                    Some(chunk) => {
                        sent_bytes += chunk.len();
                        tx.send(Message::Binary(chunk.to_vec().into())).await
                    }
                    None => {
                        close_sent = true;
                        tx.send(Message::Text(client_text(&ClientMessage::Close).into())).await
                    }
                };
                // The server may end the session first (shutdown, termination, a limit): stop
                // sending and read what it still has to say, up to its `closed`.
                if sent.is_err() {
                    close_sent = true;
                }
            }
        }
    }
}

/// A client message as the JSON text frame that carries it.
pub fn client_text(message: &ClientMessage) -> String {
    serde_json::to_string(message).expect("client messages always serialise")
}

/// Prints a message the way the `stream` command shows it.
pub fn print_message(r: &Received) {
    match &r.message {
        ServerMessage::Partial { start, end, text, .. } => println!("  ... [{start:7.2} - {end:7.2}] {text}"),
        ServerMessage::Final(s) => {
            let speaker = s.speaker.as_ref().map_or_else(String::new, |who| format!("{who}: "));
            println!("FINAL [{:7.2} - {:7.2}] {speaker}{}", s.start, s.end, s.text)
        }
        other => println!("{}", serde_json::to_string(other).expect("server messages always serialise")),
    }
}

/// The final segments among `messages`.
pub fn finals(messages: &[ServerMessage]) -> Vec<&Segment> {
    messages.iter().filter_map(|m| if let ServerMessage::Final(s) = m { Some(s) } else { None }).collect()
}

/// Speaker turns of a live session from the messages it received: each final part with its
/// speaker, after every `speaker_update` (late labels and merges) is applied. Finals that never
/// got a speaker are left out.
pub fn speaker_turns(messages: &[ServerMessage]) -> Vec<crate::eval::rttm::Turn> {
    use std::collections::HashMap;
    let mut labels: HashMap<(u64, u32), String> = HashMap::new();
    let mut merged: HashMap<String, String> = HashMap::new();
    for m in messages {
        if let ServerMessage::SpeakerUpdate { segments, merged: merges } = m {
            labels.extend(segments.iter().map(|s| ((s.segment_id, s.part), s.speaker.clone())));
            merged.extend(merges.iter().map(|(gone, kept)| (gone.clone(), kept.clone())));
        }
    }
    let resolve = |mut s: String| {
        while let Some(next) = merged.get(&s) {
            s = next.clone();
        }
        s
    };
    finals(messages)
        .into_iter()
        .filter_map(|f| {
            // A label that came later (late, or changed) replaces the one the final carried.
            let speaker = labels.get(&(f.segment_id, f.part)).cloned().or_else(|| f.speaker.clone())?;
            Some(crate::eval::rttm::Turn { start: f.start, end: f.end, speaker: resolve(speaker) })
        })
        .collect()
}

/// `METHOD path` on the server behind a `ws://` or `http://` URL (plain HTTP/1.1, no TLS): the
/// status and the body as text.
pub async fn request(url: &str, method: &str, path: &str, token: Option<&str>) -> Result<(u16, String), ClientError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url.split("://").nth(1).unwrap_or(url).split(['/', '?']).next().unwrap_or_default();
    let unreachable = |source| ClientError::Http { authority: authority.to_owned(), source };
    let mut stream = tokio::net::TcpStream::connect(authority).await.map_err(unreachable)?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(unreachable)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(unreachable)?;
    let text = String::from_utf8_lossy(&response);
    let malformed = || ClientError::MalformedHttp { path: path.to_owned() };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(malformed)?;
    // axum answers small bodies with a Content-Length, never chunked.
    Ok((status, body.to_owned()))
}

/// `GET path` as JSON; anything but 200 is an error. Used by the load generator to read `/stats`
/// from a server that may be on another machine.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    url: &str,
    path: &str,
    token: Option<&str>,
) -> Result<T, ClientError> {
    let (status, body) = request(url, "GET", path, token).await?;
    let path = path.to_owned();
    if status != 200 {
        return Err(ClientError::Status { path, status_line: format!("HTTP {status}") });
    }
    serde_json::from_str(&body).map_err(|source| ClientError::Body { path, source })
}
