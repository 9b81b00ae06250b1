//! The OpenAI-compatible file API: `POST /v1/audio/transcriptions`, `POST /v1/audio/translations`
//! and `GET /v1/models`, as OpenAI's official clients call them (multipart form in, the response
//! formats and error shape they parse out). Files go through the same decoding, VAD, Whisper
//! and speaker stages as `speech-service transcribe`.

use std::convert::Infallible;

use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::Stream;

use crate::protocol::openai::{
    DiarizedBody, ErrorBody, ErrorObject, Model, ModelList, StreamError, StreamEvent, TextBody, VerboseBody,
    VerboseSegment, VerboseWord,
};

use super::state::AppState;
use crate::audio::decode::FileDecoder;
use crate::config::Config;
use crate::domain::{DecodeQuality, Segment};
use crate::engine::asr::DecodeOptions;
use crate::offline::{
    render, transcribe_channels, transcribe_utterances, Format, OfflineError, Transcription, Utterances,
};
use crate::protocol::vocabulary::prompt_tail;

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: &'static str,
}

impl OpenAiError {
    pub(super) fn invalid(param: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        let (status, kind, param) = (StatusCode::BAD_REQUEST, "invalid_request_error", Some(param));
        Self { status, message: message.into(), kind, param, code }
    }

    fn server(message: impl Into<String>) -> Self {
        let (status, kind, code) = (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal_error");
        Self { status, message: message.into(), kind, param: None, code }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let error = ErrorObject {
            message: self.message,
            kind: self.kind.to_owned(),
            param: self.param.map(str::to_owned),
            code: Some(self.code.to_owned()),
        };
        (self.status, Json(ErrorBody { error })).into_response()
    }
}

/// What a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
    DiarizedJson,
}

impl ResponseFormat {
    /// Whether the response carries each word's time: WebVTT's word tags (as `transcribe`
    /// renders them), and `verbose_json`'s `words` when `words_asked`. Only those need Whisper's
    /// word alignment; the rest (speakers included, as for `transcribe`) is text.
    fn has_word_timings(self, words_asked: bool) -> bool {
        match self {
            Self::Vtt => Format::Vtt.has_word_timings(),
            Self::VerboseJson => words_asked,
            _ => false,
        }
    }

    fn parse(value: &str) -> Result<Self, OpenAiError> {
        Ok(match value {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            "diarized_json" => Self::DiarizedJson,
            other => {
                let message = format!(
                    "response_format must be json, text, srt, vtt, verbose_json or diarized_json, got `{other}`"
                );
                return Err(OpenAiError::invalid("response_format", "invalid_value", message));
            }
        })
    }
}

/// The form fields of a request.
#[derive(Debug, Default)]
struct FileRequest {
    file: Option<(Vec<u8>, Option<String>)>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    word_timestamps: bool,
    stream: bool,
    multichannel: bool,
}

async fn read_form(mut form: Multipart) -> Result<FileRequest, OpenAiError> {
    let mut request = FileRequest::default();
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        OpenAiError { status, ..OpenAiError::invalid("file", "invalid_form", e.body_text()) }
    };
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().map(str::to_owned);
            request.file = Some((field.bytes().await.map_err(bad_form)?.to_vec(), file_name));
            continue;
        }
        let value = field.text().await.map_err(bad_form)?;
        match name.as_str() {
            "model" => request.model = Some(value),
            "language" if !value.is_empty() => request.language = Some(value),
            "prompt" => request.prompt = prompt_tail(&value),
            "response_format" => request.response_format = Some(value),
            "timestamp_granularities[]" | "timestamp_granularities" => request.word_timestamps |= value == "word",
            "stream" => request.stream = value == "true",
            "multichannel" => request.multichannel = value == "true",
            // `temperature` and others are accepted; decoding is greedy (docs/API.md).
            _ => {}
        }
    }
    Ok(request)
}

