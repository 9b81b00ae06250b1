//! Deepgram's live-streaming protocol on `/v1/listen`, so that Deepgram's own SDKs stream to
//! this server unmodified (docs/protocol.md, "Deepgram"). A request is Deepgram's when its query
//! names `model`, `encoding=linear16` or any parameter only Deepgram has; otherwise it is ours.
//! Like Deepgram, unknown parameters are ignored and booleans are read in any case.

pub mod dialect;
pub mod messages;

use super::vocabulary::Vocabulary;
use super::{
    parse_channel_count, parse_language, parse_sample_rate, Abilities, ListenParams, ParamError, ENDPOINTING_MS,
};
use crate::audio::pcm::Encoding;

/// Query names that only Deepgram's protocol has (`keyterm` is ours too).
const DEEPGRAM_ONLY: &[&str] = &[
    "model",
    "punctuate",
    "smart_format",
    "endpointing",
    "utterance_end_ms",
    "vad_events",
    "keywords",
    "diarize_model",
    "numerals",
    "profanity_filter",
    "redact",
    "replace",
    "search",
    "tag",
    "version",
    "filler_words",
    "dictation",
    "mip_opt_out",
];

/// Model families of Deepgram's that users' code names; each is taken as the loaded model.
const MODEL_FAMILIES: &[&str] = &["nova", "enhanced", "base", "whisper", "general", "phonecall", "meeting"];

/// Whether a `/v1/listen` query is Deepgram's.
pub fn is_deepgram(query: &[(String, String)]) -> bool {
    query
        .iter()
        .any(|(name, value)| DEEPGRAM_ONLY.contains(&name.as_str()) || (name == "encoding" && value == "linear16"))
}

/// What Deepgram's protocol asks of the stream beyond our own parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The model as the client named it (answered in every result's metadata).
    pub model: String,
    /// Transcripts with punctuation and case (`punctuate` or `smart_format`).
    pub punctuate: bool,
    pub vad_events: bool,
    /// Send `UtteranceEnd` when an utterance ends.
    pub utterance_end: bool,
}

/// A Deepgram query as our session parameters and Deepgram's options.
pub fn parse(
    query: &[(String, String)],
    abilities: &Abilities,
    loaded_model: &str,
) -> Result<(ListenParams, Options), ParamError> {
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let all = |name: &'static str| query.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.clone());
    let model = parse_model(get("model"), loaded_model)?;
    let encoding = match get("encoding") {
        Some("linear16") => Encoding::PcmS16le,
        Some("mulaw") => Encoding::Mulaw,
        Some("alaw") => Encoding::Alaw,
        Some(other) => {
            return Err(ParamError(format!("encoding `{other}` is not supported here; use linear16, mulaw or alaw")))
        }
        None => {
            return Err(ParamError(
                "encoding is required: this server takes raw audio (linear16, mulaw or alaw), not containers".into(),
            ))
        }
    };
    let sample_rate = parse_sample_rate(get("sample_rate"))?;
    let channels = parse_channel_count(get("channels"), abilities.max_channels)?;
    if flag(get("multichannel"), "multichannel")?.unwrap_or(false) && channels > 1 {
        return Err(ParamError(
            "multichannel is not supported on the Deepgram-compatible endpoint; channels are mixed down \
             (our own protocol transcribes each channel: docs/protocol.md)"
                .into(),
        ));
    }
    let diarize = flag(get("diarize"), "diarize")?.unwrap_or(false) || get("diarize_model").is_some();
    if diarize && !abilities.diarization {
        return Err(ParamError("diarize: speaker labels are disabled on this server".into()));
    }
    let language = match get("language") {
        Some("multi") if abilities.multilingual => None,
        other => parse_language(other.map(base_language), abilities.multilingual, abilities.is_language)?,
    };
    let mut keyterms: Vec<String> = all("keyterm").collect();
    // `keywords` carry an intensifier after a colon (`word:2`); the word is what counts here.
    keyterms.extend(all("keywords").map(|k| k.rsplit_once(':').map_or(k.clone(), |(w, _)| w.to_owned())));
    let vocabulary = Vocabulary::checked(keyterms, None)?;
    let params = ListenParams {
        sample_rate,
        encoding,
        language,
        interim_results: flag(get("interim_results"), "interim_results")?.unwrap_or(false),
        diarize,
        max_speakers: None,
        min_speakers: None,
        endpointing_ms: parse_endpointing(get("endpointing"))?,
        channels,
        multichannel: false,
        vocabulary,
    };
    let punctuate = flag(get("punctuate"), "punctuate")?.unwrap_or(false)
        || flag(get("smart_format"), "smart_format")?.unwrap_or(false);
    let vad_events = flag(get("vad_events"), "vad_events")?.unwrap_or(false);
    let utterance_end = match get("utterance_end_ms") {
        None => false,
        Some(v) if v.parse::<u32>().is_ok_and(|ms| ms > 0) => true,
        Some(v) => return Err(ParamError(format!("utterance_end_ms must be a positive integer, got `{v}`"))),
    };
    Ok((params, Options { model, punctuate, vad_events, utterance_end }))
}

