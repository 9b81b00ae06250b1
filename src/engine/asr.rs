//! The ASR engine: worker threads that own Whisper, fed by a bounded two-lane queue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::queue::{JobQueue, PushError};
use super::stats::WorkerStats;
use crate::domain::{Transcript, SAMPLE_RATE};

/// How to decode a clip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodeOptions {
    /// A language code, or `None` to detect it (multilingual models only).
    pub language: Option<String>,
    /// Partials skip word timings and temperature fallback: they only need to be quick.
    pub partial: bool,
    /// A partial with word times after all (by DTW, as a final's): progressive finals cut the
    /// open utterance between its words.
    pub partial_word_times: bool,
    /// Text that sets the decoder's context: spellings, names, style (Whisper's initial prompt).
    pub prompt: Option<String>,
    /// Words to favour where the audio allows them (`engine::bias`).
    pub keyterms: Vec<String>,
    /// Translate to English instead of transcribing (multilingual models only).
    pub translate: bool,
    /// Only the text (and the utterance's bounds) is wanted, not precise word timings: the
    /// clip is decoded without the DTW alignment pass (about a sixth of a final's cost). Word
    /// times are then whisper.cpp's coarse timestamp-token estimates.
    pub text_only: bool,
    /// A continuation's final (a progressive cut's rest, heard after its lead-in): seconds into
    /// the clip where its speech ends by the VAD. A decode whose words stop over 1.5 s before
    /// that is read again with the whole encoder window (`engine::whisper`).
    pub speech_until: Option<f64>,
}

/// What a stream's clips are decoded with, whatever the clip: its language and its vocabulary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamContext {
    /// A language code, or `None` to detect it (multilingual models only).
    pub language: Option<String>,
    /// The recogniser's initial prompt (the stream's prompt).
    pub prompt: Option<String>,
    /// The stream's key terms, favoured in every decode (`engine::bias`).
    pub keyterms: Vec<String>,
}

impl StreamContext {
    /// How to decode one of the stream's clips, a partial or not.
    fn decode_options(self, partial: bool) -> DecodeOptions {
        let Self { language, prompt, keyterms } = self;
        DecodeOptions { language, prompt, keyterms, partial, ..Default::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("speech recognition is overloaded: the queue stayed full for {0:?}")]
    Overloaded(Duration),
    #[error("speech recognition is shutting down")]
    ShuttingDown,
    #[error("speech recognition failed")]
    Whisper(#[from] whisper_rs::WhisperError),
    #[error("cannot load the Whisper model {}", path.display())]
    Load {
        path: std::path::PathBuf,
        #[source]
        source: whisper_rs::WhisperError,
    },
    #[error("the Whisper model path {} is not UTF-8", .0.display())]
    PathNotUtf8(std::path::PathBuf),
    #[error("the recognition worker stopped before answering")]
    WorkerLost,
    #[error("the recognition worker failed on this clip and was restarted")]
    Panicked,
}

/// A model that transcribes 16 kHz mono clips. Implementations run on engine threads only.
pub trait Transcriber: Send {
    fn transcribe(&mut self, samples: &[f32], options: &DecodeOptions) -> Result<Transcript, AsrError>;
    /// Starts over with fresh decoding state (the model stays loaded), after a panic left the
    /// old state in doubt.
    fn reset(&mut self) -> Result<(), AsrError> {
        Ok(())
    }
}

/// Why a clip is decoded; decides its lane and how it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A quick hypothesis of an open utterance.
    Partial,
    /// A full decode of an open utterance at a pause, ready in case the pause ends it. It waits
    /// in the partial lane (so only spare capacity runs it) ahead of every partial.
    Speculative,
    Final,
    /// A clip of a file (`offline`, the file API): final lane, behind live finals due soon, and
    /// left out of the live finals' queue-wait figures.
    File,
}

struct Job {
    samples: Vec<f32>,
    options: DecodeOptions,
    kind: JobKind,
    /// When the job was queued, or (a final of a client ahead of real time) when its audio
    /// was due, on the queue's clock: a final's wait is counted from the later of the two.
    due_ms: u64,
    reply: oneshot::Sender<Result<Transcript, AsrError>>,
}

/// How much later than a live final a file's clip is served (see [`AsrHandle::transcribe`]).
pub const FILE_DEFERRAL_MS: u64 = 1000;

/// Where a job's transcript arrives; dropping it withdraws the job if no worker took it yet.
pub type Reply = oneshot::Receiver<Result<Transcript, AsrError>>;

/// Counters every worker updates; read by statistics and benchmarks.
#[derive(Debug, Default)]
pub struct AsrStats {
    pub worker: WorkerStats,
    pub partial_jobs: AtomicU64,
    pub skipped_stale: AtomicU64,
    pub refused_partials: AtomicU64,
    pub speculative_jobs: AtomicU64,
    /// Worker time spent on finals (and speculative decodes), the work admission plans for.
    pub final_busy_micros: AtomicU64,
    /// When recent finals waited in the queue, and for how long.
    pub final_waits: RecentWaits,
    /// Audio transcribed, for the real-time factor.
    pub audio_micros: AtomicU64,
}

/// Delays of the last few hundred finals with when they happened: queue waits here, delays
/// after the end of an utterance in admission control.
#[derive(Debug, Default)]
pub struct RecentWaits {
    waits: std::sync::Mutex<std::collections::VecDeque<(Instant, f64)>>,
}

impl RecentWaits {
    const KEEP: usize = 256;