/// Whether the task translates to English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Transcribe,
    Translate,
}

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(State(state): State<AppState>, form: FormResult) -> Result<Response, OpenAiError> {
    handle(state, form.map_err(not_a_form)?, Task::Transcribe).await
}

/// `POST /v1/audio/translations`: English text from speech in any language.
pub async fn translations(State(state): State<AppState>, form: FormResult) -> Result<Response, OpenAiError> {
    handle(state, form.map_err(not_a_form)?, Task::Translate).await
}

/// The multipart body, or why the request is not one.
type FormResult = Result<Multipart, axum::extract::multipart::MultipartRejection>;

/// A body that is not `multipart/form-data` gets OpenAI's error shape, not axum's plain text.
fn not_a_form(rejection: axum::extract::multipart::MultipartRejection) -> OpenAiError {
    let message = format!("the request must be multipart/form-data with a `file` field: {}", rejection.body_text());
    OpenAiError { status: rejection.status(), ..OpenAiError::invalid("file", "invalid_form", message) }
}

fn check_model(state: &AppState, model: Option<&str>) -> Result<(), OpenAiError> {
    let loaded = state.shared.engines.asr.model();
    match model {
        None => Err(OpenAiError::invalid("model", "missing_field", "the `model` field is required (e.g. whisper-1)")),
        Some("whisper-1") => Ok(()),
        Some(name) if name == loaded => Ok(()),
        Some(name) => Err(OpenAiError {
            status: StatusCode::NOT_FOUND,
            code: "model_not_found",
            ..OpenAiError::invalid(
                "model",
                "",
                format!("model `{name}` is not loaded; this server runs {loaded} (or ask for whisper-1)"),
            )
        }),
    }
}

async fn handle(state: AppState, form: Multipart, task: Task) -> Result<Response, OpenAiError> {
    let request = read_form(form).await?;
    check_model(&state, request.model.as_deref())?;
    let format = ResponseFormat::parse(request.response_format.as_deref().unwrap_or("json"))?;
    let multilingual = state.shared.engines.asr.is_multilingual();
    if task == Task::Translate && !multilingual {
        let message =
            format!("translation needs a multilingual model; {} is English-only", state.shared.engines.asr.model());
        return Err(OpenAiError::invalid("model", "translation_unavailable", message));
    }
    let language = match (&request.language, multilingual) {
        (Some(lang), true) if !crate::engine::whisper::is_language(lang) => {
            return Err(OpenAiError::invalid(
                "language",
                "invalid_value",
                format!("`{lang}` is not a Whisper language code"),
            ))
        }
        (Some(lang), false) if lang != "en" => {
            let message = format!("language `{lang}` is not available: the model is English-only (use en)");
            return Err(OpenAiError::invalid("language", "invalid_value", message));
        }
        (language, _) => language.clone(),
    };
    let Some((bytes, file_name)) = request.file else {
        return Err(OpenAiError::invalid("file", "missing_field", "the `file` field is required"));
    };
    let text_only = !format.has_word_timings(request.word_timestamps);
    let translate = task == Task::Translate;
    let options = DecodeOptions { language, prompt: request.prompt, translate, text_only, ..Default::default() };
    if request.multichannel {
        let config = state.config();
        let words = request.word_timestamps;
        return multichannel(&state, &config, (bytes, file_name), request.stream, (format, task, options, words)).await;
    }
    let decoder = open_audio(bytes, file_name)?;
    let diarize = format == ResponseFormat::DiarizedJson;
    if request.stream && matches!(format, ResponseFormat::Json | ResponseFormat::Text | ResponseFormat::DiarizedJson) {
        return Ok(stream(state, decoder, options, diarize).into_response());
    }
    let config = state.config();
    let engines = &state.shared.engines;
    let utterances = Utterances::of(decoder, engines, &config);
    let file = transcribe_utterances(utterances, engines, &config, options, diarize, &mut |_, _| {})
        .await
        .map_err(transcription_failed)?;
    Ok(respond(&file.transcription, format, request.word_timestamps, file.duration, task))
}

