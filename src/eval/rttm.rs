//! RTTM files: one `SPEAKER` line per speaker turn.

use std::fmt::Write;

/// A speaker turn in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

/// Parses the `SPEAKER` lines of an RTTM file; other lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Turn>, String> {
    let mut turns = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        let bad = || format!("line {}: expected `SPEAKER file channel start duration <NA> <NA> speaker ...`", n + 1);
        if fields.len() < 8 {
            return Err(bad());
        }
        let start: f64 = fields[3].parse().map_err(|_| bad())?;
        let duration: f64 = fields[4].parse().map_err(|_| bad())?;
        turns.push(Turn { start, end: start + duration, speaker: fields[7].to_owned() });
    }
    Ok(turns)
}

/// Writes turns as RTTM lines for recording `file`.
pub fn write(file: &str, turns: &[Turn]) -> String {
    let mut out = String::new();
    for t in turns {
        let _ =
            writeln!(out, "SPEAKER {file} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>", t.start, t.end - t.start, t.speaker);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let turns = vec![Turn { start: 1.5, end: 2.25, speaker: "S1".into() }];
        let text = write("rec", &turns);
        assert_eq!(text, "SPEAKER rec 1 1.500 0.750 <NA> <NA> S1 <NA> <NA>\n");
        assert_eq!(parse(&text).unwrap(), turns);
        assert!(parse("SPEAKER rec 1 x 1 <NA> <NA> S1").unwrap_err().contains("line 1"));
    }
}
