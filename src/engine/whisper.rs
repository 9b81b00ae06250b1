//! Whisper through whisper.cpp (whisper-rs): the backend the ASR workers own.

use std::path::Path;
use std::sync::Arc;

use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters,
    WhisperState,
};

use super::asr::{AsrError, DecodeOptions, Transcriber};
use super::bias::TermBias;
use super::dtw_guard::DtwGuard;
use super::loops;
use crate::domain::{DecodeQuality, Transcript, Word};

const SAMPLE_RATE: usize = crate::domain::SAMPLE_RATE as usize;
/// Whether `code` is a language Whisper knows (`en`, `de`, ...).
pub fn is_language(code: &str) -> bool {
    lang_id(code).is_some()
}

/// The longest language code or name whisper.cpp knows is 14 bytes ("haitian creole").
const MAX_LANGUAGE_LEN: usize = 32;

/// whisper.cpp's id for a language code or name. What a client sends is checked first, since
/// two things found by fuzzing must never reach whisper.cpp: a NUL byte (whisper-rs panics on
/// it) and a long string (whisper.cpp logs an unknown language with a `va_list` it has already
/// used once the message passes 1 KiB, and the process dies of a segmentation fault). Codes
/// and names are ASCII letters and spaces.
fn lang_id(code: &str) -> Option<i32> {
    let plausible = code.len() <= MAX_LANGUAGE_LEN && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b' ');
    if !plausible {
        return None;
    }
    whisper_rs::get_lang_id(code)
}

/// The English name Whisper gives a language code (`en` -> `english`), as OpenAI's API reports it.
pub fn language_name(code: &str) -> Option<&'static str> {
    lang_id(code).and_then(whisper_rs::get_lang_str_full)
}

/// whisper.cpp ignores clips under one second; shorter ones are padded with silence.
const MIN_SAMPLES: usize = SAMPLE_RATE + SAMPLE_RATE / 10;
/// Encoder positions per second of audio (1500 for 30 s).
const CTX_PER_SECOND: usize = 50;
const CTX_MAX: usize = 1500;
const CTX_MIN: usize = 384;
const PARTIAL_CTX_MIN: usize = 256;
/// The most positions of proportional padding (2 s).
const MAX_PADDING: usize = 100;

/// A loaded model; cheap to share between workers, each of which makes its own state.
#[derive(Clone)]
pub struct WhisperModelFile {
    ctx: Arc<WhisperContext>,
    dtw: bool,
    /// The same weights without DTW, for partials and other text-only work: whisper.cpp
    /// switches DTW on per context, and it costs every decode an alignment pass that text
    /// alone does not need.
    quick: Option<Arc<WhisperContext>>,
}

impl WhisperModelFile {
    /// Loads a ggml file. `dtw` names the model's alignment-head preset for word timings by
    /// dynamic time warping over cross-attention; without it, word times come from whisper.cpp's
    /// timestamp-token heuristics, which are much coarser.
    /// `partials`: also load the context without DTW that partials decode with (live streams).
    /// `gpu`: the CUDA device to run on (a CUDA build only), else the CPU.
    pub fn load(
        path: &Path,
        dtw: Option<DtwModelPreset>,
        partials: bool,
        gpu: Option<usize>,
    ) -> Result<Self, AsrError> {
        whisper_rs::install_logging_hooks();
        super::supervise::report_fatal_model_errors();
        tracing::debug!(made = super::ggml_threads::cpu_backends_made(), "ggml CPU backends made with one thread");
        let path_str = path.to_str().ok_or_else(|| AsrError::PathNotUtf8(path.to_owned()))?;
        let params = || {
            let mut params = WhisperContextParameters::default();
            params.use_gpu(gpu.is_some()).gpu_device(gpu.unwrap_or(0) as i32);
            params
        };
        let open = |params: WhisperContextParameters| {
            WhisperContext::new_with_params(path_str, params)
                .map(Arc::new)
                .map_err(|source| AsrError::Load { path: path.to_owned(), source })
        };
        let Some(model_preset) = dtw else {
            return Ok(Self { ctx: open(params())?, dtw: false, quick: None });
        };
        let mut with_dtw = params();
        with_dtw.dtw_parameters(DtwParameters { mode: DtwMode::ModelPreset { model_preset }, ..Default::default() });
        let ctx = open(with_dtw)?;
        let quick = if partials { Some(open(params())?) } else { None };
        Ok(Self { ctx, dtw: true, quick })
    }