    pub fn record(&self, wait: Duration) {
        let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        if waits.len() == Self::KEEP {
            waits.pop_front();
        }
        waits.push_back((Instant::now(), wait.as_secs_f64()));
    }

    /// The 90th percentile of waits within the last `window`; `None` when there were none.
    pub fn p90_within(&self, window: Duration) -> Option<f64> {
        let waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        let mut recent: Vec<f64> = waits.iter().filter(|(at, _)| at.elapsed() <= window).map(|w| w.1).collect();
        recent.sort_by(f64::total_cmp);
        super::stats::percentile(&recent, 90.0)
    }
}

/// The sessions' cheap handle on the engine.
#[derive(Clone)]
pub struct AsrHandle {
    queue: Arc<JobQueue<Job>>,
    stats: Arc<AsrStats>,
    model: Arc<str>,
    multilingual: bool,
    workers: usize,
    /// Live streams open on the engine (`live_stream`): file work yields to them while any are.
    live_streams: Arc<AtomicUsize>,
}

/// A live stream counted by `AsrHandle::live_stream` until dropped.
pub struct LiveStream(Arc<AtomicUsize>);

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Queue and engine sizing.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub final_queue: usize,
    pub partial_queue: usize,
    /// Workers that may run partials at once; `None`: all but one.
    pub partial_workers: Option<usize>,
}

