//! Uploaded files through the file decoder (every container and codec the file API takes),
//! with and without a name hint, decoded to the end or to the first error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::audio::decode::FileDecoder;

const HINTS: [Option<&str>; 9] =
    [None, Some("wav"), Some("flac"), Some("mp3"), Some("ogg"), Some("opus"), Some("webm"), Some("m4a"), Some("txt")];

/// Panics inside the decoding libraries are caught by the decoder's guard (the client gets
/// "malformed audio"); a panic anywhere else is a bug of ours and aborts, as libFuzzer expects.
fn let_library_panics_reach_the_guard() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.location().is_some_and(|l| l.file().contains("/symphonia")) {
            abort(info);
        }
    }));
}

fuzz_target!(init: let_library_panics_reach_the_guard(), |data: &[u8]| {
    let Some((&hint, bytes)) = data.split_first() else { return };
    let Ok(mut decoder) = FileDecoder::from_bytes(bytes.to_vec(), HINTS[usize::from(hint) % HINTS.len()]) else {
        return;
    };
    let mut samples = 0usize;
    // A bound on work per input: a tiny file may claim hours of audio.
    while samples < 16_000 * 600 {
        match decoder.next_chunk() {
            Ok(Some(chunk)) => {
                assert!(chunk.iter().all(|s| s.is_finite()), "decoded samples are finite");
                samples += chunk.len();
            }
            Ok(None) | Err(_) => break,
        }
    }
});
