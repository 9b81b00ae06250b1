//! Configuration files: parsed, validated and shown (with secrets redacted) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::config::{load, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = toml::from_str::<Config>(text) else { return };
    if config.validate().is_ok() {
        let shown = load::show(&config);
        let again: Config = toml::from_str(&shown).expect("a shown configuration parses again");
        assert_eq!(again.server, config.server, "showing keeps the settings (secrets aside)");
    }
});