    pub fn is_multilingual(&self) -> bool {
        self.ctx.is_multilingual()
    }

    /// A backend for one worker thread, decoding with `threads` ggml threads.
    pub fn backend(&self, threads: usize) -> Result<WhisperBackend, AsrError> {
        let state = self.ctx.create_state()?;
        let quick_state = self.quick.as_ref().map(|q| q.create_state()).transpose()?;
        Ok(WhisperBackend { model: self.clone(), state, quick_state, threads: threads.max(1) as i32 })
    }
}

pub struct WhisperBackend {
    model: WhisperModelFile,
    state: WhisperState,
    /// A state on the context without DTW, for partials.
    quick_state: Option<WhisperState>,
    threads: i32,
}

/// Seconds of speech (by the VAD) after a decode's last word past which the decode is taken to
/// have stopped early. Silero's speech end trails the last word by a few tenths, but by 1.0 s
/// after jfk.wav's last word (the crowd); the lost tail this catches was 2.4 s.
const TAIL_UNHEARD: f64 = 1.5;

fn last_word_end(t: &Transcript) -> f64 {
    t.words.last().map_or(0.0, |w| w.end)
}

/// Whether a decode that heard words stopped well before the clip's speech ends at
/// `speech_until`: both its last word and its last segment end (`heard`, seconds) fall over
/// `TAIL_UNHEARD` before it. A clip with no words is not retried: that is Whisper hearing
/// nothing, not stopping early.
fn stops_early(t: &Transcript, heard: f64, speech_until: f64) -> bool {
    !t.words.is_empty() && speech_until - heard > TAIL_UNHEARD
}

/// Encoder context fitted to the clip so short clips encode quickly. Whisper needs some silence
/// after the speech within its window: a context cut right at the clip's end garbles the first
/// words (measured on jfk.wav), so a quarter is added (at most 2 s: a long clip needs no more
/// silence than an 8 s one, and self-attention's cost grows with the square of the context),
/// and at least `floor` positions (384, 7.7 s, for finals; partials take less).
fn audio_ctx_for(n_samples: usize, floor: usize) -> i32 {
    let needed = n_samples.div_ceil(SAMPLE_RATE / CTX_PER_SECOND);
    let padded = needed + (needed / 4).min(MAX_PADDING) + 96;
    (padded.div_ceil(64) * 64).clamp(floor, CTX_MAX) as i32
}

fn partial_token_budget(n_samples: usize) -> i32 {
    (n_samples * 6 / SAMPLE_RATE + 8) as i32
}

/// Finals get more room: whisper.cpp counts the budget per segment, and a final must not lose
/// words of fast speech.
fn final_token_budget(n_samples: usize) -> i32 {
    (n_samples * 10 / SAMPLE_RATE + 16) as i32
}

impl WhisperBackend {
    /// The decode's parameters (its logits filters are installed by `decode`).
    fn params<'a>(
        &self,
        options: &'a DecodeOptions,
        n_samples: usize,
        strategy: SamplingStrategy,
    ) -> FullParams<'a, 'a> {
        let mut p = FullParams::new(strategy);
        p.set_n_threads(self.threads);
        p.set_translate(options.translate);
        if let Some(prompt) = options.prompt.as_deref() {
            p.set_initial_prompt(prompt);
        }
        p.set_no_context(true);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_special(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_token_timestamps(!options.partial || options.partial_word_times);
        // Partials, short and disposable, take a smaller floor: 256 positions still read the
        // first words right on jfk.wav, and encoding is the larger part of a partial's cost.
        let floor = if options.partial { PARTIAL_CTX_MIN } else { CTX_MIN };
        p.set_audio_ctx(audio_ctx_for(n_samples, floor));
        // No temperature fallback: whisper.cpp samples those retries from a random generator
        // that each worker's state carries from job to job, so the same clip could come back
        // with different words depending on which worker took it and what it did before.
        // Greedy decoding is a function of the clip alone. It can loop on a phrase; a budget of
        // tokens per second of audio (speech runs at about 3-4) cuts such loops short.
        p.set_temperature_inc(0.0);
        if options.partial {
            p.set_single_segment(true);
            p.set_max_tokens(partial_token_budget(n_samples));
        } else {
            p.set_max_tokens(final_token_budget(n_samples));
        }
        let language = match (&options.language, self.model.is_multilingual()) {
            (_, false) => "en",
            (Some(lang), true) => lang.as_str(),
            (None, true) => "auto",
        };
        p.set_language(Some(language));
        p
    }
}

