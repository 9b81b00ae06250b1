//! Multichannel audio (a call recorded one party per channel) live and as a file, on the real
//! models: each channel transcribed as its own stream, the channel as the speaker.

use speech_service::client::{stream_audio, StreamOptions};
use speech_service::domain::Segment;
use speech_service::eval::wer::word_error_rate;
use speech_service::protocol::{ErrorCode, ServerMessage};

use crate::common::*;

/// Each channel's words against what its party said.
fn channel_wers(segments: &[Segment], texts: &[String; 2]) -> [f64; 2] {
    [0, 1].map(|channel| {
        let said: Vec<&str> = segments.iter().filter(|s| s.channel == Some(channel)).map(|s| s.text.as_str()).collect();
        word_error_rate(&texts[channel as usize], &said.join(" ")).wer()
    })
}

/// Every segment is on a channel, labelled with it, and they come in time order.
fn assert_labelled_by_channel(segments: &[Segment]) {
    for s in segments {
        let channel = s.channel.unwrap_or_else(|| panic!("a multichannel segment names its channel: {s:?}"));
        assert_eq!(s.speaker.as_deref(), Some(["S1", "S2"][channel as usize]), "the channel is the speaker: {s:?}");
    }
    assert!(segments.windows(2).all(|w| w[0].start <= w[1].start), "in time order: {segments:?}");
    assert!(segments.iter().any(|s| s.channel == Some(0)) && segments.iter().any(|s| s.channel == Some(1)));
}

/// Two live streams of one call at twice real time: it shares the Whisper lock with the other
/// live tests (and, named to run last here, usually runs beside the first of the conversation's).
#[tokio::test]
async fn two_channels_of_a_call_streamed_live_are_transcribed_channel_by_channel() {
    let _heavy = HEAVY.read().await;
    let (path, texts) = stereo_call();
    let audio = speech_service::audio::wav::read_channels(path).unwrap();
    let app = default_app();
    let query = vec![("multichannel".to_owned(), "true".to_owned())];
    let options = StreamOptions { speed: 2.0, query, ..Default::default() };
    let messages = messages_of(&stream_audio(&app.ws_url(), &audio, &options, |_| {}).await.unwrap());

    assert!(matches!(messages[0], ServerMessage::Ready { channels: Some(2), diarize: false, .. }), "{:?}", messages[0]);
    let closed: Vec<_> = messages.iter().filter(|m| matches!(m, ServerMessage::Closed { .. })).collect();
    assert!(matches!(closed[..], [ServerMessage::Closed { segments, .. }] if *segments > 0), "one closed: {closed:?}");
    let partial_channels: Vec<Option<u32>> = messages
        .iter()
        .filter_map(|m| if let ServerMessage::Partial { channel, .. } = m { Some(*channel) } else { None })
        .collect();
    assert!(!partial_channels.is_empty() && partial_channels.iter().all(Option::is_some), "{partial_channels:?}");
    let mut finals: Vec<Segment> =
        messages.iter().filter_map(|m| if let ServerMessage::Final(s) = m { Some(s.clone()) } else { None }).collect();
    let mut ids: Vec<(u64, u32)> = finals.iter().map(|s| (s.segment_id, s.part)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), finals.len(), "segment ids are unique across channels");
    assert!(finals.iter().all(|s| s.segment_id % 2 == u64::from(s.channel.unwrap())), "{finals:?}");
    finals.sort_by(|a, b| a.start.total_cmp(&b.start));
    assert_labelled_by_channel(&finals);
    let wers = channel_wers(&finals, texts);
    eprintln!("stereo call live: WER left {:.3}, right {:.3}", wers[0], wers[1]);
    // Measured 0.22 and 0.29 as a file (docs/BENCHMARKS.md); one channel's party alone.
    assert!(wers.iter().all(|&w| w <= 0.40), "{wers:?}: {finals:?}");

    // The stored transcript: both channels, interleaved by time.
    let ServerMessage::Ready { session_id, .. } = &messages[0] else { unreachable!() };
    let (status, session) = http(app, "GET", &format!("/sessions/{session_id}")).await;
    assert_eq!(status, 200, "{session}");
    let stored: Vec<Segment> = serde_json::from_value(session["transcript"].clone()).unwrap();
    assert_eq!(stored.len(), finals.len(), "{session}");
    assert_labelled_by_channel(&stored);
}

