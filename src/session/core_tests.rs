//! The session core driven by hand: scored frames and engine results in, actions out. No model,
//! no socket, no clock.

use super::*;
use crate::domain::Word;

const FRAME: usize = crate::pipeline::FRAME_SAMPLES;

fn params(diarize: bool) -> ListenParams {
    ListenParams { language: Some("en".into()), diarize, ..ListenParams::default() }
}

fn session(diarize: bool) -> Session {
    let mut s = Session::new("s1".into(), params(diarize), &Config::default(), "tiny.en");
    let first = s.take_actions();
    assert!(matches!(first.as_slice(), [Action::Send(ServerMessage::Ready { .. })]), "{first:?}");
    s
}

fn frames(n: usize, probability: f32) -> Input {
    Input::Audio(vec![ScoredFrame { samples: vec![0.1; FRAME], probability }; n])
}

fn sent(actions: &[Action]) -> Vec<&ServerMessage> {
    actions.iter().filter_map(|a| if let Action::Send(m) = a { Some(m) } else { None }).collect()
}

fn final_job(actions: Vec<Action>) -> Option<FinalJob> {
    actions.into_iter().find_map(|a| if let Action::Final(job) = a { Some(job) } else { None })
}

/// Silence one frame at a time until the utterance ends; returns its job and whether a
/// speculative decode was asked for first.
fn silence_until_final(s: &mut Session) -> (FinalJob, bool) {
    let mut speculated = false;
    for _ in 0..100 {
        let actions = s.handle(frames(1, 0.0));
        speculated |= actions.iter().any(|a| matches!(a, Action::Speculate { .. }));
        if let Some(job) = final_job(actions) {
            return (job, speculated);
        }
    }
    panic!("no final after 3 s of silence");
}

fn transcript(text: &str) -> Transcript {
    let words = vec![Word { word: text.into(), start: 0.1, end: 0.5, probability: 0.9 }];
    Transcript { text: text.into(), words, language: "en".into(), ..Default::default() }
}

