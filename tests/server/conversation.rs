//! The test conversation (three people, turns joined without a pause, some overlapping; built from
//! the recordings we have) streamed in real time: progressive finals, speaker cuts and live
//! speakers, each on a server of its own. Each stream is one real-time session, as a server serves
//! several at once, so most of these tests share the Whisper lock (`HEAVY.read`): two run side
//! by side, never beside a heavy test (docs/BENCHMARKS.md, "The test command").

use crate::common::*;
use speech_service::client::{stream_file, StreamOptions};
use speech_service::config::Config;
use speech_service::eval::der;
use speech_service::eval::reference::JFK_TEXT;
use speech_service::eval::wer::word_error_rate;

/// The test conversation (turns joined without a pause, some overlapping), streamed in real
/// time to a server configured by `tweak`: the conversation and what came back.
async fn stream_conversation(
    tweak: impl FnOnce(&mut Config),
) -> (speech_service::eval::conversation::Conversation, Vec<speech_service::client::Received>) {
    stream_conversation_as(|wide| wide.to_owned(), tweak).await
}

/// The same, the recording sent as `send` makes it from the 16 kHz file.
async fn stream_conversation_as(
    send: impl FnOnce(&std::path::Path) -> std::path::PathBuf,
    tweak: impl FnOnce(&mut Config),
) -> (speech_service::eval::conversation::Conversation, Vec<speech_service::client::Received>) {
    let read = |name: &str| speech_service::audio::wav::read_16k(&recording(name)).unwrap();
    let stm = std::fs::read_to_string(recording("sample.stm")).unwrap();
    let talk =
        speech_service::eval::conversation::test_conversation(&read("sample.wav"), &stm, &read("jfk.wav"), JFK_TEXT);
    let path = fresh_data_dir().with_extension("wav");
    speech_service::audio::wav::write_16k(&path, &talk.samples).unwrap();
    let sent = send(&path);
    let app = spawn_app(tweak);
    let options = StreamOptions { speed: 1.0, ..Default::default() };
    let received = stream_file(&app.ws_url(), &sent, &options, |_| {}).await.unwrap();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&sent);
    (talk, received)
}

/// Live speakers on a phone line with progressive finals and speaker cuts, where utterances are
/// pieces of a second or two: the phone-band test conversation keeps its three speakers, or
/// four where one woman's first later piece opens a speaker of its own, and its words are not
/// lost on the way. It had 6 at a DER of 40-43% before a piece's speaker jobs heard the speech
/// before it, the first speaker opened by short turns was provisional, and short embeddings
/// needed less similarity.
///
/// Four is within what the embeddings can tell here: the mixed opening seeds the first speaker
/// with both women, and a woman's 1.5 s phone-band piece is about as like it (0.50-0.55) as the
/// other woman's first turn can be (0.40-0.53), so which side of the 0.50-0.55 needed a piece
/// falls on depends on where the cuts fall, which depends on when looks and partials come back.
/// Measured (docs/BENCHMARKS.md, "Twenty-second session"): 3 speakers in each of 25 runs alone
/// or beside CPU burners (DER 8.7-22.4% in that session's 18), 4 in two full-suite runs (DER
/// 27.1 and 27.2%: Diane's piece at 14.8 s opened a speaker, and her turns at 20-23 s joined
/// Sheila's instead of it or the first). A fourth speaker holding one person's turns costs a
/// quarter to a third of the 23 s scored, hence the 35%.
///
/// It takes the Whisper lock alone: beside another conversation stream while the fuzz targets
/// were built it once found 2 speakers (both women's pieces in one from 15 s to the end).
#[tokio::test]
async fn progressive_pieces_of_a_phone_band_conversation_keep_its_speakers_apart() {
    let _heavy = HEAVY.write().await;
    let (talk, received) = stream_conversation_as(phone_band, |c| {
        c.streaming.progressive_finals = true;
        c.streaming.speaker_cuts = true;
    })
    .await;
    assert_live_speakers("phone-band conversation, both options", &talk, &received, 3..=4, 0.35);
    let (wer, hypothesis) = finals_wer("phone-band conversation, both options", &talk, &messages_of(&received));
    // Measured 22.3-24.3% in the eighteenth session, 20.4-27.2% over twelve runs in the
    // twenty-second (27.2% is 28 of 103 words, and two runs beside CPU burners got it; the
    // bound was 28%, one word more). Not a test of the still-word rule (`pipeline::commit`'s
    // unit test is) but a guard against losing many words: 31 of 103 fail.
    assert!(wer <= 0.30, "WER {wer:.3} for {hypothesis:?}");
}

/// The WER of the finals in `messages` against the test conversation's reference, printed
/// under `what` with the text it scored.
fn finals_wer(
    what: &str,
    talk: &speech_service::eval::conversation::Conversation,
    messages: &[ServerMessage],
) -> (f64, String) {
    let hypothesis = final_text(messages);
    let wer = word_error_rate(&talk.text, &hypothesis).wer();
    eprintln!("{what}: WER {wer:.3}: {hypothesis}");
    (wer, hypothesis)
}

