//! A conversation recording built from the test recordings: speaker turns joined with no pause
//! between them, some overlapping, with the reference speaker turns and text that follow from
//! how it was joined. It is the audio that progressive finals are measured on: people answering
//! each other without a pause, where a final that waits for a pause waits for everything.

use super::rttm::Turn;

/// One turn to join: its audio (16 kHz), who speaks and what they say.
#[derive(Debug, Clone)]
pub struct Clip {
    pub samples: Vec<f32>,
    pub speaker: String,
    pub text: String,
}

/// The joined recording (16 kHz), its speaker turns and its text in order of speaking.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub samples: Vec<f32>,
    pub turns: Vec<Turn>,
    pub text: String,
}

const RATE: f64 = crate::domain::SAMPLE_RATE as f64;

/// Joins `clips` one after the other with no pause; every `overlap_every`-th clip (counting
/// from 1) starts `overlap` seconds before the one before it ends, so both speak at once.
pub fn join(clips: &[Clip], overlap_every: usize, overlap: f64) -> Conversation {
    let mut samples: Vec<f32> = Vec::new();
    let mut turns = Vec::new();
    let mut texts = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        let overlapping = overlap_every > 0 && i > 0 && (i + 1) % overlap_every == 0;
        let back = if overlapping { (overlap * RATE) as usize } else { 0 };
        let at = samples.len().saturating_sub(back);
        samples.resize(samples.len().max(at + clip.samples.len()), 0.0);
        for (out, s) in samples[at..].iter_mut().zip(&clip.samples) {
            *out = (*out + s).clamp(-1.0, 1.0);
        }
        let (start, end) = (at as f64 / RATE, (at + clip.samples.len()) as f64 / RATE);
        turns.push(Turn { start, end, speaker: clip.speaker.clone() });
        texts.push(clip.text.clone());
    }
    Conversation { samples, turns, text: texts.join(" ") }
}

/// The timed utterances of an STM reference (`file channel speaker start end text`) cut out of
/// their recording's 16 kHz `audio`.
pub fn clips_from_stm(audio: &[f32], stm: &str) -> Vec<Clip> {
    let mut clips = Vec::new();
    for line in stm.lines() {
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        let [_, _, speaker, start, end, text] = fields[..] else { continue };
        let (Ok(start), Ok(end)) = (start.parse::<f64>(), end.parse::<f64>()) else { continue };
        let range = (start * RATE) as usize..((end * RATE) as usize).min(audio.len());
        if range.is_empty() {
            continue;
        }
        clips.push(Clip { samples: audio[range].to_vec(), speaker: speaker.to_owned(), text: text.trim().to_owned() });
    }
    clips
}

/// The test conversation: the two-person call's utterances joined without its pauses, with
/// JFK's sentence as a third speaker in the middle; every third turn overlaps the one before it
/// by 0.4 s.
pub fn test_conversation(call: &[f32], call_stm: &str, jfk: &[f32], jfk_text: &str) -> Conversation {
    let mut clips = clips_from_stm(call, call_stm);
    let jfk_clip = Clip { samples: trim_silence(jfk), speaker: "jfk".into(), text: jfk_text.into() };
    clips.insert(clips.len() / 2, jfk_clip);
    join(&clips, 3, 0.4)
}

/// A two-party call as a call centre records it: one party per channel, with a little of the
/// other party leaking in (echo on the line).
#[derive(Debug, Clone)]
pub struct StereoCall {
    /// Left (the first party to speak) and right, 16 kHz.
    pub channels: [Vec<f32>; 2],
    /// What each channel's party says, in order.
    pub texts: [String; 2],
}

/// Seconds of a party's audio kept before and after each of their STM turns.
const TURN_PAD: f64 = 0.15;

/// How loud the other party is in a channel: -30 dB.
const CROSSTALK: f32 = 0.03;

