//! Whisper's repetition loop: greedy decoding can get stuck repeating a phrase ("And so my
//! fellow Americans." seven times) or a fragment ("y-y-y-y-y"). A decode is judged by what it
//! produced: its text's compression ratio (a loop compresses far better than speech) and runs of
//! the same word sequence. A looping decode is decoded again with beam search (on a fresh
//! state, whose random generator starts from its seed: whisper.cpp draws beam candidates with
//! it, so the same clip gives the same words on any worker); what still loops has its repeats
//! removed, so no final is mostly repetition.

use std::io::Write;

use crate::domain::{DecodeQuality, Transcript, Word};
use crate::speaker::attribution::join_words;

/// Speech text compresses to about half its size; OpenAI's Whisper treats a ratio above 2.4 as
/// a failed decode, and so do we.
pub const MAX_COMPRESSION_RATIO: f64 = 2.4;
/// A phrase of up to this many words said this many times in a row is a loop.
const MAX_PHRASE: usize = 8;
const MIN_REPEATS: usize = 3;
/// A single word repeated this many times in a row is a loop ("no no no" is speech).
const MIN_WORD_REPEATS: usize = 4;
/// A phrase this long said twice in a row is a loop: people repeat a word or three, not a
/// whole sentence ("I'm in New Jersey now though. I'm in New Jersey now though.").
const LONG_PHRASE: usize = 5;
/// Text shorter than this is not judged by its compression ratio: zlib's header dominates.
const MIN_COMPRESSIBLE: usize = 40;

/// Length of `text` over its zlib-compressed length.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = encoder.write_all(text.as_bytes()).and_then(|()| encoder.finish()).unwrap_or_default();
    text.len() as f64 / compressed.len().max(1) as f64
}

/// Whether a decode looks like a repetition loop, judged by its compression ratio (computed
/// once, with the decode) and its words.
pub fn is_looping(transcript: &Transcript) -> bool {
    let compresses =
        transcript.text.len() >= MIN_COMPRESSIBLE && transcript.quality.compression_ratio > MAX_COMPRESSION_RATIO;
    compresses || first_run(&keys(&transcript.words)).is_some() || transcript.words.iter().any(|w| stutters(&w.word))
}

/// The transcript with every repeated run kept once, and fragments that stutter cut short.
pub fn without_repeats(transcript: Transcript) -> Transcript {
    let mut words: Vec<Word> = transcript.words;
    loop {
        let keys = keys(&words);
        let Some((at, len, repeats)) = first_run(&keys) else { break };
        words.drain(at + len..at + len * repeats);
    }
    for w in &mut words {
        if stutters(&w.word) {
            w.word = first_pieces(&w.word);
        }
    }
    let text = join_words(&words);
    let quality = DecodeQuality { compression_ratio: compression_ratio(&text), ..transcript.quality };
    Transcript { text, words, quality, ..transcript }
}

fn keys(words: &[Word]) -> Vec<String> {
    let normal = |w: &Word| w.word.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    words.iter().map(normal).collect()
}

/// The first run of one phrase said several times in a row: where it starts, the phrase's
/// length in words, and how many times it is said.
fn first_run(keys: &[String]) -> Option<(usize, usize, usize)> {
    for at in 0..keys.len() {
        for len in 1..=MAX_PHRASE.min((keys.len() - at) / 2) {
            let phrase = &keys[at..at + len];
            if phrase.iter().all(String::is_empty) {
                continue;
            }
            let repeats = 1 + keys[at + len..].chunks_exact(len).take_while(|c| *c == phrase).count();
            let needed = match len {
                1 => MIN_WORD_REPEATS,
                LONG_PHRASE.. => 2,
                _ => MIN_REPEATS,
            };
            if repeats >= needed {
                return Some((at, len, repeats));
            }
        }
    }
    None
}

/// A word made of the same hyphenated fragment many times ("s-s-y-y-y-y-y").
fn stutters(word: &str) -> bool {
    let pieces: Vec<&str> = word.split('-').collect();
    pieces.len() > 4 && pieces.windows(2).filter(|p| p[0] == p[1]).count() >= 3
}

/// A stuttering word's fragments with repeats in a row kept once.
fn first_pieces(word: &str) -> String {
    let mut pieces: Vec<&str> = word.split('-').collect();
    pieces.dedup();
    pieces.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(text: &str) -> Transcript {
        let words = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| Word { word: w.into(), start: i as f64, end: i as f64 + 1.0, probability: 0.5 })
            .collect();
        let quality = DecodeQuality { compression_ratio: compression_ratio(text), ..Default::default() };
        Transcript { text: text.into(), words, quality, ..Default::default() }
    }

    #[test]
    fn a_repeated_phrase_is_a_loop_and_is_kept_once() {
        let looping = transcript(&format!("Hello? {}and then", "And so my fellow Americans. ".repeat(7)));
        assert!(is_looping(&looping));
        assert!(compression_ratio(&looping.text) > MAX_COMPRESSION_RATIO);
        let fixed = without_repeats(looping);
        assert_eq!(fixed.text, "Hello? And so my fellow Americans. and then");
        assert!(!is_looping(&fixed));
    }

    #[test]
    fn stuttering_fragments_are_loops_and_are_cut_short() {
        let t = transcript("it was old-s-s-y-y-y-y-y-y-y-y");
        assert!(is_looping(&t));
        assert_eq!(without_repeats(t).text, "it was old-s-y");
    }

    #[test]
    fn a_whole_sentence_said_twice_is_a_loop() {
        let t = transcript("Oh, I'm from Chicago. I'm in New Jersey now though. I'm in New Jersey now though.");
        assert!(is_looping(&t));
        assert_eq!(without_repeats(t).text, "Oh, I'm from Chicago. I'm in New Jersey now though.");
        assert!(!is_looping(&transcript("I said yes, I said yes, and I meant it")), "a short phrase twice is speech");
    }

    #[test]
    fn ordinary_speech_is_not_a_loop() {
        for text in [
            "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
            "no no no, that is not what I said",
            "well-to-do people",
            "",
        ] {
            assert!(!is_looping(&transcript(text)), "{text}");
        }
    }
}