#[test]
fn speech_asks_for_partials_then_a_final_that_comes_back_as_a_segment() {
    let mut s = session(false);
    let actions = s.handle(frames(40, 0.9));
    assert!(matches!(sent(&actions)[..], [ServerMessage::SpeechStarted { segment_id: 0, .. }]), "{actions:?}");
    let Some(Action::Partial(job)) = actions.into_iter().find(|a| matches!(a, Action::Partial(_))) else {
        panic!("1.3 s of speech asks for a partial")
    };
    let shown = s.handle(Input::Partial { job, turnaround: 1600, result: Ok(transcript("hello")) });
    assert!(matches!(sent(&shown)[..], [ServerMessage::Partial { text, .. }] if text == "hello"), "{shown:?}");

    let (job, speculated) = silence_until_final(&mut s);
    assert!(speculated, "the pause was decoded speculatively before it ended the utterance");
    assert_eq!((job.utterance.id, job.speakers.is_some()), (0, false));
    let (start, end) = (job.utterance.start, job.utterance.end);
    let result = FinalResult { segment_id: 0, start, end, result: Ok(transcript("hello")), speakers: None };
    let actions = s.handle(Input::Final(result));
    let [ServerMessage::Final(segment), ServerMessage::UtteranceEnd { segment_id: 0, end: ended, .. }] =
        sent(&actions)[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!((segment.start, segment.end, *ended), (secs(start), secs(end), secs(end)));
    assert_eq!(segment.words[0].start, round_ms(seconds(start) + 0.1), "words move to stream time");
    assert_eq!(
        s.closed(CloseReason::ClientClose),
        ServerMessage::Closed { reason: CloseReason::ClientClose, audio_seconds: s.audio_seconds(), segments: 1 }
    );
}

#[test]
fn a_withdrawn_or_refused_partial_is_asked_for_again() {
    let mut s = session(false);
    let asked = |actions: &[Action]| actions.iter().any(|a| matches!(a, Action::Partial(_)));
    assert!(asked(&s.handle(frames(20, 0.9))));
    assert!(!asked(&s.handle(frames(1, 0.9))), "one partial at a time");
    s.handle(Input::PartialWithdrawn);
    assert!(asked(&s.handle(frames(1, 0.9))), "withdrawn: as if never asked");
    s.handle(Input::PartialRefused);
    assert!(!asked(&s.handle(frames(1, 0.9))), "refused: the next waits an interval");
    assert!(asked(&s.handle(frames(20, 0.9))));
}

#[test]
fn speakers_label_finals_and_late_labels_become_updates() {
    let mut s = session(true);
    s.handle(frames(40, 0.9));
    let (job, _) = silence_until_final(&mut s);
    assert!(job.speakers.is_some(), "a labelling session hands over its speaker progress");
    let (start, end) = (job.utterance.start, job.utterance.end);
    let turn = EmbeddedTurn {
        start: 0,
        end: end - start,
        embedding: Some(vec![0.5; 8]),
        reliable: true,
        narrowband: false,
        embedded: 16_000,
    };
    let speakers = Some(Ok(vec![turn.clone()]));
    let result = FinalResult { segment_id: 0, start, end, result: Ok(transcript("hi")), speakers };
    let actions = s.handle(Input::Final(result));
    let [ServerMessage::Final(segment), ServerMessage::UtteranceEnd { .. }] = sent(&actions)[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(segment.speaker.as_deref(), Some("S1"));

    let late = s.handle(Input::LateSpeakers { segment_id: 7, result: Ok(vec![turn]) });
    let [ServerMessage::SpeakerUpdate { segments, .. }] = sent(&late)[..] else { panic!("{late:?}") };
    assert_eq!((segments[0].segment_id, segments[0].speaker.as_str()), (7, "S1"));
}

#[test]
fn client_messages_and_limits_give_specific_errors() {
    let mut s = session(false);
    let error_code = |actions: &[Action]| match sent(actions)[..] {
        [ServerMessage::Error { code, .. }] => Some(*code),
        _ => None,
    };
    assert_eq!(error_code(&s.handle(Input::Text("{oops".into()))), Some(ErrorCode::InvalidJson));
    assert_eq!(error_code(&s.handle(Input::Text(r#"{"type":"dance"}"#.into()))), Some(ErrorCode::UnknownMessageType));
    assert!(s.handle(Input::Text(r#"{"type":"keepalive"}"#.into())).is_empty());
    let too_large = s.handle(Input::TooLarge(Some(5 << 20)));
    assert_eq!(error_code(&too_large), Some(ErrorCode::FrameTooLarge));
    assert!(matches!(too_large.last(), Some(Action::Close(CloseReason::FrameTooLarge))));
    assert!(s.accepts_frame(1024) && !s.accepts_frame(5 << 20));
    let idle = s.handle(Input::Idle(30));
    assert_eq!(error_code(&idle), Some(ErrorCode::IdleTimeout));
    assert!(matches!(idle.last(), Some(Action::Close(CloseReason::IdleTimeout))));
    let close = s.handle(Input::Text(r#"{"type":"close"}"#.into()));
    assert!(matches!(close[..], [Action::Close(CloseReason::ClientClose)]));
}

#[test]
fn finalize_and_end_of_audio_flush_the_open_utterance() {
    let mut s = session(false);
    s.handle(frames(20, 0.9));
    let finalize = s.handle(Input::Text(r#"{"type":"finalize"}"#.into()));
    assert_eq!(final_job(finalize).map(|j| j.utterance.id), Some(0));
    s.handle(frames(20, 0.9));
    let end = s.handle(Input::EndOfAudio { frames: Ok(Vec::new()), dropped_bytes: 1 });
    let codes: Vec<ErrorCode> = sent(&end)
        .iter()
        .filter_map(|m| if let ServerMessage::Error { code, .. } = m { Some(*code) } else { None })
        .collect();
    assert_eq!(codes, [ErrorCode::IncompleteSample]);
    assert_eq!(final_job(end).map(|j| j.utterance.id), Some(1));
}

#[test]
fn client_message_errors_are_specific() {
    assert_eq!(parse_client_message("{oops").unwrap_err().0, ErrorCode::InvalidJson);
    assert_eq!(parse_client_message("[1]").unwrap_err().0, ErrorCode::InvalidJson);
    let (code, message) = parse_client_message(r#"{"type":"dance"}"#).unwrap_err();
    assert_eq!(code, ErrorCode::UnknownMessageType);
    assert!(message.contains("dance"));
    assert_eq!(parse_client_message(r#"{"type":"close"}"#).unwrap(), ClientMessage::Close);
}

/// A hypothesis of `text`, one word per 0.4 s from the clip's start.
fn timed(text: &str) -> Transcript {
    let word = |(i, w): (usize, &str)| Word {
        word: w.into(),
        start: i as f64 * 0.4,
        end: (i + 1) as f64 * 0.4,
        probability: 0.9,
    };
    Transcript { text: text.into(), words: text.split(' ').enumerate().map(word).collect(), ..Default::default() }
}

fn partial_job(actions: Vec<Action>) -> Option<PartialJob> {
    actions.into_iter().find_map(|a| if let Action::Partial(job) = a { Some(job) } else { None })
}

#[test]
fn words_two_partials_agree_on_become_final_before_any_pause() {
    let mut config = Config::default();
    config.streaming.progressive_finals = true;
    let mut s = Session::new("s1".into(), params(false), &config, "tiny.en");
    let first = partial_job(s.handle(frames(70, 0.9))).expect("a partial of 2.2 s of speech");
    s.handle(Input::Partial { job: first, turnaround: 0, result: Ok(timed("and so my fellow")) });
    let second = partial_job(s.handle(frames(30, 0.9))).expect("another partial an interval later");
    let (start, end) = (second.start, second.end);
    let actions = s.handle(Input::Partial {
        job: second,
        turnaround: 0,
        result: Ok(timed("and so my fellow Americans ask not")),
    });
    let piece = final_job(actions).expect("the agreed words are cut off as a final while speech goes on").utterance;
    assert_eq!((piece.id, piece.start), (0, start));
    assert!(piece.end > start + 16_000 && piece.end < end, "cut between words, {:?}", (start, piece.end, end));
    let (open, from, _) = s.segmenter.open_utterance().expect("the rest is still open");
    assert_eq!((open, from), (1, piece.end));

    // The piece's final is not an utterance end; the rest's, ended by a pause, is.
    let result = FinalResult { segment_id: 0, start, end: piece.end, result: Ok(transcript("and so")), speakers: None };
    let sent_piece = s.handle(Input::Final(result));
    assert!(matches!(sent(&sent_piece)[..], [ServerMessage::Final(_)]), "{sent_piece:?}");
    let (rest, _) = silence_until_final(&mut s);
    assert_eq!((rest.utterance.id, rest.utterance.start), (1, piece.end));
    assert_eq!(rest.utterance.lead_in.len(), piece.end - start, "the rest is decoded after the piece's audio");
    // That decode hears the committed words again: they are taken off by their text.
    let (rs, re) = (rest.utterance.start, rest.utterance.end);
    let heard = timed("And so my fellow Americans ask not");
    let result = FinalResult { segment_id: 1, start: rs, end: re, result: Ok(heard), speakers: None };
    let sent_rest = s.handle(Input::Final(result));
    let [ServerMessage::Final(last), ServerMessage::UtteranceEnd { segment_id: 1, .. }] = sent(&sent_rest)[..] else {
        panic!("{sent_rest:?}")
    };
    assert_eq!(last.text, "Americans ask not");
}

fn turn(start: usize, end: usize, voice: [f32; 2]) -> EmbeddedTurn {
    EmbeddedTurn { start, end, embedding: Some(voice.to_vec()), reliable: true, narrowband: false, embedded: 16_000 }
}

#[test]
fn a_speaker_change_ends_the_open_utterance_and_the_next_takes_its_words_off_by_text() {
    let mut config = Config::default();
    config.streaming.speaker_cuts = true;
    let mut s = Session::new("s1".into(), params(true), &config, "tiny.en");
    s.take_actions();
    let look = s.handle(frames(50, 0.9)).into_iter().find_map(|a| match a {
        Action::FindSpeakerChange { clip, .. } => Some(clip.len()),
        _ => None,
    });
    let clip = look.expect("1.6 s of speech: a look for a speaker change");
    // The look found a second voice from 1 s of its clip (which is the stream from its start).
    let actions = s.handle(Input::SpeakerChange(Ok(vec![turn(0, 16_000, [1.0, 0.0]), turn(16_000, clip, [0.0, 1.0])])));
    let next_started = sent(&actions).iter().find_map(|m| match m {
        ServerMessage::SpeechStarted { segment_id, start, .. } => Some((*segment_id, *start)),
        _ => None,
    });
    let piece = final_job(actions).expect("the first speaker's utterance ends at the change").utterance;
    assert_eq!(piece.id, 0);
    assert!(piece.end.abs_diff(16_000) <= CHANGE_SEARCH, "{}", piece.end);
    assert_eq!(next_started, Some((1, secs(piece.end))), "the second speaker's utterance begins there");

    // The first turn's final is an utterance end; its words are in the second's lead-in.
    let result = FinalResult {
        segment_id: 0,
        start: piece.start,
        end: piece.end,
        result: Ok(timed("hello there friend")),
        speakers: None,
    };
    let first = s.handle(Input::Final(result));
    assert!(matches!(sent(&first)[..], [ServerMessage::Final(_), ServerMessage::UtteranceEnd { segment_id: 0, .. }]));
    let (rest, _) = silence_until_final(&mut s);
    assert_eq!((rest.utterance.id, rest.utterance.start), (1, piece.end));
    assert_eq!(rest.utterance.lead_in.len(), piece.end - piece.start, "the whole first turn, under 2 s");
    // By times, only two of the words heard again lie in the lead-in; by text, all three do.
    let heard = timed("hello there friend how are you");
    let (start, end) = (rest.utterance.start, rest.utterance.end);
    let result = FinalResult { segment_id: 1, start, end, result: Ok(heard), speakers: None };
    let sent_rest = s.handle(Input::Final(result));
    let [ServerMessage::Final(last), ServerMessage::UtteranceEnd { segment_id: 1, .. }] = sent(&sent_rest)[..] else {
        panic!("{sent_rest:?}")
    };
    assert_eq!(last.text, "how are you");
}

#[test]
fn with_progressive_finals_a_turn_cut_at_a_change_is_final_from_its_agreed_words() {
    let mut config = Config::default();
    config.streaming.speaker_cuts = true;
    config.streaming.progressive_finals = true;
    let mut s = Session::new("s1".into(), params(true), &config, "tiny.en");
    s.take_actions();
    let look = |actions: &[Action]| {
        actions.iter().rev().find_map(|a| {
            if let Action::FindSpeakerChange { clip, .. } = a {
                Some(clip.len())
            } else {
                None
            }
        })
    };
    let actions = s.handle(frames(70, 0.9));
    let mut clip = look(&actions);
    let first = partial_job(actions).expect("a partial of 2.2 s of speech");
    // Two words, then a third stretched over the next voice as Whisper does: the two agreed
    // words end under the second of audio a cut needs, and the last is not yet whole (no
    // second heard past it, no partial repeating it), so the partials cut nothing.
    let mut heard = timed("hi you");
    heard.words[1].end = 2.2;
    s.handle(Input::Partial { job: first, turnaround: 0, result: Ok(heard) });
    let actions = s.handle(frames(30, 0.9));
    clip = look(&actions).or(clip);
    let second = partial_job(actions).expect("another partial an interval later");
    let mut heard = timed("hi you all");
    heard.words[2].end = 2.9;
    assert!(final_job(s.handle(Input::Partial { job: second, turnaround: 0, result: Ok(heard) })).is_none());
    let clip = clip.expect("a look for a speaker change");
    let actions = s.handle(Input::SpeakerChange(Ok(vec![turn(0, 16_000, [1.0, 0.0]), turn(16_000, clip, [0.0, 1.0])])));
    let job = final_job(actions).expect("the first speaker's utterance ends at the change");
    let agreed = job.agreed.expect("the words both partials heard before the change are its final, with no decode");
    assert_eq!(agreed.text.trim(), "hi you");
    assert!(agreed.words.iter().all(|w| w.end <= seconds(job.utterance.end - job.utterance.start)), "{agreed:?}");
}
