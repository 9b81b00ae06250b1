//! Reference transcripts of the test recordings (docs/MODELS.md).

use std::path::Path;

/// What JFK says in jfk.wav.
pub const JFK_TEXT: &str =
    "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";

/// The text of an STM reference file, its utterances in order.
pub fn stm_text(path: &Path) -> std::io::Result<String> {
    let stm = std::fs::read_to_string(path)?;
    Ok(stm.lines().filter_map(|l| l.splitn(6, ' ').nth(5)).collect::<Vec<_>>().join(" "))
}
