//! Progressive finals: when the start of an open utterance is stable enough to be made final
//! before the speaker pauses.
//!
//! Each partial hypothesis of the open utterance is compared with the one before it; the words
//! both agree on from the start (local agreement, a first word only one of them has aside) are
//! stable, since Whisper rarely changes a word once it has heard what follows. The utterance is
//! then cut at the boundary after the last agreed word that is followed by another word (so the
//! cut falls between words) or by a second of audio with no word in it, and the agreed words are
//! the final of the part before the cut; the rest is decoded with that part in front of it
//! (`continuation.rs`). An utterance open past `max_open` without agreement commits the words of
//! the latest hypothesis that end well before its end, so no word waits on a hypothesis that
//! keeps changing. A last word that two hypotheses in a row write word for word is whole too,
//! however far Whisper's timing stretches it (see [`STILL`]).

use super::continuation::key;
use crate::domain::{seconds, seconds_to_samples as to_samples, Transcript, Word, SAMPLE_RATE};
use crate::speaker::attribution::join_words;

/// Progressive-final settings, in samples.
#[derive(Debug, Clone, Copy)]
pub struct CommitConfig {
    /// A cut leaves at least this much audio (1 s) before it: short clips decode worse.
    pub min_commit: usize,
    /// Words ending this close (0.3 s) to a hypothesis's end may be cut off; they are not
    /// committed yet.
    pub guard: usize,
    /// An open utterance this long (4 s) commits without agreement.
    pub max_open: usize,
    /// Without agreement, only words ending this far (1 s) before the hypothesis's end.
    pub settled: usize,
}

impl Default for CommitConfig {
    fn default() -> Self {
        let sr = SAMPLE_RATE as usize;
        Self { min_commit: sr, guard: sr * 3 / 10, max_open: 4 * sr, settled: sr }
    }
}

/// Where to cut the open utterance: search `lo..hi` (absolute samples) for the quietest frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub lo: usize,
    pub hi: usize,
    /// Words of the hypothesis before the cut.
    pub words: usize,
}

/// A word that starts more than this (0.2 s) before a speaker change's cut and ends after it is
/// taken to belong to the turn before the change.
const STRADDLE: f64 = 0.2;

/// Hypotheses that repeat the one before them word for word (one: two alike; a word spelt one
/// letter differently counts as the same, as in the agreement) after which the last word is
/// taken as whole, ending where the first of them put it. Whisper heard more audio each time
/// and wrote nothing more: the speaker stopped, or went on under a voice or noise it does not
/// write. DTW then stretches that word to the clip's end ("difference.@0.77-1.41",
/// "-2.05", "-2.51" as the clip grew), so it never looks settled, and the words before it,
/// timed early after a long lead-in, end under the second a cut needs: the phone band's
/// slowest stretch waited 3-5 s for the next word. Waiting for a third alike was measured too:
/// it caught a last word Whisper would still mend ("different." came back twice before
/// "difference.") but made the words it freed 0.6 s later (phone-band p95 3.0 s against 2.4 s,
/// the same WER; docs/BENCHMARKS.md).
const STILL: usize = 1;

/// The least a word lasts (0.15 s): where the search for a still word's end begins.
const MIN_WORD: f64 = 0.15;

/// Half the window searched for the gap between two words (0.25 s): Whisper's token times are
/// coarse.
const SEARCH: f64 = 0.25;

#[derive(Debug, Default)]
pub struct CommitPolicy {
    config: CommitConfig,
    /// The last hypothesis: its utterance and its words, normalised.
    previous: Option<(u64, Vec<String>)>,
    /// The newest hypothesis that was not cut, for a cut made elsewhere (`final_at_cut`).
    latest: Option<Latest>,
    /// How the latest hypotheses repeated each other.
    repeats: Option<Repeats>,
}

/// Hypotheses of utterance `id` alike word for word: how many repeated the one before them,
/// and the earliest end (seconds into the clip) any of them gave the last word.
#[derive(Debug)]
struct Repeats {
    id: u64,
    count: usize,
    last_end: f64,
}

/// A hypothesis of an open utterance and how many of its first words an earlier one agrees on.
#[derive(Debug)]
struct Latest {
    id: u64,
    /// The end of the audio it heard (absolute samples).
    end: usize,
    hypothesis: Transcript,
    agreed: usize,
}

/// A hypothesis's words in a clip of `clip` seconds, the last one ending no later than `still`
/// when hypotheses repeated it.
struct Timed<'a> {
    words: &'a [Word],
    still: Option<f64>,
    clip: f64,
}

