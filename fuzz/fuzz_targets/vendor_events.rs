//! Client frames of the vendors' live protocols (Deepgram's, OpenAI Realtime's GA and beta)
//! through their dialects, one after another, with our session's messages in between:
//! whatever arrives, a dialect answers it or passes it on, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::protocol::deepgram::dialect::DeepgramDialect;
use speech_service::protocol::deepgram::Options;
use speech_service::protocol::dialect::{Dialect, Frame};
use speech_service::protocol::realtime::dialect::{RealtimeDialect, Server};
use speech_service::protocol::ServerMessage;

fn dialect(flags: u8) -> Box<dyn Dialect> {
    if flags & 1 == 0 {
        let options =
            Options { model: "nova-3".into(), punctuate: flags & 2 != 0, vad_events: true, utterance_end: true };
        return Box::new(DeepgramDialect::new(options, true, "tiny.en", 0.0));
    }
    let server =
        Server { model: "tiny.en".into(), language: None, silence_ms: 500, beta: flags & 2 != 0, partial_deltas: true };
    Box::new(RealtimeDialect::new(server))
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut dialect = dialect(flags);
    let mut out = Vec::new();
    // Frames separated by newlines: text, or binary where a frame starts with 0xff; each is
    // followed by one of our messages, a partial of what it said, so both directions run.
    for (i, frame) in rest.split(|&b| b == b'\n').enumerate() {
        let frame = match frame.split_first() {
            Some((0xff, bytes)) => Frame::Binary(bytes.to_vec()),
            _ => Frame::Text(String::from_utf8_lossy(frame).into_owned()),
        };
        let text = match &frame {
            Frame::Text(text) => text.clone(),
            _ => String::new(),
        };
        let inbound = dialect.inbound(frame);
        assert!(inbound.replies.iter().all(|r| serde_json::from_str::<serde_json::Value>(r).is_ok()));
        let segment_id = i as u64 / 3;
        dialect.outbound(&ServerMessage::Partial { segment_id, start: 0.0, end: 1.0, text, channel: None }, &mut out);
        if i % 3 == 2 {
            dialect.outbound(&ServerMessage::UtteranceEnd { segment_id, end: 1.0, channel: None }, &mut out);
        }
        dialect.flush(&mut out);
    }
    let _ = dialect.inbound(Frame::Close);
});