/// A file transcribed channel by channel (`multichannel=true`): the channel is the speaker.
async fn multichannel(
    state: &AppState,
    config: &Config,
    (bytes, file_name): (Vec<u8>, Option<String>),
    stream: bool,
    (format, task, options, words): (ResponseFormat, Task, DecodeOptions, bool),
) -> Result<Response, OpenAiError> {
    if stream {
        let message = "stream is not available with multichannel: the channels are transcribed one after another";
        return Err(OpenAiError::invalid("stream", "invalid_parameter", message));
    }
    let channels = open_audio(bytes.clone(), file_name.clone())?.channels();
    let limit = config.limits.max_channels as usize;
    if !(2..=limit).contains(&channels) {
        let message = format!("multichannel needs audio of 2 to {limit} channels; the file has {channels}");
        return Err(OpenAiError::invalid("multichannel", "invalid_parameter", message));
    }
    let extension = extension(file_name.as_deref());
    let open = || FileDecoder::from_bytes(bytes.clone(), extension.as_deref());
    let file = transcribe_channels(&open, channels, &state.shared.engines, config, options)
        .await
        .map_err(transcription_failed)?;
    Ok(respond(&file.transcription, format, words, file.duration, task))
}

/// Opens the upload as audio (its container and codec are known before any work starts).
fn open_audio(bytes: Vec<u8>, file_name: Option<String>) -> Result<FileDecoder, OpenAiError> {
    FileDecoder::from_bytes(bytes, extension(file_name.as_deref()).as_deref()).map_err(invalid_audio)
}

/// The upload's file name extension: a hint for the decoder.
fn extension(file_name: Option<&str>) -> Option<String> {
    file_name.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_owned())
}

fn invalid_audio(e: crate::audio::AudioError) -> OpenAiError {
    OpenAiError::invalid("file", "invalid_audio", crate::logging::chain(&e))
}

/// Audio that breaks off or goes bad partway is the client's; the rest is ours.
fn transcription_failed(e: OfflineError) -> OpenAiError {
    match e {
        OfflineError::Audio(e) => invalid_audio(e),
        e => OpenAiError::server(crate::logging::chain(&e)),
    }
}

