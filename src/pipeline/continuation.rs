//! Decoding the rest of an utterance whose start is already final (progressive finals).
//!
//! A clip that starts mid-sentence decodes badly: Whisper drops or garbles its first words. So
//! the rest of a cut utterance is decoded with the audio before the cut in front of it (its
//! lead-in), and the words already sent as finals are then taken off the front of the
//! hypothesis. Which words those are is decided by the text, not by the times: Whisper's token
//! times are off by a word or so, and a word split by time is lost or sent twice, where the
//! text says exactly where the committed words stop.

use crate::domain::{Transcript, Word};
use crate::speaker::attribution::join_words;

/// What the decode of a continuation heard before its utterance: `lead_in` seconds of audio,
/// holding (the end of) the words already final, normalised (`key`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadIn {
    pub seconds: f64,
    pub committed: Vec<String>,
}

/// A word as hypotheses are compared: lower case, without punctuation.
pub fn key(word: &str) -> String {
    word.chars().filter(|c| c.is_alphanumeric() || *c == '\'').flat_map(char::to_lowercase).collect()
}

/// The hypothesis of a clip that began with `lead_in`, less the words already final, timed from
/// the utterance's start.
pub fn strip_committed(t: Transcript, lead_in: &LeadIn) -> Transcript {
    if lead_in.seconds == 0.0 {
        return t;
    }
    let keys: Vec<String> = t.words.iter().map(|w| key(&w.word)).collect();
    let in_lead_in = t.words.iter().take_while(|w| w.middle() < lead_in.seconds).count();
    let skip = words_heard_in_lead_in(&lead_in.committed, &keys, in_lead_in)
        .unwrap_or_else(|| skipped_by_times(&lead_in.committed, &keys[..in_lead_in]));
    tracing::debug!(heard = %t.text, committed = ?lead_in.committed, skip, lead_in = lead_in.seconds, "a continuation's decode");
    let shift =
        |w: Word| Word { start: (w.start - lead_in.seconds).max(0.0), end: (w.end - lead_in.seconds).max(0.0), ..w };
    let words: Vec<Word> = t.words.into_iter().skip(skip).map(shift).collect();
    Transcript { text: join_words(&words), words, ..t }
}

/// When the text does not line up, how many of the words the times put in the lead-in are
/// taken off: all of them, unless final words are known there and the decode wrote none of
/// them; then the words it wrote there are not those but words no final holds, said before the
/// cut, and all are kept. So it goes at a speaker change found late in an overlap: the cut
/// falls 0.3 s into the new voice ("Well, there" under "now, though"), the piece before it is
/// decoded as the old voice's ("I'm in New Jersey now."), and the new speaker's decode writes
/// only the new voice ("There isn't that much difference."): taking its lead-in's words off by
/// their times lost "there" in every such run.
fn skipped_by_times(committed: &[String], in_lead_in: &[String]) -> usize {
    let none_heard_again = !committed.is_empty() && in_lead_in.iter().all(|k| !committed.contains(k));
    if none_heard_again {
        0
    } else {
        in_lead_in.len()
    }
}

/// How the words sent early line up with the start of one part of a final: `(sent, heard)`,
/// the number of sent words the part covers and the number of the part's first words that are
/// those. Either side may run out first: a part shorter than what was sent (a speaker's part
/// ends inside it) covers only a prefix of the sent words, and a part that goes on past them
/// holds new words after `heard`. The pair is the end of the cheapest alignment (insertions,
/// deletions and substitutions cost one each) that uses up one side or the other, the longer one
/// on a tie: a word sent twice reads worse than one lost. Never by counting words, which lets
/// extra words heard at a part's start ("Hello. Oh hello." before the sent "I didn't know")
/// push sent words out of line and send them again.
pub fn sent_overlap(sent: &[String], part: &[String]) -> (usize, usize) {
    let mut row: Vec<usize> = (0..=part.len()).collect();
    // (cost, sent words, part words) of the best end found so far; the empty alignment first.
    let mut best = (part.len(), 0, part.len());
    for (i, s) in sent.iter().enumerate() {
        let mut next = vec![i + 1; part.len() + 1];
        for (j, p) in part.iter().enumerate() {
            let diagonal = row[j] + usize::from(s != p);
            next[j + 1] = diagonal.min(row[j + 1] + 1).min(next[j] + 1);
        }
        row = next;
        best = better(best, (row[part.len()], i + 1, part.len()));
    }
    for (j, &cost) in row.iter().enumerate() {
        best = better(best, (cost, sent.len(), j));
    }
    (best.1, best.2)
}