/// `true`/`false` in any case, as Deepgram reads them.
fn flag(value: Option<&str>, name: &str) -> Result<Option<bool>, ParamError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ParamError(format!("{name} must be true or false, got `{}`", value.unwrap_or_default()))),
    }
}

fn parse_model(value: Option<&str>, loaded: &str) -> Result<String, ParamError> {
    let model = value.unwrap_or("nova-3");
    let family = model.split('-').next().unwrap_or_default();
    if model == loaded || MODEL_FAMILIES.contains(&family) {
        return Ok(model.to_owned());
    }
    Err(ParamError(format!(
        "model `{model}` is not available: this server runs `{loaded}`, which also answers to Deepgram's model \
         names (nova-3, nova-2, enhanced, base, whisper)"
    )))
}

/// `en-US` -> `en`: the recogniser knows languages, not regions.
fn base_language(code: &str) -> &str {
    code.split(['-', '_']).next().unwrap_or(code)
}

/// Deepgram's `endpointing`: milliseconds of silence, or `false` for the longest wait. Values
/// outside our range are brought into it (below 100 ms a breath would end an utterance).
fn parse_endpointing(value: Option<&str>) -> Result<Option<u32>, ParamError> {
    let (lo, hi) = (*ENDPOINTING_MS.start(), *ENDPOINTING_MS.end());
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") => Ok(None),
        Some("false") => Ok(Some(hi)),
        Some(v) => match v.parse::<u32>() {
            Ok(ms) => Ok(Some(ms.clamp(lo, hi))),
            Err(_) => Err(ParamError(format!("endpointing must be milliseconds or false, got `{v}`"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abilities() -> Abilities {
        Abilities { multilingual: false, diarization: true, is_language: |c| c == "en", max_channels: 8 }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn deepgram_queries_are_told_from_ours() {
        assert!(is_deepgram(&pairs(&[("model", "nova-3")])));
        assert!(is_deepgram(&pairs(&[("encoding", "linear16"), ("sample_rate", "16000")])));
        assert!(!is_deepgram(&pairs(&[("encoding", "pcm_s16le"), ("diarize", "true")])));
        assert!(!is_deepgram(&pairs(&[("encoding", "mulaw"), ("sample_rate", "8000")])), "ours takes G.711 too");
        assert!(!is_deepgram(&pairs(&[("keyterm", "Ada")])), "and key terms");
    }

    #[test]
    fn an_sdk_query_becomes_session_parameters() {
        let query = pairs(&[
            ("model", "nova-3"),
            ("encoding", "mulaw"),
            ("sample_rate", "8000"),
            ("interim_results", "True"),
            ("diarize", "true"),
            ("punctuate", "TRUE"),
            ("endpointing", "10"),
            ("language", "en-US"),
            ("keyterm", "Kubernetes"),
            ("keyterm", "Ada Lovelace"),
            ("keywords", "snuffleupagus:2"),
            ("utterance_end_ms", "1000"),
            ("vad_events", "true"),
            ("no_such_option", "whatever"),
        ]);
        let (params, options) = parse(&query, &abilities(), "tiny.en").unwrap();
        assert_eq!(
            (params.encoding, params.sample_rate, params.language.as_deref()),
            (Encoding::Mulaw, 8000, Some("en"))
        );
        assert!(params.interim_results && params.diarize);
        assert_eq!(params.endpointing_ms, Some(100), "brought into our range");
        assert_eq!(params.vocabulary.keyterms, ["Kubernetes", "Ada Lovelace", "snuffleupagus"]);
        assert_eq!(options, Options { model: "nova-3".into(), punctuate: true, vad_events: true, utterance_end: true });
    }

    #[test]
    fn deepgram_defaults_differ_from_ours() {
        let (params, options) =
            parse(&pairs(&[("model", "nova-2"), ("encoding", "linear16")]), &abilities(), "x").unwrap();
        assert!(!params.interim_results && !params.diarize, "both off unless asked, as at Deepgram");
        assert!(!options.punctuate && !options.vad_events && !options.utterance_end);
        assert_eq!(parse_endpointing(Some("false")).unwrap(), Some(2000));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let cases = [
            (("model", "gpt-9"), "model"),
            (("encoding", "opus"), "encoding"),
            (("sample_rate", "fast"), "sample_rate"),
            (("interim_results", "yes"), "interim_results"),
            (("endpointing", "soon"), "endpointing"),
            (("utterance_end_ms", "-5"), "utterance_end_ms"),
            (("channels", "99"), "channels"),
            (("language", "fr"), "language"),
        ];
        for ((name, value), expected) in cases {
            let mut query = pairs(&[("model", "nova-3"), ("encoding", "linear16")]);
            query.retain(|(k, _)| k != name);
            query.push((name.into(), value.into()));
            let err = parse(&query, &abilities(), "tiny.en").unwrap_err();
            assert!(err.0.contains(expected), "{name}={value}: {}", err.0);
        }
        let no_encoding = parse(&pairs(&[("model", "nova-3")]), &abilities(), "tiny.en").unwrap_err();
        assert!(no_encoding.0.contains("encoding is required"));
    }
}
