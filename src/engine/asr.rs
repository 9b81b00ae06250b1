//! The ASR engine: worker threads that own Whisper, fed by a bounded two-lane queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::queue::{JobQueue, PushError};
use super::stats::WorkerStats;

/// One recognised word; times are seconds from the start of the clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// What Whisper made of one clip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub text: String,
    pub words: Vec<Word>,
    pub language: String,
}

/// How to decode a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// A language code, or `None` to detect it (multilingual models only).
    pub language: Option<String>,
    /// Partials skip word timings and temperature fallback: they only need to be quick.
    pub partial: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AsrError {
    #[error("speech recognition is overloaded: the queue stayed full for {0:?}")]
    Overloaded(Duration),
    #[error("speech recognition is shutting down")]
    ShuttingDown,
    #[error("speech recognition failed: {0}")]
    Failed(String),
    #[error("the recognition worker stopped before answering")]
    WorkerLost,
}

/// A model that transcribes 16 kHz mono clips. Implementations run on engine threads only.
pub trait Transcriber: Send {
    fn transcribe(&mut self, samples: &[f32], options: &DecodeOptions) -> Result<Transcript, AsrError>;
}

struct Job {
    samples: Vec<f32>,
    options: DecodeOptions,
    reply: oneshot::Sender<Result<Transcript, AsrError>>,
}

/// Counters every worker updates; read by statistics and benchmarks.
#[derive(Debug, Default)]
pub struct AsrStats {
    pub worker: WorkerStats,
    pub partial_jobs: AtomicU64,
    pub skipped_stale: AtomicU64,
    pub refused_partials: AtomicU64,
    /// Audio transcribed, for the real-time factor.
    pub audio_micros: AtomicU64,
}

/// The sessions' cheap handle on the engine.
#[derive(Clone)]
pub struct AsrHandle {
    queue: Arc<JobQueue<Job>>,
    stats: Arc<AsrStats>,
    model: Arc<str>,
    multilingual: bool,
}

/// Queue and engine sizing.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub final_queue: usize,
    pub partial_queue: usize,
}

impl AsrHandle {
    /// Starts one worker thread per backend, all pulling from one queue.
    pub fn spawn(backends: Vec<Box<dyn Transcriber>>, model: &str, multilingual: bool, opts: &EngineOptions) -> Self {
        let queue = Arc::new(JobQueue::new(opts.final_queue, opts.partial_queue));
        let stats = Arc::new(AsrStats::default());
        for (i, backend) in backends.into_iter().enumerate() {
            let (queue, stats) = (queue.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("asr-worker-{i}"))
                .spawn(move || worker_loop(backend, &queue, &stats))
                .expect("spawning a thread only fails when the OS is out of resources");
        }
        Self { queue, stats, model: model.into(), multilingual }
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

    /// Asks for a partial; `None` when the partial lane is full (the request is simply skipped).
    pub fn try_partial(
        &self,
        samples: Vec<f32>,
        language: Option<String>,
    ) -> Option<oneshot::Receiver<Result<Transcript, AsrError>>> {
        let (reply, rx) = oneshot::channel();
        let job = Job { samples, options: DecodeOptions { language, partial: true }, reply };
        match self.queue.try_push_partial(job) {
            Ok(()) => Some(rx),
            Err(_) => {
                self.stats.refused_partials.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Queues a final, waiting up to `timeout` for room; the receiver yields its transcript.
    pub async fn submit_final(
        &self,
        samples: Vec<f32>,
        language: Option<String>,
        timeout: Duration,
    ) -> Result<oneshot::Receiver<Result<Transcript, AsrError>>, AsrError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { samples, options: DecodeOptions { language, partial: false }, reply };
        match self.queue.push_final(job, timeout).await {
            Ok(()) => Ok(rx),
            Err((PushError::Full, _)) => Err(AsrError::Overloaded(timeout)),
            Err((PushError::Closed, _)) => Err(AsrError::ShuttingDown),
        }
    }

    /// Transcribes one clip as a final and waits for it (offline use).
    pub async fn transcribe(
        &self,
        samples: Vec<f32>,
        language: Option<String>,
        timeout: Duration,
    ) -> Result<Transcript, AsrError> {
        let rx = self.submit_final(samples, language, timeout).await?;
        rx.await.map_err(|_| AsrError::WorkerLost)?
    }

    /// Lets queued jobs finish, then stops the workers.
    pub fn close(&self) {
        self.queue.close();
    }
}

fn worker_loop(mut backend: Box<dyn Transcriber>, queue: &JobQueue<Job>, stats: &AsrStats) {
    let _alive = stats.worker.alive_guard();
    while let Some(job) = queue.pop_blocking(Duration::from_secs(1)) {
        // A partial whose session has moved on is not worth the compute.
        if job.reply.is_closed() {
            stats.skipped_stale.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let started = Instant::now();
        let result = backend.transcribe(&job.samples, &job.options);
        let took = started.elapsed();
        stats.worker.record(took);
        crate::telemetry::record_inference(
            "asr",
            if job.options.partial { "partial" } else { "final" },
            took.as_secs_f64(),
        );
        stats.audio_micros.fetch_add(job.samples.len() as u64 * 1_000_000 / 16_000, Ordering::Relaxed);
        if job.options.partial {
            stats.partial_jobs.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = &result {
            tracing::warn!(error = %e, "transcription failed");
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
        let opts = EngineOptions { final_queue: 2, partial_queue: 1 };
        AsrHandle::spawn(vec![Box::new(LengthEcho)], "echo", false, &opts)
    }

    #[tokio::test]
    async fn finals_and_partials_come_back_to_their_callers() {
        let asr = handle();
        let t = asr.transcribe(vec![0.0; 10], None, Duration::from_secs(1)).await.unwrap();
        assert_eq!(t.text, "final 10");
        let rx = asr.try_partial(vec![0.0; 3], None).expect("queue has room");
        assert_eq!(rx.await.unwrap().unwrap().text, "partial 3");
        assert_eq!(asr.stats().worker.snapshot().jobs, 2);
    }

    #[tokio::test]
    async fn closed_engine_refuses_new_finals() {
        let asr = handle();
        asr.close();
        let err = asr.transcribe(vec![0.0; 10], None, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, AsrError::ShuttingDown));
    }
}