/// Reads the transcript out of `state`; `dtw` says whether it ran with DTW timings.
fn collect(model: &WhisperModelFile, state: &WhisperState, dtw: bool, n_samples: usize) -> Transcript {
    let eot = model.ctx.token_eot();
    let clip_end = n_samples as f64 / SAMPLE_RATE as f64;
    let mut text = String::new();
    let mut words: Vec<WordBuilder> = Vec::new();
    let (mut logprob_sum, mut n_tokens, mut no_speech) = (0.0f64, 0usize, 0.0f64);
    for segment in state.as_iter() {
        if let Ok(s) = segment.to_str_lossy() {
            text.push_str(&s);
        }
        no_speech = no_speech.max(f64::from(segment.no_speech_probability()));
        for i in 0..segment.n_tokens() {
            let Some(token) = segment.get_token(i) else { continue };
            if token.token_id() >= eot {
                continue;
            }
            let piece = token.to_bytes().unwrap_or_default().to_vec();
            let data = token.token_data();
            logprob_sum += f64::from(data.plog);
            n_tokens += 1;
            // DTW gives one instant per token, close to where the token ends; it is far
            // steadier than the timestamp-token heuristics (t0, t1), so it sets word ends.
            let t0 = data.t0 as f64 / 100.0;
            let t1 = if dtw && data.t_dtw >= 0 { data.t_dtw as f64 / 100.0 } else { data.t1 as f64 / 100.0 };
            let current = match words.last_mut() {
                Some(word) if piece.first() != Some(&b' ') => word,
                _ => {
                    words.push(WordBuilder { bytes: Vec::new(), start: t0, end: t1, probs: Vec::new() });
                    let last = words.len() - 1;
                    &mut words[last]
                }
            };
            current.bytes.extend_from_slice(&piece);
            current.end = t1;
            current.probs.push(data.p);
        }
    }
    let language = if model.is_multilingual() {
        whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("unknown").to_owned()
    } else {
        "en".to_owned()
    };
    if dtw {
        // Each word then runs from the end of the one before it.
        for i in 1..words.len() {
            words[i].start = words[i - 1].end;
        }
    }
    let words = words.into_iter().filter_map(|w| w.build(clip_end)).collect();
    let text = without_turn_marks(&text);
    let quality = DecodeQuality {
        avg_logprob: if n_tokens > 0 { logprob_sum / n_tokens as f64 } else { 0.0 },
        compression_ratio: loops::compression_ratio(&text),
        no_speech_prob: no_speech,
    };
    Transcript { text, words, language, quality }
}

/// A lone dash or `>>`: Whisper's subtitle and caption marks of a new speaker ("Chicago. - Oh,
/// I'm", "New Jersey. >> Hi, Sheila"), not words. Two hypotheses of one clip often differ only
/// by one, which stopped progressive finals' agreement there (a `>>` held "Hi, Sheila and
/// Texas" 1.5 s on the wide-band conversation), and the speaker labels already say who speaks.
fn is_turn_mark(token: &str) -> bool {
    let dashes = |c| matches!(c, '-' | '\u{2013}' | '\u{2014}');
    !token.is_empty() && (token.chars().all(dashes) || token.chars().all(|c| c == '>'))
}

/// `text` trimmed, without speakers' turn marks.
fn without_turn_marks(text: &str) -> String {
    let text = text.trim();
    if !text.split_whitespace().any(is_turn_mark) {
        return text.to_owned();
    }
    text.split_whitespace().filter(|t| !is_turn_mark(t)).collect::<Vec<_>>().join(" ")
}

struct WordBuilder {
    bytes: Vec<u8>,
    start: f64,
    end: f64,
    probs: Vec<f32>,
}