fn full_text(t: &Transcription) -> String {
    t.segments.iter().map(|s| s.text.trim()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A segment as `verbose_json` has it, with its decode's figures (a segment without them, which
/// no decode made, reports a certain, uncompressed, spoken segment).
fn verbose_segment(id: usize, s: &Segment, quality: Option<&DecodeQuality>) -> VerboseSegment {
    let quality = quality.copied().unwrap_or(DecodeQuality { compression_ratio: 1.0, ..Default::default() });
    VerboseSegment {
        id,
        seek: 0,
        start: s.start,
        end: s.end,
        text: s.text.clone(),
        tokens: Vec::new(),
        temperature: 0.0,
        avg_logprob: quality.avg_logprob,
        compression_ratio: quality.compression_ratio,
        no_speech_prob: quality.no_speech_prob,
    }
}

fn language_name(t: &Transcription, task: Task) -> String {
    let code = match task {
        Task::Translate => "en",
        Task::Transcribe => t.segments.first().map_or("en", |s| s.language.as_str()),
    };
    crate::engine::whisper::language_name(code).unwrap_or(code).to_owned()
}

fn respond(t: &Transcription, format: ResponseFormat, words: bool, duration: f64, task: Task) -> Response {
    let text = full_text(t);
    let task_name = if task == Task::Translate { "translate" } else { "transcribe" };
    match format {
        ResponseFormat::Json => Json(TextBody { text }).into_response(),
        ResponseFormat::Text => plain(text + "\n", "text/plain; charset=utf-8"),
        ResponseFormat::Srt => plain(render(t, Format::Srt, "file"), "application/x-subrip"),
        ResponseFormat::Vtt => plain(render(t, Format::Vtt, "file"), "text/vtt"),
        ResponseFormat::VerboseJson => {
            let segments: Vec<VerboseSegment> = (t.segments.iter().enumerate())
                .map(|(id, s)| verbose_segment(id, s, t.quality.get(&s.segment_id)))
                .collect();
            let words = words.then(|| {
                let word = |w: &crate::domain::Word| VerboseWord {
                    word: w.word.trim().to_owned(),
                    start: w.start,
                    end: w.end,
                };
                t.segments.iter().flat_map(|s| &s.words).map(word).collect()
            });
            let (task, language) = (task_name.to_owned(), language_name(t, task));
            Json(VerboseBody { task, language, duration, text, segments, words }).into_response()
        }
        ResponseFormat::DiarizedJson => {
            let segments = diarized_segments(t);
            Json(DiarizedBody { task: task_name.to_owned(), duration, text, segments }).into_response()
        }
    }
}

/// The speaker-labelled segments of `diarized_json`, shaped as OpenAI's
/// `transcript.text.segment` events (which `stream=true` sends one by one).
fn diarized_segments(t: &Transcription) -> Vec<StreamEvent> {
    let segment = |(i, s): (usize, &Segment)| StreamEvent::Segment {
        id: format!("seg_{i:03}"),
        start: s.start,
        end: s.end,
        text: s.text.trim().to_owned(),
        speaker: s.speaker.clone(),
    };
    t.segments.iter().enumerate().map(segment).collect()
}

/// One server-sent event.
fn sse(event: &StreamEvent) -> Event {
    Event::default().data(serde_json::to_string(event).expect("events always serialise"))
}

fn plain(body: String, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `stream=true`: server-sent events as OpenAI sends them, a `transcript.text.delta` per
/// utterance as it is recognised, then `transcript.text.done` with the whole text. With
/// `diarized_json` (`diarize`), the speaker-labelled `transcript.text.segment` events come
/// before `done`, once the file's speakers are settled (they are clustered over the whole file).
fn stream(
    state: AppState,
    decoder: FileDecoder,
    options: DecodeOptions,
    diarize: bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // One delta per utterance: this holds those of the longest upload (25 MB of 32 kbit/s MP3,
    // about 2 000 utterances), so a reader that pauses loses none; past it a delta is left out
    // and the closing `done` event still carries the whole text.
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(4096);
    tokio::spawn(async move {
        let config = state.config();
        let mut first = true;
        let deltas = tx.clone();
        let mut on_text = move |transcript: &crate::domain::Transcript, _end: f64| {
            let text = transcript.text.trim();
            if text.is_empty() {
                return;
            }
            let delta = if first { text.to_owned() } else { format!(" {text}") };
            first = false;
            let _ = deltas.try_send(sse(&StreamEvent::Delta { delta }));
        };
        let engines = &state.shared.engines;
        let utterances = Utterances::of(decoder, engines, &config);
        let done = match transcribe_utterances(utterances, engines, &config, options, diarize, &mut on_text).await {
            Ok(file) => {
                let segments = if diarize { diarized_segments(&file.transcription) } else { Vec::new() };
                for segment in &segments {
                    let _ = tx.send(sse(segment)).await;
                }
                StreamEvent::Done { text: full_text(&file.transcription) }
            }
            Err(e) => {
                let error = StreamError { message: crate::logging::chain(&e), kind: "server_error".into() };
                StreamEvent::Error { error }
            }
        };
        let _ = tx.send(sse(&done)).await;
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(events)
}

/// `GET /v1/models`: the loaded model, under its own name and as `whisper-1`.
pub async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let loaded = state.shared.engines.asr.model();
    Json(ModelList { object: "list".into(), data: vec![Model::named("whisper-1"), Model::named(loaded)] })
}
