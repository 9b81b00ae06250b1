//! A multichannel stream (`multichannel=true`, e.g. a call with one party per channel): one
//! session per channel ("lane"), each with its own VAD, segmenter, partials, finals and
//! speakers, fed by this task. It owns the socket, splits the interleaved frames, and merges
//! what the lanes send into one stream: segment ids made unique, `channel` on every message
//! about a segment, the channel as the speaker, one `ready` and one `closed`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::outlet::{ClientEvent, Lane, LaneInput, Outlet, Wire};
use super::{recorded, serve, SessionDeps};
use crate::audio::channels::{crosstalk_window, Deinterleaver};
use crate::audio::pcm::PcmDecoder;
use crate::config::Config;
use crate::domain::{channel_segment_id, channel_speaker};
use crate::protocol::{ClientMessage, CloseReason, ErrorCode, ListenParams, ServerMessage};
use crate::registry::admission::StreamTicket;

/// Client frames a lane may have waiting: a lane that falls this far behind holds the socket
/// (and so the client) back rather than growing a queue.
const LANE_QUEUE: usize = 16;

/// Serves a multichannel stream to its end; `tickets` holds one admission ticket per channel.
pub async fn run(
    socket: WebSocket,
    params: ListenParams,
    deps: SessionDeps,
    config: Arc<Config>,
    client: SocketAddr,
    tickets: Vec<Arc<StreamTicket>>,
) {
    recorded(deps.clone(), client, params.clone(), |id, record| async move {
        let (out_tx, out_rx) = mpsc::channel(LANE_QUEUE * tickets.len());
        let mut inputs = Vec::with_capacity(tickets.len());
        for (channel, ticket) in (0u32..).zip(tickets) {
            let (tx, rx) = mpsc::channel(LANE_QUEUE);
            inputs.push(tx);
            let lane = Lane { rx, tx: out_tx.clone(), channel };
            let outlet = Outlet::new(Wire::Lane(lane), &config, record.clone(), deps.registry.clone());
            let serving = serve(outlet, id.clone(), params.one_channel(), deps.clone(), config.clone(), ticket);
            tokio::spawn(serving.instrument(tracing::info_span!("channel", channel)));
        }
        drop(out_tx);
        let outlet = Outlet::new(Wire::Socket(Box::new(socket)), &config, record, deps.registry.clone());
        let (split, merge) = (Splitter::new(&params), Merge::new(&params));
        let max_frame = config.limits.max_frame_bytes;
        Mixer { outlet, inputs: Some(inputs), split, merge, max_frame }.run(out_rx).await
    })
    .await;
}

/// The socket's side of a multichannel stream.
struct Mixer {
    outlet: Outlet,
    /// Where each lane's frames go; `None` once the client is done sending.
    inputs: Option<Vec<mpsc::Sender<LaneInput>>>,
    split: Splitter,
    merge: Merge,
    max_frame: usize,
}

impl Mixer {
    /// Forwards client frames to the lanes and lane messages to the client until every lane
    /// has ended; returns why the stream ended.
    async fn run(mut self, mut lanes: mpsc::Receiver<(u32, ServerMessage)>) -> CloseReason {
        loop {
            let reading = self.inputs.is_some() && self.outlet.open;
            tokio::select! {
                biased;
                message = lanes.recv() => match message {
                    Some((channel, message)) => self.on_lane_message(channel, message).await,
                    None => break,
                },
                event = self.outlet.recv(), if reading => self.on_client_event(event).await,
            }
            if std::mem::take(&mut self.outlet.stalled) {
                self.stop_reading().await;
            }
        }
        // The lanes may end before the client does (a limit, shutdown): what it sent is checked.
        self.stop_reading().await;
        let (reason, audio_seconds, segments) = self.merge.closed();
        self.outlet.record.set_audio_seconds(audio_seconds);
        self.outlet.send(&ServerMessage::Closed { reason, audio_seconds, segments }).await;
        self.outlet.close(reason).await;
        tracing::info!(?reason, "multichannel session ended");
        reason
    }

    async fn on_lane_message(&mut self, channel: u32, message: ServerMessage) {
        if let Some(message) = self.merge.rewrite(channel, message) {
            self.outlet.send(&message).await;
        }
    }