impl Timed<'_> {
    /// Where word `i` ends.
    fn end(&self, i: usize) -> f64 {
        let end = self.words[i].end;
        match self.still {
            Some(still) if i + 1 == self.words.len() => end.min(still),
            _ => end,
        }
    }

    /// How many first words end at least `margin` samples before the clip's end.
    fn ending_before(&self, margin: usize) -> usize {
        (0..self.words.len()).take_while(|&i| self.end(i) <= self.clip - seconds(margin)).count()
    }

    /// Whether the last word, by the hypothesis's own timing (a still word's earlier end may
    /// itself be stretched), ends `margin` samples before the clip's end.
    fn heard_past(&self, margin: usize) -> bool {
        self.words.last().is_some_and(|w| w.end <= self.clip - seconds(margin))
    }
}

impl CommitPolicy {
    pub fn new(config: CommitConfig) -> Self {
        Self { config, previous: None, latest: None, repeats: None }
    }

    /// Counts `keys` (with its last word ending at `last_end`) as a repeat of the previous
    /// hypothesis or as a new start; an empty hypothesis changes nothing.
    fn note_repeats(&mut self, id: u64, keys: &[String], last_end: Option<f64>) {
        let Some(last_end) = last_end else { return };
        let alike = matches!(&self.previous, Some((p, prev)) if *p == id && prev.len() == keys.len() && agreed_prefix(prev, keys) == keys.len());
        self.repeats = Some(match self.repeats.take() {
            Some(r) if alike && r.id == id => Repeats { id, count: r.count + 1, last_end: r.last_end.min(last_end) },
            _ => Repeats { id, count: 0, last_end },
        });
    }

    /// Where the last word ends when enough hypotheses repeated it to count it whole.
    fn still_end(&self, id: u64) -> Option<f64> {
        self.repeats.as_ref().filter(|r| r.id == id && r.count >= STILL).map(|r| r.last_end)
    }

    /// A hypothesis of utterance `id`, whose audio runs from `start` to `end` (absolute
    /// samples) with its words timed from `start`: where to cut, if anything is stable.
    pub fn offer(&mut self, id: u64, start: usize, end: usize, hypothesis: &Transcript) -> Option<Cut> {
        let agreed = self.remember(id, end, hypothesis);
        let timed = Timed { words: &hypothesis.words, still: self.still_end(id), clip: seconds(end - start) };
        let n = self.stable_words(&timed, agreed)?;
        self.latest = None;
        let (lo, hi) = self.window(&timed, n);
        Some(Cut { lo: start + to_samples(lo), hi: start + to_samples(hi), words: n })
    }

    /// Compares a hypothesis with the ones before it and keeps it for the next: how many of its
    /// first words they agree on.
    fn remember(&mut self, id: u64, end: usize, hypothesis: &Transcript) -> usize {
        let keys: Vec<String> = hypothesis.words.iter().map(|w| key(&w.word)).collect();
        let agreed = match &self.previous {
            Some((prev_id, prev)) if *prev_id == id => agreement(prev, &keys),
            _ => 0,
        };
        self.latest = Some(Latest { id, end, hypothesis: hypothesis.clone(), agreed });
        self.note_repeats(id, &keys, hypothesis.words.last().map(|w| w.end));
        // An empty hypothesis says nothing about the words: the last one still stands.
        if !keys.is_empty() {
            self.previous = Some((id, keys));
        }
        agreed
    }

    /// How many first words of the hypothesis to make final, if any: agreed and clear of the
    /// clip's end, or settled once the utterance has been open `max_open`.
    fn stable_words(&self, timed: &Timed, agreed: usize) -> Option<usize> {
        let mut n = agreed.min(timed.ending_before(self.config.guard));
        if timed.clip >= seconds(self.config.max_open) {
            n = n.max(timed.ending_before(self.config.settled));
        }
        // A cut falls before a next word, or after the last one when Whisper heard a second
        // past it and found nothing more to say (a pause too short to end the utterance, or
        // speech under another voice): then the word is whole. And it needs audio behind it.
        let last_settled = timed.heard_past(self.config.settled) || timed.still.is_some();
        let n = if last_settled { n } else { n.min(timed.words.len().saturating_sub(1)) };
        (n > 0 && to_samples(timed.end(n - 1)) >= self.config.min_commit).then_some(n)
    }