impl WordBuilder {
    fn build(self, clip_end: f64) -> Option<Word> {
        let word = String::from_utf8_lossy(&self.bytes).trim().to_owned();
        if word.is_empty() || is_turn_mark(&word) {
            return None;
        }
        let probability = self.probs.iter().sum::<f32>() / self.probs.len().max(1) as f32;
        let end = self.end.min(clip_end);
        let start = self.start.min(end);
        Some(Word { word, start, end, probability })
    }
}

/// Whether a decode runs on the state without DTW: partials that need no word times, and
/// text-only work.
fn skips_dtw(options: &DecodeOptions) -> bool {
    (options.partial && !options.partial_word_times) || options.text_only
}

impl WhisperBackend {
    /// Where the last decode's last segment ends by Whisper's own timestamp tokens (seconds):
    /// with `last_word_end`, which DTW sets, it says how much of the clip the decode heard.
    fn last_segment_end(&self, options: &DecodeOptions) -> f64 {
        let state = match self.quick_state.as_ref() {
            Some(quick) if skips_dtw(options) => quick,
            _ => &self.state,
        };
        let n = state.full_n_segments();
        state.get_segment(n - 1).map_or(0.0, |s| s.end_timestamp() as f64 / 100.0)
    }

    /// Replaces the state the options decode on with a new one. whisper.cpp's beam search
    /// draws each beam's candidate tokens from the token distribution with the first decoder's
    /// random generator, which is seeded only when a state is made and runs on from job to job:
    /// a looping clip of a file came back with different words on each request to one server.
    /// A new state starts that generator from its seed, so the retry depends on the clip alone.
    /// Making one takes a few milliseconds; loop retries are rare.
    fn renew_state(&mut self, options: &DecodeOptions) -> Result<(), AsrError> {
        match (self.quick_state.as_mut(), self.model.quick.as_ref()) {
            (Some(quick), Some(ctx)) if skips_dtw(options) => *quick = ctx.create_state()?,
            _ => self.state = self.model.ctx.create_state()?,
        }
        Ok(())
    }

    /// Runs one decode of `audio` (`n_samples` of it the clip itself, the rest padding) on the
    /// state the options call for: partials and text-only work on the one without DTW, except
    /// partials that need word times (progressive finals cut by them): whisper.cpp's
    /// timestamp-token times often put all of a partial's words at one instant, which blocked
    /// or misplaced the cuts (docs/BENCHMARKS.md, "Fifth session").
    fn decode(
        &mut self,
        options: &DecodeOptions,
        mut params: FullParams<'_, '_>,
        audio: &[f32],
        n_samples: usize,
        bias: Option<&TermBias>,
    ) -> Result<Transcript, AsrError> {
        let (state, dtw) = match self.quick_state.as_mut() {
            Some(quick) if skips_dtw(options) => (quick, false),
            _ => (&mut self.state, self.model.dtw),
        };
        // DTW aborts the process on a window too short for it (`engine::dtw_guard`); the guard
        // also applies the key terms' bias. Without DTW the bias alone filters the logits.
        let guard = dtw.then(|| DtwGuard::new(&self.model.ctx, audio.len(), bias));
        match (&guard, bias) {
            // SAFETY: `guard` and `bias` outlive `full` below, which calls their callbacks only
            // from within it, on this thread.
            (Some(guard), _) => unsafe { guard.install(&mut params) },
            (None, Some(bias)) => unsafe {
                params.set_filter_logits_callback(Some(TermBias::callback));
                params.set_filter_logits_callback_user_data(bias as *const TermBias as *mut std::os::raw::c_void);
            },
            (None, None) => {}
        }
        state.full(params, audio)?;
        Ok(collect(&self.model, state, dtw, n_samples))
    }
}