    async fn on_client_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::Frame(Message::Binary(bytes)) if bytes.len() > self.max_frame => {
                // Every lane closes on it; the socket is not read further.
                self.send_every_lane(|| LaneInput::TooLarge).await;
                self.inputs = None;
            }
            ClientEvent::Frame(Message::Binary(bytes)) => {
                let channels = self.split.push(&bytes);
                let Some(inputs) = &self.inputs else { return };
                for (input, samples) in inputs.iter().zip(channels) {
                    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                    let _ = input.send(LaneInput::Frame(Message::Binary(bytes.into()))).await;
                }
            }
            // A message the server cannot read is answered once, by the first lane.
            ClientEvent::Frame(Message::Text(text)) if serde_json::from_str::<ClientMessage>(&text).is_err() => {
                if let Some(first) = self.inputs.as_ref().and_then(|i| i.first()) {
                    let _ = first.send(LaneInput::Frame(Message::Text(text))).await;
                }
            }
            ClientEvent::Frame(Message::Text(text)) => {
                let closing = matches!(serde_json::from_str(&text), Ok(ClientMessage::Close));
                self.send_every_lane(|| LaneInput::Frame(Message::Text(text.clone()))).await;
                if closing {
                    self.stop_reading().await;
                }
            }
            ClientEvent::Frame(Message::Ping(_) | Message::Pong(_)) | ClientEvent::Answered => {}
            ClientEvent::Frame(Message::Close(_)) => {
                self.outlet.open = false;
                self.stop_reading().await;
            }
            ClientEvent::TooLarge => {
                self.send_every_lane(|| LaneInput::TooLarge).await;
                self.inputs = None;
            }
            ClientEvent::Gone => {
                self.outlet.open = false;
                self.stop_reading().await;
            }
        }
    }

    async fn send_every_lane(&mut self, input: impl Fn() -> LaneInput) {
        for lane in self.inputs.iter().flatten() {
            let _ = lane.send(input()).await;
        }
    }

    /// The client sends no more: a partial frame left over is reported, and the lanes, whose
    /// inputs close, finish their utterances.
    async fn stop_reading(&mut self) {
        if self.inputs.take().is_none() {
            return;
        }
        if let Some(message) = self.split.leftover() {
            let error = ServerMessage::Error { code: ErrorCode::IncompleteSample, message };
            self.outlet.send(&error).await;
        }
    }
}

/// Client bytes to one run of samples per channel.
struct Splitter {
    decoder: PcmDecoder,
    frames: Deinterleaver,
    channels: usize,
    width: usize,
    /// Samples per window of the crosstalk gate.
    window: usize,
}

