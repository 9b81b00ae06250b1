//! The PCM decoder fed one stream cut into frames at arbitrary points: the samples must not
//! depend on where the frames were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::audio::pcm::{Encoding, PcmDecoder};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let encoding = if head & 1 == 0 { Encoding::PcmS16le } else { Encoding::PcmF32le };
    let width = encoding.bytes_per_sample();
    // The first bytes say where to cut; the rest is the audio.
    let cuts_len = usize::from(head >> 1).min(rest.len());
    let (cuts, audio) = rest.split_at(cuts_len);

    let mut whole = PcmDecoder::new(encoding);
    let expected = whole.push(audio);
    assert_eq!(expected.len(), audio.len() / width);
    assert_eq!(whole.finish(), audio.len() % width);

    let mut split = PcmDecoder::new(encoding);
    let mut got = Vec::new();
    let mut remaining = audio;
    for &cut in cuts {
        let (frame, tail) = remaining.split_at(usize::from(cut).min(remaining.len()));
        got.extend(split.push(frame));
        remaining = tail;
    }
    got.extend(split.push(remaining));
    assert_eq!(split.finish(), audio.len() % width);
    // Bit for bit (NaN-safe), and every sample finite and within [-1, 1].
    assert!(got.iter().map(|s| s.to_bits()).eq(expected.iter().map(|s| s.to_bits())));
    assert!(got.iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
});
