//! Word error rate after Whisper-style English normalisation.

/// Hesitations Whisper's normaliser drops.
const FILLERS: &[&str] = &["hmm", "mm", "mhm", "mmm", "uh", "um", "uhm", "ah"];

/// Lower-cases, removes bracketed asides, fillers and punctuation (keeping apostrophes inside
/// words), and splits into words.
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut cleaned = String::with_capacity(lower.len());
    let mut depth = 0usize;
    let chars: Vec<char> = lower.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '[' | '(' | '<' => depth += 1,
            ']' | ')' | '>' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '\'' => {
                let inside = |j: Option<&char>| j.is_some_and(|c| c.is_alphanumeric());
                let keep = i > 0 && inside(chars.get(i - 1)) && inside(chars.get(i + 1));
                cleaned.push(if keep { '\'' } else { ' ' });
            }
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    cleaned.split_whitespace().filter(|w| !FILLERS.contains(w)).map(str::to_owned).collect()
}

/// Edit counts between a reference and a hypothesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WerCounts {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    pub reference_words: usize,
}

impl WerCounts {
    pub fn wer(&self) -> f64 {
        let errors = self.substitutions + self.deletions + self.insertions;
        if self.reference_words == 0 {
            return if errors == 0 { 0.0 } else { 1.0 };
        }
        errors as f64 / self.reference_words as f64
    }
}

/// Minimum-edit alignment of word sequences, counting each kind of error.
pub fn align(reference: &[String], hypothesis: &[String]) -> WerCounts {
    let (n, m) = (reference.len(), hypothesis.len());
    // cost[i][j] = (edits, subs, dels, ins) aligning reference[..i] with hypothesis[..j].
    let mut prev: Vec<(usize, WerCounts)> =
        (0..=m).map(|j| (j, WerCounts { insertions: j, ..Default::default() })).collect();
    for i in 1..=n {
        let mut row = Vec::with_capacity(m + 1);
        row.push((i, WerCounts { deletions: i, ..Default::default() }));
        for j in 1..=m {
            let same = reference[i - 1] == hypothesis[j - 1];
            let diag = {
                let (c, mut w) = prev[j - 1];
                w.substitutions += usize::from(!same);
                (c + usize::from(!same), w)
            };
            let del = {
                let (c, mut w) = prev[j];
                w.deletions += 1;
                (c + 1, w)
            };
            let ins = {
                let (c, mut w) = row[j - 1];
                w.insertions += 1;
                (c + 1, w)
            };
            row.push([diag, del, ins].into_iter().min_by_key(|(c, _)| *c).expect("three candidates"));
        }
        prev = row;
    }
    WerCounts { reference_words: n, ..prev[m].1 }
}

/// Word error rate of `hypothesis` against `reference`, both normalised first.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> WerCounts {
    align(&normalize(reference), &normalize(hypothesis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_case_punctuation_fillers_and_asides() {
        assert_eq!(
            normalize("Um, And so — my fellow Americans [applause]: ask NOT!"),
            ["and", "so", "my", "fellow", "americans", "ask", "not"]
        );
        assert_eq!(normalize("I didn't know 'you' were there."), ["i", "didn't", "know", "you", "were", "there"]);
    }

    #[test]
    fn known_edit_counts() {
        let c = word_error_rate("the cat sat on the mat", "the cat sit on the mat today");
        assert_eq!((c.substitutions, c.deletions, c.insertions, c.reference_words), (1, 0, 1, 6));
        assert!((c.wer() - 2.0 / 6.0).abs() < 1e-9);
        let c = word_error_rate("one two three four", "one three four");
        assert_eq!((c.substitutions, c.deletions, c.insertions), (0, 1, 0));
        assert_eq!(word_error_rate("Hello, world.", "hello world").wer(), 0.0);
        assert_eq!(word_error_rate("", "").wer(), 0.0);
        assert_eq!(word_error_rate("a b", "").deletions, 2);
    }
}