impl Transcriber for WhisperBackend {
    fn transcribe(&mut self, samples: &[f32], options: &DecodeOptions) -> Result<Transcript, AsrError> {
        let mut padded;
        let audio = if samples.len() < MIN_SAMPLES {
            padded = samples.to_vec();
            padded.resize(MIN_SAMPLES, 0.0);
            &padded[..]
        } else {
            samples
        };
        let bias = TermBias::new(&self.model.ctx, &options.keyterms);
        let greedy = self.params(options, audio.len(), SamplingStrategy::Greedy { best_of: 1 });
        let first = self.decode(options, greedy, audio, samples.len(), bias.as_ref())?;
        let accepted = if !loops::is_looping(&first) {
            first
        } else if options.partial {
            // Partials are disposable: a looping one is cleaned up, not decoded again.
            return Ok(loops::without_repeats(first));
        } else {
            crate::telemetry::record_loop_retry();
            // Beam search is far less prone to loop than greedy decoding; on a fresh state it
            // is a function of the clip alone too.
            self.renew_state(options)?;
            let beam_search = SamplingStrategy::BeamSearch { beam_size: 4, patience: -1.0 };
            let beam = self.params(options, audio.len(), beam_search);
            let second = self.decode(options, beam, audio, samples.len(), bias.as_ref())?;
            if loops::is_looping(&second) {
                loops::without_repeats(second)
            } else {
                second
            }
        };
        let Some(speech_until) = options.speech_until else { return Ok(accepted) };
        let heard = last_word_end(&accepted).max(self.last_segment_end(options));
        if !stops_early(&accepted, heard, speech_until) {
            return Ok(accepted);
        }
        // The fitted encoder window can end a decode mid-clip: a continuation of 7.6 s came back
        // without its last 2 s of speech, which the whole 30 s window reads. That window costs
        // about three times as much, so only a decode the VAD shows stopped early pays for it.
        crate::telemetry::record_tail_retry();
        tracing::debug!(heard, speech_until, text = %accepted.text, "decode stopped before the speech ended: reading the whole window");
        let mut whole = self.params(options, audio.len(), SamplingStrategy::Greedy { best_of: 1 });
        whole.set_audio_ctx(CTX_MAX as i32);
        let retry = self.decode(options, whole, audio, samples.len(), bias.as_ref())?;
        let heard_more = retry.words.len() > accepted.words.len()
            && last_word_end(&retry) > last_word_end(&accepted) + TAIL_UNHEARD / 2.0;
        tracing::debug!(heard_more, text = %retry.text, "whole-window decode");
        Ok(if heard_more && !loops::is_looping(&retry) { retry } else { accepted })
    }

    fn reset(&mut self) -> Result<(), AsrError> {
        let fresh = self.model.backend(self.threads as usize)?;
        *self = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{audio_ctx_for, is_language, language_name, without_turn_marks, CTX_MIN, PARTIAL_CTX_MIN};

    #[test]
    fn a_speaker_turn_mark_is_not_kept_but_hyphens_are() {
        let text = " from Chicago. - Oh, I'm originally from Chicago also. \u{2014} Well, a well-known one - ";
        let clean = "from Chicago. Oh, I'm originally from Chicago also. Well, a well-known one";
        assert_eq!(without_turn_marks(text), clean);
        let text = "This is Diana New Jersey. >> Hi, Sheila and Texas. > x>y";
        assert_eq!(without_turn_marks(text), "This is Diana New Jersey. Hi, Sheila and Texas. x>y");
        assert_eq!(without_turn_marks(" Ask not! "), "Ask not!");
    }

    /// Found by the listen_query fuzz target: `language=%00` panicked inside whisper-rs, and a
    /// language of 1 KiB or more crashed the process inside whisper.cpp.
    #[test]
    fn a_nul_byte_is_no_language() {
        assert!(is_language("de") && !is_language("xx"));
        assert!(!is_language("de\0") && !is_language("\0"));
        assert_eq!((language_name("en"), language_name("e\0n")), (Some("english"), None));
        assert!(is_language("haitian creole"), "full names are languages too");
        assert!(!is_language(&"x".repeat(2000)), "long strings never reach whisper.cpp");
    }

    #[test]
    fn audio_context_follows_clip_length() {
        assert_eq!(audio_ctx_for(16_000, CTX_MIN), 384); // the floor
        assert_eq!(audio_ctx_for(16_000, PARTIAL_CTX_MIN), 256);
        assert_eq!(audio_ctx_for(16_000 * 8, CTX_MIN), 640); // 400 + 100 + 96 = 596 -> 640
        assert_eq!(audio_ctx_for(16_000 * 40, CTX_MIN), 1500);
        assert_eq!(audio_ctx_for(16_000 * 15, CTX_MIN), 960); // 750 + 100 (not 187) + 96 = 946 -> 960
    }
}