#[tokio::test]
async fn a_partial_frame_and_a_bad_message_get_one_specific_error_each() {
    let app = default_app();
    // Three bytes of 16-bit stereo: not a whole frame (four bytes).
    let mut ws = connect(&format!("{}?channels=2&multichannel=true", app.ws_url())).await;
    assert!(matches!(next_message(&mut ws).await, ServerMessage::Ready { channels: Some(2), .. }));
    send_binary(&mut ws, vec![0u8; 4 * 1600 + 3]).await;
    send_text(&mut ws, r#"{"type":"close"}"#).await;
    let (messages, _) = until_closed(&mut ws).await;
    let errors: Vec<_> = messages.iter().filter_map(error_code).collect();
    assert_eq!(errors, vec![ErrorCode::IncompleteSample], "{messages:?}");
    let incomplete = messages.iter().find(|m| error_code(m).is_some()).unwrap();
    assert!(format!("{incomplete:?}").contains("whole frame"), "{incomplete:?}");

    // A message the server cannot read is answered once, not once per channel.
    let mut ws = connect(&format!("{}?channels=2&multichannel=true", app.ws_url())).await;
    next_message(&mut ws).await;
    send_text(&mut ws, "not json").await;
    send_text(&mut ws, r#"{"type":"close"}"#).await;
    let (messages, _) = until_closed(&mut ws).await;
    let errors: Vec<_> = messages.iter().filter_map(error_code).collect();
    assert_eq!(errors, vec![ErrorCode::InvalidJson], "{messages:?}");
}

#[tokio::test]
async fn transcribe_multichannel_labels_each_channel_and_refuses_mono() {
    let _heavy = HEAVY.write().await;
    let (path, texts) = stereo_call();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .arg("--models-dir")
        .arg(models_dir())
        .args(["transcribe", "--multichannel", "--format", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let segments: Vec<Segment> = serde_json::from_value(body["segments"].clone()).unwrap();
    assert_labelled_by_channel(&segments);
    let wers = channel_wers(&segments, texts);
    eprintln!("stereo call as a file: WER left {:.3}, right {:.3}", wers[0], wers[1]);
    assert!(wers.iter().all(|&w| w <= 0.40), "{wers:?}: {segments:?}");

    let mono = std::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .arg("--models-dir")
        .arg(models_dir())
        .args(["transcribe", "--multichannel"])
        .arg(recording("jfk.wav"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&mono.stderr);
    assert!(!mono.status.success() && stderr.contains("needs a file of 2 to 8 channels"), "{stderr}");
}

#[tokio::test]
async fn channels_without_multichannel_are_mixed_down_as_before() {
    let _heavy = HEAVY.write().await;
    let (path, _) = stereo_call();
    let audio = speech_service::audio::wav::read_channels(path).unwrap();
    let options = StreamOptions { speed: 0.0, ..Default::default() };
    let messages = messages_of(&stream_audio(&default_app().ws_url(), &audio, &options, |_| {}).await.unwrap());
    assert!(matches!(messages[0], ServerMessage::Ready { channels: None, .. }), "{:?}", messages[0]);
    let finals: Vec<&Segment> =
        messages.iter().filter_map(|m| if let ServerMessage::Final(s) = m { Some(s) } else { None }).collect();
    assert!(finals.iter().all(|s| s.channel.is_none()), "mono finals carry no channel: {finals:?}");
    // Both parties, in the order they spoke (the call's reference).
    let reference = speech_service::eval::reference::stm_text(&recording("sample.stm")).unwrap();
    let wer = word_error_rate(&reference, &final_text(&messages)).wer();
    eprintln!("stereo call mixed down: WER {wer:.3}");
    assert!(wer <= 0.35, "both parties heard in one stream: WER {wer:.3}: {}", final_text(&messages));
}