/// The cheaper alignment end, or on a tie the one that covers more words.
fn better(a: (usize, usize, usize), b: (usize, usize, usize)) -> (usize, usize, usize) {
    let longer = |x: (usize, usize, usize)| x.1 + x.2;
    if b.0 < a.0 || (b.0 == a.0 && longer(b) >= longer(a)) {
        b
    } else {
        a
    }
}

/// How many of a continuation's first words were heard in its lead-in: the committed words
/// heard again, the prefix whose edit distance to `committed` is least (the longer one on a
/// tie: a word sent twice reads worse than one lost at a cut), except that the hypothesis may
/// begin with words that are not among them, if their times put them in the lead-in (the first
/// `in_lead_in` words; none may be skipped when it is 0): a committed word Whisper did not hear
/// again must not be matched with the same word said after the lead-in. The lead-in reaches
/// back a fixed time, past the committed words when a cut was made on hypotheses that missed some words there ("I thought you know" in an
/// overlap, heard only later): those words lie before words already final, so they are
/// dropped with the lead-in rather than sent out of order, and the committed words after them
/// still say where the continuation begins. Without this the text did not line up, times
/// decided, and they took a word the cut's audio held but its final did not ("my" in "And so
/// my fellow"). A word skipped at the front costs half an edit: the match after it must be
/// better by more than that, so a continuation that simply repeats the committed words is
/// read as before. `None` when no match differs in at most half the committed words.
pub fn words_heard_in_lead_in(committed: &[String], hypothesis: &[String], in_lead_in: usize) -> Option<usize> {
    if committed.is_empty() {
        return None;
    }
    // Costs in half edits: (total, edits) of committed[..i] against hypothesis words up to j,
    // words skipped at the front costing 1 each (as many as the lead-in holds), edits 2.
    let edit = |(total, edits): (usize, usize)| (total + 2, edits + 1);
    let front = |j: usize| if j <= in_lead_in { (j, 0) } else { (2 * j - in_lead_in, j - in_lead_in) };
    let mut row: Vec<(usize, usize)> = (0..=hypothesis.len()).map(front).collect();
    for (i, c) in committed.iter().enumerate() {
        let mut next = vec![(2 * (i + 1), i + 1); hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let diagonal = if c == h { row[j] } else { edit(row[j]) };
            next[j + 1] = diagonal.min(edit(row[j + 1])).min(edit(next[j]));
        }
        row = next;
    }
    let acceptable = |&(_, (_, edits)): &(usize, &(usize, usize))| edits * 2 <= committed.len();
    let best = row.iter().enumerate().filter(acceptable).map(|(_, (total, _))| *total).min()?;
    row.iter().enumerate().filter(acceptable).filter(|(_, (total, _))| *total == best).map(|(j, _)| j).next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        text.split(' ').map(key).collect()
    }

    fn transcript(text: &str, step: f64) -> Transcript {
        let at = |i: usize| i as f64 * step;
        let words: Vec<Word> = text
            .split(' ')
            .enumerate()
            .map(|(i, w)| Word { word: w.to_owned(), start: at(i), end: at(i + 1), probability: 0.9 })
            .collect();
        Transcript { text: join_words(&words), words, ..Default::default() }
    }

    #[test]
    fn the_committed_words_are_found_by_their_text() {
        let committed_prefix =
            |committed: &[String], hypothesis: &[String]| words_heard_in_lead_in(committed, hypothesis, 0);
        assert_eq!(committed_prefix(&keys("and so my fellow"), &keys("And so, my fellow Americans ask")), Some(4));
        // A word heard differently the second time still lines up.
        assert_eq!(committed_prefix(&keys("and so my fellow"), &keys("and so my follow americans")), Some(4));
        // The lead-in's front cut a committed word off.
        assert_eq!(committed_prefix(&keys("and so my fellow"), &keys("so my fellow americans")), Some(3));
        assert_eq!(committed_prefix(&keys("and so my fellow"), &keys("ask not what your")), None);
        assert_eq!(committed_prefix(&[], &keys("ask not")), None);
    }

    #[test]
    fn sent_words_line_up_with_a_part_that_ends_first_or_goes_on() {
        let overlap = |sent: &str, part: &str| sent_overlap(&keys(sent), &keys(part));
        assert_eq!(overlap("and so my", "And so, my fellow Americans."), (3, 3));
        assert_eq!(overlap("so we went home", "So we"), (2, 2), "the part ends inside what was sent");
        assert_eq!(overlap("went home", "went home today."), (2, 2));
        // The OpenAI SDK test's failing run: the final heard "Hello. Oh hello." before the sent
        // words, in a part that ends before them.
        let sent = "I didn't know you were there. I need to design.";
        assert_eq!(overlap(sent, "Hello. Oh hello. I didn't know you were"), (5, 8));
        assert_eq!(overlap("hello", "Hello. Oh hello. I didn't"), (1, 1), "the first match, not a later one");
        assert_eq!(overlap("a b", "a c d"), (2, 2), "a word heard otherwise is still the sent one");
        assert_eq!(overlap("a b c", "x y z w"), (3, 3), "nothing lines up: the sent words are taken as said");
        assert_eq!(sent_overlap(&[], &keys("a b")), (0, 0));
        assert_eq!(sent_overlap(&keys("a b"), &[]), (0, 0));
    }

    #[test]
    fn words_heard_before_the_committed_ones_are_skipped_with_the_lead_in() {
        let heard = |committed: &str, hypothesis: &str| words_heard_in_lead_in(&keys(committed), &keys(hypothesis), 5);
        // The phone-band conversation: "I thought you know" was missed by the cut before, and
        // the lead-in reaches back over it.
        let hypothesis = "i thought you know i heard a beat and so my fellow america";
        assert_eq!(heard("heard a beat and so", hypothesis), Some(10), "the rest is 'my fellow america'");
        assert_eq!(heard("heard a", "I thought you know I heard of beat and so much and so"), Some(7));
        // "Chicago." ended the turn before; the lead-in (0.64 s) holds no word by the times, so
        // the later "Chicago" is not it.
        let later = keys("Oh, I'm originally from Chicago");
        assert_eq!(words_heard_in_lead_in(&keys("chicago"), &later, 0), None);
        assert_eq!(
            words_heard_in_lead_in(&keys("heard a beat and so"), &keys(hypothesis), 0),
            None,
            "with no lead-in, no word may be skipped at the front"
        );
        // What is found with no lead-in is found with one too.
        assert_eq!(heard("and so my fellow", "And so, my fellow Americans ask"), Some(4));
        assert_eq!(heard("and so my fellow", "so my fellow americans"), Some(3));
        assert_eq!(heard("and so my fellow", "and so my follow americans"), Some(4));
        assert_eq!(heard("hello", "hello hello oh hello i didn't"), Some(1), "the first match, not a later one");
        assert_eq!(heard("you", "what you can do for you"), Some(2));
        assert_eq!(heard("and so my fellow", "ask not what your"), None);
        assert_eq!(heard("", "ask not"), None);
    }

    #[test]
    fn a_continuation_keeps_only_its_own_words_timed_from_its_start() {
        let lead_in = LeadIn { seconds: 1.0, committed: keys("and so my") };
        // Times say "my" (0.6-0.9 s) is the lead-in's last word, but so is "fellow" by the text.
        let t = transcript("and so my fellow americans", 0.3);
        let rest = strip_committed(t, &LeadIn { committed: keys("and so my fellow"), ..lead_in.clone() });
        assert_eq!(rest.text.trim(), "americans");
        assert!((rest.words[0].start - 0.2).abs() < 1e-9, "{:?}", rest.words[0]);
        // Text that does not line up (a final word heard again, the others not) falls back to
        // the times.
        let rest = strip_committed(transcript("ask so what your country", 0.3), &lead_in);
        assert_eq!(rest.text.trim(), "your country");
        let rest =
            strip_committed(transcript("ask not what your country", 0.3), &LeadIn { seconds: 1.0, committed: vec![] });
        assert_eq!(rest.text.trim(), "your country", "no final known: the lead-in's words by their times");
        // The piece before a speaker change wrote only the old voice's words: the new voice's,
        // though in the lead-in, are no final's, and kept.
        let new_voice = LeadIn { seconds: 1.0, committed: keys("in new jersey now") };
        let rest = strip_committed(transcript("there isn't that much", 0.3), &new_voice);
        assert_eq!(rest.text.trim(), "there isn't that much");
        let untouched = strip_committed(transcript("ask not", 0.3), &LeadIn::default());
        assert_eq!(untouched.text.trim(), "ask not");
    }
}