/// The live speakers of the test conversation: as many as `count` allows (it has three), at a
/// DER of at most `max_der`.
fn assert_live_speakers(
    what: &str,
    talk: &speech_service::eval::conversation::Conversation,
    received: &[speech_service::client::Received],
    count: std::ops::RangeInclusive<usize>,
    max_der: f64,
) {
    let turns = live_turns(&messages_of(received));
    let speakers: std::collections::BTreeSet<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
    let report = der::score(&talk.turns, &turns, 0.25);
    eprintln!("{what}: DER {:.3}, speakers {speakers:?}", report.der());
    assert!(count.contains(&speakers.len()), "{} speakers: {turns:?}", speakers.len());
    assert!(report.der() <= max_der, "DER {:.3}: {turns:?}", report.der());
}

/// Live speakers with the defaults on the wide-band test conversation: its opening quick turns,
/// which the segmentation model does not tell apart, seed one speaker with both women, and each
/// woman's later turns joined it (2 speakers, DER 28.8%). Looking back at that speaker's turns
/// splits it in two.
#[tokio::test]
async fn a_speaker_seeded_by_two_voices_is_split_when_their_turns_part() {
    let _heavy = HEAVY.read().await;
    let (talk, received) = stream_conversation(|_| {}).await;
    // Measured 7.7% (docs/BENCHMARKS.md).
    assert_live_speakers("wide-band conversation, defaults", &talk, &received, 3..=3, 0.15);
}

/// Speaker cuts (`streaming.speaker_cuts`) on the test conversation, in real time: where one
/// person takes over from another without a pause, the utterance ends there, while the
/// conversation goes on. Without them its last 15 s (three people, no pause) are one utterance,
/// final only when the audio ends.
#[tokio::test]
async fn a_change_of_speaker_ends_an_utterance_without_a_pause() {
    let _heavy = HEAVY.read().await;
    let (talk, received) = stream_conversation(|c| c.streaming.speaker_cuts = true).await;

    let duration = talk.samples.len() as f64 / 16_000.0;
    let changes: Vec<f64> =
        talk.turns.windows(2).filter(|w| w[0].speaker != w[1].speaker).map(|w| w[1].start).collect();
    // Utterance ends in the stretch without a pause, and how much audio had been sent by then.
    let ends: Vec<(f64, f64)> = received
        .iter()
        .filter_map(|r| match r.message {
            ServerMessage::UtteranceEnd { end, .. } if end > 16.0 && end < duration - 1.0 => Some((end, r.audio_sent)),
            _ => None,
        })
        .collect();
    eprintln!("speaker cuts: utterance ends (end, audio sent) {ends:?}; reference changes {changes:?}");
    let live: Vec<_> = ends.iter().filter(|(_, sent)| *sent < duration - 0.5).collect();
    assert!(live.len() >= 2, "turns became final while the conversation went on: {ends:?}");
    for (end, _) in &ends {
        assert!(changes.iter().any(|c| (c - end).abs() <= 0.6), "the end at {end} s is a change: {changes:?}");
    }
    let messages = messages_of(&received);
    assert!(finals(&messages).iter().all(|f| f.speaker.is_some()), "every final is labelled");
    assert_timestamps(&messages, duration);
    let (wer, hypothesis) = finals_wer("speaker cuts", &talk, &messages);
    // Measured 0.233 alone against 0.214 without the cuts (docs/BENCHMARKS.md).
    assert!(wer <= 0.30, "WER {wer:.3} for {hypothesis:?}");
}

/// Progressive finals (`streaming.progressive_finals`) on the test conversation: turns joined
/// without a pause, streamed in real time. Stable words become finals while speech goes on
/// (pieces with no utterance end after them), nothing final is sent twice, and every utterance
/// end names a final already sent.
#[tokio::test]
async fn continuous_speech_gets_progressive_finals_with_utterance_ends() {
    let _heavy = HEAVY.read().await;
    let (talk, received) = stream_conversation(|c| c.streaming.progressive_finals = true).await;
    let messages = messages_of(&received);

    let finals = finals(&messages);
    let ends: Vec<u64> = messages
        .iter()
        .filter_map(|m| if let ServerMessage::UtteranceEnd { segment_id, .. } = m { Some(*segment_id) } else { None })
        .collect();
    let ids: std::collections::BTreeSet<u64> = finals.iter().map(|f| f.segment_id).collect();
    let pieces = ids.iter().filter(|id| !ends.contains(id)).count();
    eprintln!("conversation progressive: {} finals, {} utterance ends, {pieces} pieces", finals.len(), ends.len());
    assert!(pieces >= 2, "stable words were made final before pauses: {ends:?} {ids:?}");
    assert!(ends.iter().all(|id| ids.contains(id)), "every end names a final sent: {ends:?} {ids:?}");
    let mut sent: Vec<(u64, u32)> = finals.iter().map(|f| (f.segment_id, f.part)).collect();
    let n = sent.len();
    sent.dedup();
    assert_eq!(sent.len(), n, "no final is sent twice");
    assert_timestamps(&messages, talk.samples.len() as f64 / 16_000.0);
    let (wer, hypothesis) = finals_wer("conversation progressive", &talk, &messages);
    // Measured 0.22-0.27 alone against 0.21 without progressive finals (docs/BENCHMARKS.md);
    // the cuts fall where the partials' timing puts them, which the suite's load moves.
    assert!(wer <= 0.35, "WER {wer:.3} for {hypothesis:?}");
}
