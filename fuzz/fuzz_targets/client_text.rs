//! Text frames a client sends, through the session core (the state machine that answers them),
//! one input after another: whatever arrives, the session answers or closes, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::config::Config;
use speech_service::protocol::{Abilities, ListenParams};
use speech_service::session::core::{Input, Session};

fn params(diarize: bool) -> ListenParams {
    let abilities = Abilities { multilingual: false, diarization: diarize, is_language: |_| false, max_channels: 8 };
    ListenParams::parse(&[], &abilities).expect("the defaults parse")
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut config = Config::default();
    config.limits.max_frame_bytes = 1024;
    let mut session = Session::new("fuzz".into(), params(flags & 1 != 0), &config, "tiny.en");
    // Frames separated by newlines, each its own text message.
    for frame in rest.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(frame).into_owned();
        let _ = session.handle(Input::Text(text));
    }
});
