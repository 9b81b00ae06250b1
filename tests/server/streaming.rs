//! End-to-end: a real server, a real WebSocket client, the real models and real recordings.

use crate::common::*;
use speech_service::audio::pcm::Encoding;
use speech_service::client::{stream_file, Received, StreamOptions};
use speech_service::eval::reference::{stm_text, JFK_TEXT};
use speech_service::eval::wer::word_error_rate;
use speech_service::eval::{der, rttm};

fn messages_of(received: &[Received]) -> Vec<serde_json::Value> {
    received.iter().map(|r| r.message.clone()).collect()
}

fn of_type<'a>(messages: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    messages.iter().filter(|m| m["type"] == kind).collect()
}

/// Checks the timing invariants of every final: ordered, inside the audio, words inside segments.
fn assert_timestamps(messages: &[serde_json::Value], duration: f64) {
    let mut previous_end = 0.0;
    for f in of_type(messages, "final") {
        let (start, end) = (f["start"].as_f64().unwrap(), f["end"].as_f64().unwrap());
        assert!(start >= previous_end - 1e-6 && start < end && end <= duration + 0.05, "segment {start}-{end}");
        previous_end = end;
        let mut word_start = start;
        for w in f["words"].as_array().unwrap() {
            let (ws, we) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
            assert!(ws >= word_start - 1e-6 && we >= ws && we <= end + 1e-6, "word {w} outside {start}-{end}");
            word_start = ws;
        }
    }
}

#[tokio::test]
async fn jfk_streamed_live_gets_partials_then_accurate_finals() {
    let _heavy = HEAVY.lock().await;
    let app = default_app();
    let options = StreamOptions { speed: 1.0, ..Default::default() };
    let received = stream_file(&app.ws_url(), &recording("jfk.wav"), &options, |_| {}).await.unwrap();
    let messages = messages_of(&received);

    assert_eq!(messages[0]["type"], "ready");
    assert_eq!(messages[0]["model"], "tiny.en");
    let first_partial = messages.iter().position(|m| m["type"] == "partial").expect("at least one partial");
    let first_final = messages.iter().position(|m| m["type"] == "final").expect("at least one final");
    assert!(first_partial < first_final, "a partial arrives before the first final");

    let hypothesis = final_text(&messages);
    let wer = word_error_rate(JFK_TEXT, &hypothesis).wer();
    eprintln!("jfk live: WER {wer:.3}: {hypothesis}");
    assert!(wer <= 0.10, "WER {wer:.3} for {hypothesis:?}");

    assert_timestamps(&messages, 11.0);
    let finals = of_type(&messages, "final");
    let words: Vec<_> = finals.iter().flat_map(|f| f["words"].as_array().unwrap().iter()).collect();
    // "And" begins about 0.3 s into the recording and "country" ends about 10.6 s in.
    assert!(words[0]["start"].as_f64().unwrap() < 1.2, "first word at {}", words[0]["start"]);
    assert!(words.last().unwrap()["end"].as_f64().unwrap() > 9.0);
    assert!(finals.iter().all(|f| f["language"] == "en"));
    // One speaker, labelled on every final, never merged or relabelled.
    assert!(finals.iter().all(|f| f["speaker"] == "S1"), "{finals:?}");
    assert!(of_type(&messages, "speaker_update").is_empty());

    let closed = messages.last().unwrap();
    assert_eq!(closed["type"], "closed");
    assert_eq!(closed["reason"], "client_close");
    assert_eq!(closed["segments"].as_u64().unwrap() as usize, finals.len());
    assert!((closed["audio_seconds"].as_f64().unwrap() - 11.0).abs() < 0.05);
}

#[tokio::test]
async fn phone_call_sample_is_transcribed_without_hallucinated_repeats() {
    let _heavy = HEAVY.lock().await;
    let app = default_app();
    let options = StreamOptions { speed: 3.0, ..Default::default() };
    let received = stream_file(&app.ws_url(), &recording("sample.wav"), &options, |_| {}).await.unwrap();
    let messages = messages_of(&received);
    let hypothesis = final_text(&messages);
    let counts = word_error_rate(&stm_text(&recording("sample.stm")).unwrap(), &hypothesis);
    eprintln!("sample live: WER {:.3} {counts:?}: {hypothesis}", counts.wer());
    assert!(counts.wer() <= 0.20, "WER {:.3} ({counts:?}) for {hypothesis:?}", counts.wer());
    assert_timestamps(&messages, 30.0);
    // The call has silence before 6.6 s: VAD must not hand Whisper anything there.
    let first = of_type(&messages, "final")[0]["start"].as_f64().unwrap();
    assert!(first > 5.5, "first final starts at {first}");

    // Two callers, told apart live, and the speaker turns close to the reference.
    let turns = live_turns(&messages);
    let speakers: std::collections::BTreeSet<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
    assert_eq!(speakers.len(), 2, "{turns:?}");
    let reference = rttm::parse(&std::fs::read_to_string(recording("sample.rttm")).unwrap()).unwrap();
    let report = der::score(&reference, &turns, 0.25);
    eprintln!("sample live: DER {:.3} {report:?}", report.der());
    // Measured 0.01-0.03 on this machine (docs/BENCHMARKS.md); the bound leaves room for
    // scheduling differences in where utterances end.
    assert!(report.der() <= 0.15, "DER {:.3}: {report:?}", report.der());
}

