//! RTTM parsing, and writing back what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::eval::rttm;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(turns) = rttm::parse(text) else { return };
    // What we write, we read back the same (finite times only: NaN never equals itself).
    if turns.iter().all(|t| t.start.is_finite() && t.end.is_finite()) {
        let again = rttm::parse(&rttm::write("fuzz", &turns)).expect("our own RTTM parses");
        assert_eq!(again.len(), turns.len());
    }
});