    /// Where to search for the cut after the first `n` words (seconds into the clip): around the
    /// gap before the next word, or just after the last.
    fn window(&self, timed: &Timed, n: usize) -> (f64, f64) {
        let (words, last_end) = (timed.words, timed.end(n - 1));
        let boundary = match words.get(n) {
            Some(next) => (last_end + next.start.max(last_end)) / 2.0,
            None => last_end + SEARCH,
        };
        // A word still after repeats ends anywhere from soon after its start to where the first
        // of them put it (itself stretched, often over the next voice): the quietest frame there,
        // leaving the second of audio a cut needs.
        let lo = match timed.still {
            Some(_) if n == words.len() && !timed.heard_past(self.config.settled) => {
                (words[n - 1].start + MIN_WORD).max(seconds(self.config.min_commit)).min(boundary - SEARCH)
            }
            _ => boundary - SEARCH,
        };
        (lo, boundary + SEARCH)
    }

    /// The final of utterance `id` cut at a speaker change (`start..end`, absolute samples) without
    /// decoding it again: the words of the latest hypothesis that end before the cut, when that
    /// hypothesis heard `guard` past it and an earlier one agrees on all of them. The piece
    /// would otherwise wait for a decode of its own (0.5-1 s on two cores) after the change
    /// was seen. Words whose coarse times put them on the wrong side of the cut are still
    /// sent once: the next utterance hears the piece's end in its lead-in and takes off, by
    /// their text, the words this final holds.
    pub fn final_at_cut(&self, id: u64, start: usize, end: usize) -> Option<Transcript> {
        let latest = self.latest.as_ref().filter(|l| l.id == id && l.end >= end + self.config.guard)?;
        let (cut, words) = (seconds(end - start), &latest.hypothesis.words);
        let before = words.iter().take_while(|w| w.end <= cut).count();
        // Whisper stretches a turn's last word over the next voice ("there.@0.12-2.28" for a
        // cut at 1.25 s): a word that began well before the cut is the piece's, or it is lost
        // (the next turn takes the lead-in's words off its decode).
        let straddles = words.get(before).is_some_and(|w| w.start < cut - STRADDLE);
        let n = before + usize::from(straddles);
        (n > 0 && n <= latest.agreed).then(|| agreed_words(&latest.hypothesis, n, cut))
    }
}

/// The first `n` words of a hypothesis as a transcript of its own, none past `clip_end` seconds.
pub fn agreed_words(hypothesis: &Transcript, n: usize, clip_end: f64) -> Transcript {
    let clamp = |w: &Word| Word { start: w.start.min(clip_end), end: w.end.min(clip_end), ..w.clone() };
    let words: Vec<_> = hypothesis.words[..n].iter().map(clamp).collect();
    let text = join_words(&words);
    Transcript { text, words, language: hypothesis.language.clone(), quality: hypothesis.quality }
}

/// How many of `current`'s first words the previous hypothesis agrees on. A word one of them has
/// first and the other lacks (a continuation's first word is where a decode with a lead-in is
/// least sure: "Hi, Sheila and" / "Sheila and") does not end the agreement: it is counted, as
/// the newer hypothesis has it or not.
fn agreement(previous: &[String], current: &[String]) -> usize {
    let exact = agreed_prefix(previous, current);
    let extra_now = current.get(1..).map_or(0, |rest| agreed_prefix(previous, rest));
    let extra_before = previous.get(1..).map_or(0, |rest| agreed_prefix(rest, current));
    if exact == 0 && extra_now > 0 {
        extra_now + 1
    } else {
        exact.max(extra_before)
    }
}

/// How many of `current`'s first words agree with `previous`'s, word by word.
fn agreed_prefix(previous: &[String], current: &[String]) -> usize {
    previous.iter().zip(current).take_while(|(p, c)| same_word(p, c)).count()
}

/// The same word, or the same sound spelt another way as Whisper hears more of it ("yankie" /
/// "yankee", "diana" / "diane"): words of four letters or more one letter apart. Without this,
/// hypotheses that flip between two spellings agree on nothing after them, and the words wait
/// for a pause or a cut (3.8 s on the phone band for "call me a Yankee down"). The newer
/// spelling is the one made final.
fn same_word(a: &str, b: &str) -> bool {
    a == b || (a.chars().count().min(b.chars().count()) >= 4 && one_edit_apart(a, b))
}