/// A 48 kHz float stream: linear interpolation makes the input independent of our resampler.
#[tokio::test]
async fn float_audio_at_48k_is_resampled_and_transcribed() {
    let _heavy = HEAVY.lock().await;
    let app = default_app();
    let path = jfk_at(48_000, 1, true);

    let query = vec![("diarize".to_owned(), "false".to_owned())];
    let options = StreamOptions { speed: 0.0, encoding: Encoding::PcmF32le, chunk_ms: 250, query };
    let received = stream_file(&app.ws_url(), &path, &options, |_| {}).await.unwrap();
    let messages = messages_of(&received);
    assert_eq!(messages[0]["sample_rate"], 48_000);
    assert_eq!(messages[0]["encoding"], "pcm_f32le");
    assert_eq!(messages[0]["diarize"], false);
    assert!(of_type(&messages, "final").iter().all(|f| f["speaker"].is_null()), "diarize=false leaves speakers out");
    let wer = word_error_rate(JFK_TEXT, &final_text(&messages)).wer();
    assert!(wer <= 0.10, "WER {wer:.3}");
    assert_timestamps(&messages, 11.0);
}

#[tokio::test]
async fn finalize_ends_the_open_utterance_at_once() {
    let _heavy = HEAVY.lock().await;
    let app = default_app();
    let audio = speech_service::audio::wav::read(&recording("jfk.wav")).unwrap();
    let mut ws = connect(&app.ws_url()).await;
    assert_eq!(next_json(&mut ws).await["type"], "ready");
    // The first 1.9 s: "And so my fellow" is still being spoken, no silence to end it.
    let head = speech_service::client::encode(&audio.samples[..30_400], Encoding::PcmS16le);
    send_binary(&mut ws, head).await;
    send_text(&mut ws, r#"{"type":"finalize"}"#).await;
    let final_msg = loop {
        let m = next_json(&mut ws).await;
        if m["type"] == "final" {
            break m;
        }
    };
    assert!(final_msg["end"].as_f64().unwrap() <= 1.91);
    assert!(final_msg["text"].as_str().unwrap().to_lowercase().contains("fellow"), "{final_msg}");
    send_text(&mut ws, r#"{"type":"close"}"#).await;
    let (messages, code) = until_closed(&mut ws).await;
    assert_eq!(messages.last().unwrap()["segments"], 1);
    assert_eq!(code, Some(1000));
}

/// With no time to wait for speakers, finals go out at once and their labels follow in
/// `speaker_update`s; either way every final ends up labelled, before `closed`.
#[tokio::test]
async fn speakers_that_miss_the_join_arrive_as_updates() {
    let _heavy = HEAVY.lock().await;
    let app = spawn_app(|c| c.diarization.join_timeout_ms = 0);
    let options = StreamOptions { speed: 0.0, ..Default::default() };
    let received = stream_file(&app.ws_url(), &recording("jfk.wav"), &options, |_| {}).await.unwrap();
    let messages = messages_of(&received);
    let finals = of_type(&messages, "final");
    let unlabelled: Vec<u64> =
        finals.iter().filter(|f| f["speaker"].is_null()).map(|f| f["segment_id"].as_u64().unwrap()).collect();
    let updated: Vec<u64> = of_type(&messages, "speaker_update")
        .iter()
        .flat_map(|u| u["segments"].as_array().unwrap().iter().map(|s| s["segment_id"].as_u64().unwrap()))
        .collect();
    assert_eq!(unlabelled, updated, "every unlabelled final gets exactly one update");
    let turns = live_turns(&messages);
    assert_eq!(turns.len(), finals.len());
    assert!(turns.iter().all(|t| t.speaker == "S1"), "{turns:?}");
}
