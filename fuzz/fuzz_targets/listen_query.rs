//! `GET /v1/listen` query strings, as the server parses them before upgrading: ours, or
//! Deepgram's when the query is Deepgram's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use speech_service::protocol::vocabulary::{MAX_KEYTERMS, MAX_KEYTERM_CHARS};
use speech_service::protocol::{deepgram, Abilities, ListenParams, ENDPOINTING_MS, SPEAKER_LIMIT};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, query)) = data.split_first() else { return };
    // Percent-decoded pairs in order, repeats kept, as the server reads them.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query).into_owned().collect();
    let abilities = Abilities {
        multilingual: flags & 1 != 0,
        diarization: flags & 2 != 0,
        // The real lookup (whisper.cpp's table), which sees every `language` a client sends.
        is_language: speech_service::engine::whisper::is_language,
        max_channels: 8,
    };
    let parsed = if deepgram::is_deepgram(&pairs) {
        deepgram::parse(&pairs, &abilities, "tiny.en").map(|(params, _)| params)
    } else {
        ListenParams::parse(&pairs, &abilities)
    };
    let Ok(params) = parsed else { return };
    let terms = &params.vocabulary.keyterms;
    assert!(terms.len() <= MAX_KEYTERMS && terms.iter().all(|t| t.chars().count() <= MAX_KEYTERM_CHARS));
    assert!((8_000..=192_000).contains(&params.sample_rate));
    assert!(params.max_speakers.is_none_or(|n| (1..=SPEAKER_LIMIT).contains(&n)));
    assert!(params.endpointing_ms.is_none_or(|ms| ENDPOINTING_MS.contains(&ms)));
    assert!(!params.diarize || abilities.diarization, "speakers only where the server has them");
    assert!((1..=8).contains(&params.channels) && (!params.multichannel || params.channels >= 2));
});