/// Whether one substitution, insertion or deletion turns `a` into `b`.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let head = short.iter().zip(long.iter()).take_while(|(x, y)| x == y).count();
    let skip = if short.len() == long.len() { 1 } else { 0 };
    short[(head + skip).min(short.len())..] == long[(head + 1).min(long.len())..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, step: f64) -> Transcript {
        let at = |i: usize| i as f64 * step;
        let to_word = |(i, w): (usize, &str)| Word { word: w.into(), start: at(i), end: at(i + 1), probability: 0.9 };
        let words: Vec<Word> = text.split(' ').enumerate().map(to_word).collect();
        Transcript { text: join_words(&words), words, ..Default::default() }
    }

    const SR: usize = SAMPLE_RATE as usize;

    #[test]
    fn words_two_hypotheses_agree_on_are_cut_after() {
        let mut policy = CommitPolicy::default();
        assert_eq!(policy.offer(0, 0, 2 * SR, &words("and so my fellow", 0.4)), None, "nothing to agree with");
        let cut = policy.offer(0, 0, 3 * SR, &words("And so, my fellow Americans ask", 0.4)).expect("agreed");
        // "and so my fellow" agree; a cut needs 1 s behind it: after "fellow" (1.6 s).
        assert_eq!(cut.words, 4);
        assert_eq!((cut.lo, cut.hi), (SR * 135 / 100, SR * 185 / 100));
    }

    #[test]
    fn a_first_word_one_hypothesis_lacks_does_not_end_the_agreement() {
        let keys = |text: &str| text.split(' ').map(key).collect::<Vec<_>>();
        let (with_hi, without) = (keys("Hi, Sheila and Texas"), keys("Sheila and Texas originally"));
        assert_eq!(agreement(&without, &with_hi), 4, "the newer hypothesis's extra first word is counted");
        assert_eq!(agreement(&with_hi, &without), 3);
        assert_eq!(agreement(&keys("and so my"), &keys("and so my fellow")), 3);
        assert_eq!(agreement(&keys("ask not what"), &keys("and so my")), 0);
        let mut policy = CommitPolicy::default();
        policy.offer(0, 0, 3 * SR, &words("hi sheila and texas originally from", 0.4));
        assert_eq!(policy.offer(0, 0, 3 * SR, &Transcript::default()), None);
        let cut = policy.offer(0, 0, 3 * SR, &words("sheila and texas originally from chicago", 0.4));
        assert_eq!(cut.map(|c| c.words), Some(5), "an empty hypothesis between them changes nothing");
    }

    #[test]
    fn the_last_word_is_cut_after_once_a_second_was_heard_past_it() {
        let mut policy = CommitPolicy::default();
        // "a yankee down here" ends at 1.6 s; with the clip at 2.5 s (0.9 s past it) the cut
        // falls before "here", the last word.
        policy.offer(0, 0, SR * 2, &words("a yankee down", 0.4));
        assert_eq!(policy.offer(0, 0, SR * 25 / 10, &words("a yankee down here", 0.4)).map(|c| c.words), Some(3));
        let cut = policy.offer(0, 0, SR * 27 / 10, &words("a yankee down here", 0.4)).expect("1.1 s past it");
        assert_eq!(cut.words, 4);
        assert_eq!((cut.lo, cut.hi), (SR * 16 / 10, SR * 21 / 10), "searched after the word, not before it");
    }

    #[test]
    fn nothing_is_cut_without_a_next_word_or_enough_audio() {
        let mut policy = CommitPolicy::default();
        policy.offer(0, 0, 2 * SR, &words("hello there", 0.4));
        assert_eq!(policy.offer(0, 0, 2 * SR, &words("hello there", 0.4)), None, "too short and no next word");
        policy.offer(1, 0, 3 * SR, &words("one two three four", 0.5));
        assert_eq!(policy.offer(2, 0, 3 * SR, &words("one two three four", 0.5)), None, "another utterance");
    }

    #[test]
    fn words_near_the_end_wait_and_a_long_utterance_commits_without_agreement() {
        let mut policy = CommitPolicy::default();
        policy.offer(0, 0, SR * 21 / 10, &words("a b c d e f g", 0.3));
        // All agree, but "g" ends at 2.1 s, within the guard of the clip's end: up to "f".
        let cut = policy.offer(0, 0, SR * 21 / 10, &words("a b c d e f g", 0.3)).unwrap();
        assert_eq!(cut.words, 6);
        let mut policy = CommitPolicy::default();
        let long = words("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10", 0.45);
        assert_eq!(policy.offer(0, 0, SR * 45 / 10, &long).map(|c| c.words), Some(7), "ending 1 s before 4.5 s");
    }

    #[test]
    fn a_word_spelt_another_way_does_not_end_the_agreement() {
        let keys = |text: &str| text.split(' ').map(key).collect::<Vec<_>>();
        let before = keys("call me a yankie down here so");
        assert_eq!(agreement(&before, &keys("call me a Yankee down here")), 6);
        assert_eq!(agreement(&keys("this is diane in"), &keys("this is Diana in New")), 4);
        assert_eq!(agreement(&keys("i heard a beat and"), &keys("i heard a beep and so")), 3, "two letters apart");
        // Short words must match exactly; so must words two letters apart.
        assert_eq!(agreement(&keys("ask not what"), &keys("ask now what")), 1);
        assert_eq!(agreement(&keys("there isn't"), &keys("their isn't")), 0);
    }

    #[test]
    fn a_piece_cut_at_a_speaker_change_takes_the_agreed_words_before_it() {
        let mut policy = CommitPolicy::default();
        // Words of 0.15 s in a clip of 1.5 s (1 s to 2.5 s): too short for a progressive cut.
        let (before, now) = (words("you were there hi sheila", 0.15), words("you were there hi sheila and", 0.15));
        let (start, end) = (SR, SR * 5 / 2);
        assert_eq!(policy.final_at_cut(0, start, SR * 3 / 2), None, "nothing heard yet");
        assert_eq!(policy.offer(0, start, end, &before), None);
        assert_eq!(policy.final_at_cut(0, start, SR * 3 / 2), None, "no earlier hypothesis agrees");
        assert_eq!(policy.offer(0, start, end, &now), None);
        // The change 0.5 s into the clip: "you were there" (ending at 0.45 s) is the piece.
        let piece = policy.final_at_cut(0, start, SR * 3 / 2).expect("agreed words before the cut");
        assert_eq!(piece.text.trim(), "you were there");
        assert_eq!(policy.final_at_cut(1, start, SR * 3 / 2), None, "another utterance");
        // A word that began over 0.2 s before the cut is the piece's, however far its end runs.
        let mut stretched = words("you were there", 0.15);
        stretched.words[2].end = 1.4;
        policy.offer(0, start, end, &stretched);
        policy.offer(0, start, end, &stretched);
        let piece = policy.final_at_cut(0, start, SR * 3 / 2 + SR / 20).expect("agreed words before the cut");
        assert_eq!(piece.text.trim(), "you were there", "{piece:?}");
        assert_eq!(piece.words[2].end, 0.55, "within the piece: {piece:?}");
        let near = policy.final_at_cut(0, start, SR * 3 / 2 - SR / 20);
        assert_eq!(near.map(|t| t.words.len()), Some(2), "a word that began near the cut is the next turn's");
        assert_eq!(policy.final_at_cut(0, start, SR * 23 / 10), None, "the hypothesis heard too little past the cut");
        policy.offer(0, start, end, &words("you are there hi sheila and", 0.15));
        policy.offer(0, start, end, &words("you were they", 0.15));
        assert_eq!(policy.final_at_cut(0, start, SR * 3 / 2), None, "only the first of the three words agreed");
    }

    #[test]
    fn a_last_word_two_hypotheses_repeat_is_whole_however_far_it_is_stretched() {
        // Words timed early after a long lead-in, the last one stretched to each clip's end.
        let heard = |text: &str, clip: f64| {
            let mut t = words(text, 0.15);
            t.words.last_mut().unwrap().end = clip - 0.03;
            (SR * (clip * 100.0) as usize / 100, t)
        };
        let mut policy = CommitPolicy::default();
        for (clip, text) in
            [(1.08, "but there isn't that much different"), (1.44, "but there isn't that much difference")]
        {
            let (end, t) = heard(text, clip);
            assert_eq!(policy.offer(0, 0, end, &t), None, "{text}: no word after, the rest too early");
        }
        let (end, t) = heard("but there isn't that much difference", 2.08);
        let cut = policy.offer(0, 0, end, &t).expect("two alike");
        assert_eq!(cut.words, 6);
        // Its end is where the first of the two put it (1.41 s); the search starts a second in.
        assert_eq!((cut.lo, cut.hi), (SR, SR * 191 / 100));
        let (end, t) = heard("but there isn't that much difference", 3.0);
        assert_eq!(policy.offer(1, 0, end, &t), None, "another utterance starts counting again");
    }

    #[test]
    fn one_edit_apart_counts_substitutions_insertions_and_deletions() {
        assert!(one_edit_apart("yankee", "yankie"));
        assert!(one_edit_apart("diane", "diana"));
        assert!(one_edit_apart("fellow", "fellows"));
        assert!(one_edit_apart("fellows", "fellow"));
        assert!(one_edit_apart("chicago", "chcago"));
        assert!(!one_edit_apart("beat", "best!"));
        assert!(!one_edit_apart("there", "their"));
        assert!(!one_edit_apart("abc", "abcde"));
    }
}