impl AsrHandle {
    /// Starts one worker thread per backend, all pulling from one queue.
    pub fn spawn(backends: Vec<Box<dyn Transcriber>>, model: &str, multilingual: bool, opts: &EngineOptions) -> Self {
        // With several workers one is kept from partials by default, free for the next final.
        let slots = opts.partial_workers.unwrap_or(backends.len().saturating_sub(1)).max(1);
        let queue = Arc::new(JobQueue::new(opts.final_queue, opts.partial_queue).with_partial_slots(slots));
        let stats = Arc::new(AsrStats::default());
        let workers = backends.len();
        for (i, backend) in backends.into_iter().enumerate() {
            let (queue, stats) = (queue.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("asr-worker-{i}"))
                .spawn(move || worker_loop(backend, &queue, &stats))
                .expect("spawning a thread only fails when the OS is out of resources");
        }
        Self { queue, stats, model: model.into(), multilingual, workers, live_streams: Arc::default() }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    pub fn stats(&self) -> &AsrStats {
        &self.stats
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Finals waiting for a worker.
    pub fn final_queue_depth(&self) -> usize {
        self.queue.final_depth()
    }

    /// Worker threads serving the queue.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Counts a live stream until the guard is dropped.
    pub fn live_stream(&self) -> LiveStream {
        self.live_streams.fetch_add(1, Ordering::Relaxed);
        LiveStream(self.live_streams.clone())
    }

    /// Whether any live stream is open: file work then yields to it.
    pub fn serves_live_streams(&self) -> bool {
        self.live_streams.load(Ordering::Relaxed) > 0
    }

    fn job(&self, samples: Vec<f32>, context: StreamContext, kind: JobKind, key: u64) -> (Job, Reply) {
        self.job_with(samples, context.decode_options(kind == JobKind::Partial), kind, key)
    }

    fn job_with(&self, samples: Vec<f32>, options: DecodeOptions, kind: JobKind, key: u64) -> (Job, Reply) {
        let (reply, rx) = oneshot::channel();
        (Job { samples, options, kind, due_ms: key.max(super::queue::clock_ms()), reply }, rx)
    }

    /// Queues a job in the final lane, waiting up to `timeout` for room.
    async fn push_final(&self, key: u64, job: Job, timeout: Duration) -> Result<(), AsrError> {
        match self.queue.push_final(key, job, timeout).await {
            Ok(()) => Ok(()),
            Err((PushError::Full, _)) => Err(AsrError::Overloaded(timeout)),
            Err((PushError::Closed, _)) => Err(AsrError::ShuttingDown),
        }
    }

    /// Asks for a partial (with word times when `word_times`); `None` when the partial lane is
    /// full (the request is simply skipped). Partials with smaller `key`s go first: sessions
    /// pass when they last had one.
    pub fn try_partial(&self, samples: Vec<f32>, context: StreamContext, word_times: bool, key: u64) -> Option<Reply> {
        let options = DecodeOptions { partial_word_times: word_times, ..context.decode_options(true) };
        let (job, rx) = self.job_with(samples, options, JobKind::Partial, 0);
        match self.queue.try_push_partial(key, job) {
            Ok(_) => Some(rx),
            Err(_) => {
                self.stats.refused_partials.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Asks for a full decode of an open utterance at a pause, ahead of every partial but behind
    /// every final; `None` when the partial lane is full. Dropping the receiver withdraws it;
    /// [`promote`](Self::promote) with the ticket turns it into a final.
    pub fn try_speculative(&self, samples: Vec<f32>, context: StreamContext) -> Option<(Reply, u64)> {
        let (job, rx) = self.job(samples, context, JobKind::Speculative, 0);
        let ticket = self.queue.try_push_speculative(job).ok()?;
        self.stats.speculative_jobs.fetch_add(1, Ordering::Relaxed);
        Some((rx, ticket))
    }

    /// The pause became the end of its utterance: a speculative decode still waiting moves to
    /// the final lane with `key`. One already running or done needs nothing.
    pub fn promote(&self, ticket: u64, key: u64) {
        self.queue.promote(ticket, key);
    }

    /// Queues a final, waiting up to `timeout` for room; the receiver yields its transcript.
    /// Finals with smaller `key`s go first: sessions pass when the utterance's audio was due in
    /// real time (see `queue`).
    pub async fn submit_final(
        &self,
        samples: Vec<f32>,
        context: StreamContext,
        key: u64,
        timeout: Duration,
    ) -> Result<Reply, AsrError> {
        self.submit_final_with(samples, context.decode_options(false), key, timeout).await
    }

    /// Queues the final of a continuation (`samples` start with its lead-in), whose speech ends
    /// `speech_until` seconds into the clip by the VAD; otherwise as [`submit_final`](Self::submit_final).
    pub async fn submit_continuation(
        &self,
        samples: Vec<f32>,
        context: StreamContext,
        speech_until: f64,
        key: u64,
        timeout: Duration,
    ) -> Result<Reply, AsrError> {
        let options = DecodeOptions { speech_until: Some(speech_until), ..context.decode_options(false) };
        self.submit_final_with(samples, options, key, timeout).await
    }

    async fn submit_final_with(
        &self,
        samples: Vec<f32>,
        options: DecodeOptions,
        key: u64,
        timeout: Duration,
    ) -> Result<Reply, AsrError> {
        let (job, rx) = self.job_with(samples, options, JobKind::Final, key);
        self.push_final(key, job, timeout).await?;
        Ok(rx)
    }

    /// Transcribes one clip of a file as a final and waits for it (offline and file API use).
    /// File work yields to live streams: while any is open its key is [`FILE_DEFERRAL_MS`]
    /// later than now, so a live final due within that time goes first, no file job waits
    /// longer than that behind live ones, and (being ahead of the clock) it runs only on a
    /// worker that partials may use. With no live stream it is keyed now and any worker takes it.
    pub async fn transcribe(
        &self,
        samples: Vec<f32>,
        options: DecodeOptions,
        timeout: Duration,
    ) -> Result<Transcript, AsrError> {
        let deferral = if self.serves_live_streams() { FILE_DEFERRAL_MS } else { 0 };
        let key = super::queue::clock_ms() + deferral;
        let (job, rx) = self.job_with(samples, DecodeOptions { partial: false, ..options }, JobKind::File, key);
        self.push_final(key, job, timeout).await?;
        rx.await.map_err(|_| AsrError::WorkerLost)?
    }

    /// Lets queued jobs finish, then stops the workers.
    pub fn close(&self) {
        self.queue.close();
    }
}

fn worker_loop(mut backend: Box<dyn Transcriber>, queue: &JobQueue<Job>, stats: &AsrStats) {
    let _alive = stats.worker.alive_guard();
    while let Some((job, _slot)) = queue.pop_blocking(Duration::from_secs(1)) {
        // A partial whose session has moved on is not worth the compute.
        if job.reply.is_closed() {
            stats.skipped_stale.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if job.kind == JobKind::Final {
            let waited = super::queue::clock_ms().saturating_sub(job.due_ms);
            stats.final_waits.record(Duration::from_millis(waited));
        }
        let started = Instant::now();
        let result = super::supervise::run("asr", &stats.worker, || {
            super::supervise::inject_fault("asr");
            backend.transcribe(&job.samples, &job.options)
        });
        let result = match result {
            Some(result) => result,
            None => {
                if let Err(e) = backend.reset() {
                    tracing::error!(error = %crate::logging::chain(&e), "the recognition worker could not start over");
                    let _ = job.reply.send(Err(AsrError::Panicked));
                    return;
                }
                Err(AsrError::Panicked)
            }
        };
        let took = started.elapsed();
        stats.worker.record(took);
        let kind = match job.kind {
            JobKind::Partial => "partial",
            JobKind::Speculative => "speculative",
            JobKind::Final => "final",
            JobKind::File => "file",
        };
        crate::telemetry::record_inference("asr", kind, took.as_secs_f64());
        stats.audio_micros.fetch_add(job.samples.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE), Ordering::Relaxed);
        if job.kind == JobKind::Partial {
            stats.partial_jobs.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.final_busy_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        }
        if let Err(e) = &result {
            tracing::warn!(error = %crate::logging::chain(e), "transcription failed");
        }
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes the clip length as text: enough to check routing without a model.
    struct LengthEcho;

    impl Transcriber for LengthEcho {
        fn transcribe(&mut self, samples: &[f32], options: &DecodeOptions) -> Result<Transcript, AsrError> {
            let kind = if options.partial { "partial" } else { "final" };
            Ok(Transcript { text: format!("{kind} {}", samples.len()), ..Default::default() })
        }
    }

    fn handle() -> AsrHandle {
        let opts = EngineOptions { final_queue: 2, partial_queue: 1, partial_workers: None };
        AsrHandle::spawn(vec![Box::new(LengthEcho)], "echo", false, &opts)
    }

    #[tokio::test]
    async fn finals_and_partials_come_back_to_their_callers() {
        let asr = handle();
        let t = asr.transcribe(vec![0.0; 10], DecodeOptions::default(), Duration::from_secs(1)).await.unwrap();
        assert_eq!(t.text, "final 10");
        let rx = asr.try_partial(vec![0.0; 3], StreamContext::default(), false, 0).expect("queue has room");
        assert_eq!(rx.await.unwrap().unwrap().text, "partial 3");
        assert_eq!(asr.stats().worker.snapshot().jobs, 2);
    }

    #[tokio::test]
    async fn closed_engine_refuses_new_finals() {
        let asr = handle();
        asr.close();
        let err = asr.transcribe(vec![0.0; 10], DecodeOptions::default(), Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, AsrError::ShuttingDown));
    }

    /// Records the clip lengths it decodes, in order; the first waits until `gate` opens.
    struct Recorder {
        order: Arc<std::sync::Mutex<Vec<usize>>>,
        gate: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl Transcriber for Recorder {
        fn transcribe(&mut self, samples: &[f32], _: &DecodeOptions) -> Result<Transcript, AsrError> {
            if let Some(gate) = self.gate.take() {
                let _ = gate.recv();
            }
            self.order.lock().unwrap().push(samples.len());
            Ok(Transcript::default())
        }
    }

    #[tokio::test]
    async fn a_file_clip_waits_behind_a_live_final_due_now() {
        let (open, gate) = std::sync::mpsc::channel();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorder = Recorder { order: order.clone(), gate: Some(gate) };
        let opts = EngineOptions { final_queue: 2, partial_queue: 1, partial_workers: None };
        let asr = AsrHandle::spawn(vec![Box::new(recorder)], "rec", false, &opts);
        let _live = asr.live_stream();
        let wait = Duration::from_secs(1);
        let busy = asr
            .submit_final(vec![0.0; 1], StreamContext::default(), super::super::queue::clock_ms(), wait)
            .await
            .unwrap();
        while asr.queue_depth() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let file = tokio::spawn({
            let asr = asr.clone();
            async move { asr.transcribe(vec![0.0; 2], DecodeOptions::default(), wait).await }
        });
        while asr.queue_depth() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let live = asr
            .submit_final(vec![0.0; 3], StreamContext::default(), super::super::queue::clock_ms(), wait)
            .await
            .unwrap();
        open.send(()).unwrap();
        for rx in [busy, live] {
            rx.await.unwrap().unwrap();
        }
        file.await.unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), [1, 3, 2], "the live final went ahead of the file's clip");
    }

    /// Counts the decodes running at once, each taking 100 ms.
    struct Overlap {
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Transcriber for Overlap {
        fn transcribe(&mut self, _: &[f32], _: &DecodeOptions) -> Result<Transcript, AsrError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(Transcript::default())
        }
    }

    /// The most file clips decoded at once on two workers when four are sent together.
    async fn files_at_once(live: bool) -> usize {
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let backend = || Box::new(Overlap { running: running.clone(), most: most.clone() }) as Box<dyn Transcriber>;
        let opts = EngineOptions { final_queue: 8, partial_queue: 1, partial_workers: None };
        let asr = AsrHandle::spawn(vec![backend(), backend()], "overlap", false, &opts);
        let _live = live.then(|| asr.live_stream());
        let clips = (0..4).map(|_| asr.transcribe(vec![0.0; 10], DecodeOptions::default(), Duration::from_secs(5)));
        for result in futures_util::future::join_all(clips).await {
            result.unwrap();
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn file_clips_take_every_worker_only_while_no_live_stream_is_open() {
        assert_eq!(files_at_once(false).await, 2, "an idle server decodes files on both workers");
        assert_eq!(files_at_once(true).await, 1, "beside a live stream, one worker stays free for its finals");
    }

    #[test]
    fn a_live_stream_counts_until_it_is_dropped() {
        let asr = handle();
        assert!(!asr.serves_live_streams());
        let (a, b) = (asr.live_stream(), asr.live_stream());
        drop(a);
        assert!(asr.serves_live_streams());
        drop(b);
        assert!(!asr.serves_live_streams());
    }
}