impl Splitter {
    fn new(params: &ListenParams) -> Self {
        let channels = params.channels as usize;
        Self {
            decoder: PcmDecoder::new(params.encoding),
            frames: Deinterleaver::new(channels),
            channels,
            width: params.encoding.bytes_per_sample(),
            window: crosstalk_window(params.sample_rate),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<f32>> {
        let samples = self.decoder.push(bytes);
        self.frames.split_gated(&samples, self.window)
    }

    /// What the end of the stream left that is not a whole frame of every channel, as the
    /// message of an `incomplete_sample` error.
    fn leftover(&mut self) -> Option<String> {
        let bytes = self.decoder.finish() + self.frames.finish() * self.width;
        let frame = self.width * self.channels;
        (bytes > 0).then(|| {
            format!(
                "dropped {bytes} trailing byte(s) that do not make a whole frame ({frame} bytes: one sample of \
                 each of the {} channels)",
                self.channels
            )
        })
    }
}

/// Turns what the lanes send into one stream's messages.
struct Merge {
    channels: u32,
    encoding: crate::audio::pcm::Encoding,
    /// Errors already sent: the same complaint from every lane is said once.
    errors: HashSet<(ErrorCode, String)>,
    /// Each lane's `closed`, by channel.
    closed: BTreeMap<u32, (CloseReason, f64, u64)>,
}

impl Merge {
    fn new(params: &ListenParams) -> Self {
        Self { channels: params.channels, encoding: params.encoding, errors: HashSet::new(), closed: BTreeMap::new() }
    }

    /// A lane's segment id as the stream's (`domain::channel_segment_id`).
    fn id(&self, channel: u32, id: u64) -> u64 {
        channel_segment_id(id, channel, self.channels)
    }

    /// The message the client gets for one a lane sent, if any.
    fn rewrite(&mut self, channel: u32, message: ServerMessage) -> Option<ServerMessage> {
        let on = Some(channel);
        Some(match message {
            ServerMessage::Ready { session_id, sample_rate, model, language, interim_results, diarize, .. } => {
                // Every lane says the same; the first one speaks for the stream.
                if channel != 0 {
                    return None;
                }
                let (encoding, channels) = (self.encoding, Some(self.channels));
                ServerMessage::Ready {
                    session_id,
                    sample_rate,
                    encoding,
                    model,
                    language,
                    interim_results,
                    diarize,
                    channels,
                }
            }
            // Every lane takes the same vocabulary; the first one answers for the stream.
            ServerMessage::Configured { .. } if channel != 0 => return None,
            message @ ServerMessage::Configured { .. } => message,
            ServerMessage::SpeechStarted { segment_id, start, .. } => {
                ServerMessage::SpeechStarted { segment_id: self.id(channel, segment_id), start, channel: on }
            }
            ServerMessage::Partial { segment_id, start, end, text, .. } => {
                ServerMessage::Partial { segment_id: self.id(channel, segment_id), start, end, text, channel: on }
            }
            ServerMessage::UtteranceEnd { segment_id, end, .. } => {
                ServerMessage::UtteranceEnd { segment_id: self.id(channel, segment_id), end, channel: on }
            }
            ServerMessage::Final(mut segment) => {
                segment.segment_id = self.id(channel, segment.segment_id);
                segment.speaker = Some(channel_speaker(channel, segment.speaker.as_deref()));
                segment.channel = on;
                ServerMessage::Final(segment)
            }
            ServerMessage::SpeakerUpdate { mut segments, merged } => {
                for label in &mut segments {
                    label.segment_id = self.id(channel, label.segment_id);
                    label.speaker = channel_speaker(channel, Some(&label.speaker));
                }
                let merged = merged
                    .into_iter()
                    .map(|(gone, kept)| (channel_speaker(channel, Some(&gone)), channel_speaker(channel, Some(&kept))))
                    .collect();
                ServerMessage::SpeakerUpdate { segments, merged }
            }
            ServerMessage::Error { code, message } => {
                if !self.errors.insert((code, message.clone())) {
                    return None;
                }
                ServerMessage::Error { code, message }
            }
            ServerMessage::Closed { reason, audio_seconds, segments } => {
                self.closed.insert(channel, (reason, audio_seconds, segments));
                return None;
            }
        })
    }

    /// The stream's `closed`: the first channel's reason, the longest channel's seconds, every
    /// channel's finals.
    fn closed(&self) -> (CloseReason, f64, u64) {
        let reason = self.closed.values().next().map_or(CloseReason::Error, |c| c.0);
        let audio_seconds = self.closed.values().map(|c| c.1).fold(0.0, f64::max);
        (reason, audio_seconds, self.closed.values().map(|c| c.2).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Segment;

    fn stereo() -> ListenParams {
        let query = [("channels", "2"), ("multichannel", "true")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let abilities = crate::protocol::Abilities {
            multilingual: false,
            diarization: true,
            is_language: |_| true,
            max_channels: 8,
        };
        ListenParams::parse(&query.into_iter().collect::<Vec<_>>(), &abilities).unwrap()
    }

    fn segment(id: u64, speaker: Option<&str>) -> Segment {
        Segment {
            segment_id: id,
            part: 0,
            start: 1.0,
            end: 2.0,
            text: "hi".into(),
            words: vec![],
            language: "en".into(),
            speaker: speaker.map(str::to_owned),
            channel: None,
        }
    }

    #[test]
    fn finals_carry_their_channel_as_speaker_and_unique_ids() {
        let mut merge = Merge::new(&stereo());
        let Some(ServerMessage::Final(left)) = merge.rewrite(0, ServerMessage::Final(segment(3, None))) else {
            panic!("a final stays a final")
        };
        let Some(ServerMessage::Final(right)) = merge.rewrite(1, ServerMessage::Final(segment(3, Some("S2")))) else {
            panic!("a final stays a final")
        };
        assert_eq!((left.segment_id, left.channel, left.speaker.as_deref()), (6, Some(0), Some("S1")));
        assert_eq!((right.segment_id, right.channel, right.speaker.as_deref()), (7, Some(1), Some("S2.2")));
    }

    #[test]
    fn one_ready_one_closed_and_each_error_once() {
        let mut merge = Merge::new(&stereo());
        let ready = |_: u32| ServerMessage::Ready {
            session_id: "s".into(),
            sample_rate: 8_000,
            encoding: crate::audio::pcm::Encoding::PcmF32le,
            model: "tiny.en".into(),
            language: None,
            interim_results: true,
            diarize: false,
            channels: None,
        };
        let first = merge.rewrite(0, ready(0));
        assert!(matches!(first, Some(ServerMessage::Ready { channels: Some(2), encoding, .. })
            if encoding == crate::audio::pcm::Encoding::PcmS16le));
        assert_eq!(merge.rewrite(1, ready(1)), None);
        let error = || ServerMessage::Error { code: ErrorCode::IdleTimeout, message: "idle".into() };
        assert!(merge.rewrite(0, error()).is_some());
        assert_eq!(merge.rewrite(1, error()), None);
        for (channel, seconds) in [(1, 4.0), (0, 4.5)] {
            let closed =
                ServerMessage::Closed { reason: CloseReason::ClientClose, audio_seconds: seconds, segments: 2 };
            assert_eq!(merge.rewrite(channel, closed), None);
        }
        assert_eq!(merge.closed(), (CloseReason::ClientClose, 4.5, 4));
    }

    #[test]
    fn a_stream_ending_mid_frame_is_reported() {
        let mut split = Splitter::new(&stereo());
        let frame = [1i16, -1, 2, 3].iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<_>>();
        let channels = split.push(&frame[..7]);
        assert_eq!(channels.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
        let message = split.leftover().expect("three bytes left over");
        assert!(message.contains("dropped 3 trailing byte(s)") && message.contains("4 bytes"), "{message}");
    }
}
