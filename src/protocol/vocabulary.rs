//! A stream's vocabulary: key terms (names, product words, jargon) that the recogniser favours
//! token by token (`engine::bias`), and a free-text prompt it is given as context for each
//! utterance (Whisper's initial prompt). Set when a stream opens and replaced mid-stream;
//! bounded, so one client cannot make every decode slow.

use serde::{Deserialize, Serialize};

use super::error::ParamError;

/// The most key terms a stream may have.
pub const MAX_KEYTERMS: usize = 50;
/// The longest key term, in characters.
pub const MAX_KEYTERM_CHARS: usize = 64;
/// The longest prompt, in characters (Whisper reads at most 224 tokens of context; a longer
/// prompt is cut from its start by the recogniser).
pub const MAX_PROMPT_CHARS: usize = 800;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyterms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl Vocabulary {
    /// Checks the bounds; the message names what is wrong.
    pub fn checked(keyterms: Vec<String>, prompt: Option<String>) -> Result<Self, ParamError> {
        let keyterms: Vec<String> =
            keyterms.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        if keyterms.len() > MAX_KEYTERMS {
            return Err(ParamError(format!("keyterm: at most {MAX_KEYTERMS} terms, got {}", keyterms.len())));
        }
        if let Some(long) = keyterms.iter().find(|t| t.chars().count() > MAX_KEYTERM_CHARS) {
            return Err(ParamError(format!("keyterm: `{long}` is longer than {MAX_KEYTERM_CHARS} characters")));
        }
        let prompt = prompt.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty());
        if prompt.as_ref().is_some_and(|p| p.chars().count() > MAX_PROMPT_CHARS) {
            return Err(ParamError(format!("prompt: longer than {MAX_PROMPT_CHARS} characters")));
        }
        Ok(Self { keyterms, prompt })
    }
}

/// The end of a file request's prompt that the recogniser is given: its last `MAX_PROMPT_CHARS`
/// characters, from a word's start. OpenAI's file API takes a prompt of any length and reads
/// only its last 224 tokens, so clients send whole earlier transcripts; refusing them would
/// break those clients, and passing them whole made every decode tokenise all of it (a 220 KB
/// prompt added 1.6 s to an 11 s file). `None` for a blank prompt.
pub fn prompt_tail(prompt: &str) -> Option<String> {
    let prompt = prompt.trim();
    let chars = prompt.chars().count();
    if chars <= MAX_PROMPT_CHARS {
        return Some(prompt.to_owned()).filter(|p| !p.is_empty());
    }
    let tail: String = prompt.chars().skip(chars - MAX_PROMPT_CHARS).collect();
    // A word cut in two would be read as another word: start after the first space.
    let from_a_word = tail.split_once(char::is_whitespace).map_or(tail.as_str(), |(_, rest)| rest);
    Some(from_a_word.trim_start().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_and_prompt_are_trimmed_and_empty_ones_dropped() {
        let v = Vocabulary::checked(vec![" Kubernetes ".into(), "".into(), "Ada Lovelace".into()], Some(" ".into()));
        let v = v.unwrap();
        assert_eq!(v.keyterms, ["Kubernetes", "Ada Lovelace"]);
        assert_eq!(v.prompt, None);
    }

    #[test]
    fn bounds_are_named() {
        let many = vec!["x".to_owned(); MAX_KEYTERMS + 1];
        assert!(Vocabulary::checked(many, None).unwrap_err().0.contains("at most 50"));
        let long = vec!["y".repeat(MAX_KEYTERM_CHARS + 1)];
        assert!(Vocabulary::checked(long, None).unwrap_err().0.contains("longer than 64"));
        assert!(Vocabulary::checked(vec![], Some("z".repeat(801))).unwrap_err().0.starts_with("prompt"));
    }

    #[test]
    fn a_file_prompt_keeps_its_last_words() {
        assert_eq!(prompt_tail("  Ada Lovelace "), Some("Ada Lovelace".to_owned()));
        assert_eq!(prompt_tail(" "), None);
        let long = "one two three ".repeat(100);
        let tail = prompt_tail(&long).unwrap();
        assert!(tail.chars().count() <= MAX_PROMPT_CHARS && tail.len() > MAX_PROMPT_CHARS - 10, "{tail}");
        let first = tail.split(' ').next().unwrap();
        assert!(long.trim_end().ends_with(&tail) && ["one", "two", "three"].contains(&first), "whole words: {tail}");
        let exact = "é".repeat(MAX_PROMPT_CHARS);
        assert_eq!(prompt_tail(&exact).as_deref(), Some(exact.as_str()), "characters, not bytes");
    }
}