/// The two-person call split by its STM reference: each party's turns at full level in their
/// own channel, the rest of that channel at [`CROSSTALK`].
pub fn stereo_call(call: &[f32], stm: &str) -> StereoCall {
    let mut channels = [call.iter().map(|s| s * CROSSTALK).collect::<Vec<_>>(), Vec::new()];
    channels[1] = channels[0].clone();
    let mut parties: Vec<String> = Vec::new();
    let mut texts: [Vec<String>; 2] = Default::default();
    for line in stm.lines() {
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        let [_, _, speaker, start, end, text] = fields[..] else { continue };
        let (Ok(start), Ok(end)) = (start.parse::<f64>(), end.parse::<f64>()) else { continue };
        if !parties.iter().any(|p| p == speaker) {
            parties.push(speaker.to_owned());
        }
        let Some(channel) = parties.iter().position(|p| p == speaker).filter(|&c| c < 2) else { continue };
        // STM times are tight around the words: a little more keeps their edges whole.
        let (start, end) = ((start - TURN_PAD).max(0.0), end + TURN_PAD);
        let range = (start * RATE) as usize..((end * RATE) as usize).min(call.len());
        channels[channel][range.clone()].copy_from_slice(&call[range]);
        texts[channel].push(text.trim().to_owned());
    }
    StereoCall { channels, texts: texts.map(|t| t.join(" ")) }
}

/// `samples` without the near-silent stretches at either end (below 1% of full scale, in 10 ms
/// steps), keeping 0.1 s of each.
fn trim_silence(samples: &[f32]) -> Vec<f32> {
    let step = (RATE / 100.0) as usize;
    let loud = |c: &[f32]| c.iter().any(|s| s.abs() > 0.01);
    let first = samples.chunks(step).position(loud).unwrap_or(0) * step;
    let last = samples.chunks(step).rposition(loud).map_or(samples.len(), |c| (c + 1) * step);
    let keep = step * 10;
    samples[first.saturating_sub(keep)..(last + keep).min(samples.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(n: usize, speaker: &str, text: &str) -> Clip {
        Clip { samples: vec![0.1; n], speaker: speaker.into(), text: text.into() }
    }

    #[test]
    fn clips_are_joined_without_pauses_and_every_nth_overlaps() {
        let n = RATE as usize; // 1 s each
        let c = join(&[clip(n, "a", "one"), clip(n, "b", "two"), clip(n, "a", "three")], 3, 0.5);
        let spans: Vec<(f64, f64, &str)> = c.turns.iter().map(|t| (t.start, t.end, t.speaker.as_str())).collect();
        assert_eq!(spans, vec![(0.0, 1.0, "a"), (1.0, 2.0, "b"), (1.5, 2.5, "a")]);
        assert_eq!(c.samples.len(), n * 5 / 2);
        assert!((c.samples[n * 7 / 4] - 0.2).abs() < 1e-6, "both voices where they overlap");
        assert_eq!(c.text, "one two three");
    }

    #[test]
    fn a_stereo_call_puts_each_party_in_its_own_channel() {
        let call = vec![0.5; 4 * 16_000];
        let stm = "f 1 A 0.0 0.8 hello\nf 1 B 1.2 1.8 hi there\nf 1 A 2.2 2.8 bye";
        let c = stereo_call(&call, stm);
        assert_eq!(c.texts, ["hello bye".to_owned(), "hi there".to_owned()]);
        let at = |channel: usize, second: f64| c.channels[channel][(second * RATE) as usize];
        assert_eq!((at(0, 0.5), at(1, 0.5)), (0.5, 0.5 * CROSSTALK), "A speaks: left");
        assert_eq!((at(0, 1.5), at(1, 1.5)), (0.5 * CROSSTALK, 0.5), "B speaks: right");
        assert_eq!(at(0, 3.5), 0.5 * CROSSTALK, "outside every turn both channels only leak");
    }

    #[test]
    fn stm_lines_become_clips() {
        let audio: Vec<f32> = (0..RATE as usize * 3).map(|i| i as f32).collect();
        let stm = "f 1 A 0.5 1.0 hello there\nf 1 B 2.0 2.5 yes\nnot an stm line";
        let clips = clips_from_stm(&audio, stm);
        assert_eq!(clips.len(), 2);
        assert_eq!(
            (clips[0].speaker.as_str(), clips[0].text.as_str(), clips[0].samples.len()),
            ("A", "hello there", 8000)
        );
        assert_eq!(clips[1].samples[0], 32_000.0);
    }
}
