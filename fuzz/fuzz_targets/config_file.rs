//! Configuration files: parsed, validated and shown (with secrets redacted) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::config::{load, Config};

/// toml's string writer (toml_write 0.1, and toml_writer 1.1 after it) counts a run of one
/// quote character in a `u8`: a value with 256 or more `'` or `"` in a row overflows it, which
/// panics in this debug-assertion build only (in a release build, the one users run, the count
/// wraps but the longest run seen stays at 255, and the string is written correctly: checked
/// with 255 to 1000 of each). Such values are left out rather than reported as ours.
fn has_writer_overflow(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => longest_quote_run(s) > 255,
        serde_json::Value::Array(items) => items.iter().any(has_writer_overflow),
        serde_json::Value::Object(fields) => fields.values().any(has_writer_overflow),
        _ => false,
    }
}

fn longest_quote_run(s: &str) -> usize {
    let run = |quote: char| s.split(|c| c != quote).map(str::len).max().unwrap_or(0);
    run('\'').max(run('"'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<Config>(text) else { return };
    if config.validate().is_err() {
        return;
    }
    let as_json = serde_json::to_value(&config).expect("the configuration serialises");
    if !has_writer_overflow(&as_json) {
        let shown = load::show(&config);
        let again: Config = toml::from_str(&shown).expect("a shown configuration parses again");
        assert_eq!(again.server, config.server, "showing keeps the settings (secrets aside)");
    }
});
