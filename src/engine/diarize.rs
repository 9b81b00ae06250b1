//! The diarization engine: a thread that owns pyannote segmentation and CAM++, fed by a bounded
//! queue. For each utterance it finds speaker turns and embeds each; the session clusters them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::queue::{JobQueue, PushError};
use super::stats::WorkerStats;
use crate::domain::{ms_to_samples as ms, EmbeddedTurn};
use crate::onnx::OnnxError;
use crate::speaker::campplus::CamPlus;
use crate::speaker::segmentation::{dominant_turns, overlap_end, LocalTurn, Segmentation, WINDOW};

/// The longest overlap of two speakers a look's change is moved across (0.3 s; 0.6 s deferred
/// cuts past their confirmation, docs/BENCHMARKS.md).
const MAX_OVERLAP_MS: u32 = 300;

/// Diarization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiarizeConfig {
    /// Load the speaker models and label speakers (sessions may still opt out).
    pub enabled: bool,
    /// Turns shorter than this are absorbed by their neighbours.
    pub min_turn_ms: u32,
    /// Turns at least this long get an embedding.
    pub min_embed_ms: u32,
    /// Turns at least this long may open a new speaker.
    pub reliable_ms: u32,
    /// Longer turns are embedded from their middle this long: the embedding gains little past a
    /// few seconds, and its cost grows with the audio.
    pub max_embed_ms: u32,
    /// How long a final waits for its speakers after its text is ready.
    pub join_timeout_ms: u64,
    /// While an utterance grows, its new audio is diarized every this many milliseconds.
    pub incremental_step_ms: u32,
    pub queue: usize,
}

impl Default for DiarizeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_turn_ms: 500,
            min_embed_ms: 300,
            reliable_ms: 1500,
            max_embed_ms: 3000,
            join_timeout_ms: 1000,
            incremental_step_ms: 4000,
            queue: 32,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiarizeError {
    #[error("diarization is overloaded")]
    Overloaded,
    #[error("diarization is shutting down")]
    ShuttingDown,
    #[error("speaker segmentation failed")]
    Segmentation(#[source] OnnxError),
    #[error("the diarization worker stopped before answering")]
    WorkerLost,
    #[error("the speaker models failed to load")]
    NotLoaded,
    #[error("the diarization worker failed on this clip and went on")]
    Panicked,
}

/// The speaker models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerModelError {
    #[error("cannot load the speaker segmentation model")]
    Segmentation(#[from] OnnxError),
    #[error("cannot load the speaker embedding model")]
    Embedding(#[from] crate::speaker::campplus::EmbeddingError),
    #[error("the diarization thread stopped while loading its models")]
    LoaderStopped,
}

pub type DiarizeReply = oneshot::Receiver<Result<Vec<EmbeddedTurn>, DiarizeError>>;

/// Which turns of a clip a job embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embed {
    /// Every turn long enough (an utterance's speakers).
    Every,
    /// Only the two turns either side of the first speaker change at or after sample `after`
    /// with at least `confirm` samples of the clip after it: a look for a speaker change
    /// (`session::changes`), which compares the two before it cuts. A tenth of the cost of
    /// `Every` when the clip has no change.
    FirstChange { after: usize, confirm: usize },
}

impl Embed {
    /// For a look, the index of the turn that begins its first change.
    fn first_change(self, turns: &[LocalTurn], len: usize) -> Option<usize> {
        let Embed::FirstChange { after, confirm } = self else { return None };
        (1..turns.len()).find(|&i| turns[i].start >= after && turns[i].start + confirm <= len)
    }

    /// Which of `turns` (tiling a clip of `len` samples) to embed.
    fn picks(self, turns: &[LocalTurn], len: usize) -> Vec<bool> {
        if self == Embed::Every {
            return vec![true; turns.len()];
        }
        let first = self.first_change(turns, len);
        (0..turns.len()).map(|i| first.is_some_and(|f| i + 1 == f || i == f)).collect()
    }
}

/// The middle `max` samples of `clip` (all of it when shorter).
fn middle(clip: &[f32], max: usize) -> &[f32] {
    let skip = clip.len().saturating_sub(max) / 2;
    &clip[skip..clip.len().min(skip + max)]
}

/// The models of one diarization thread.
pub struct Diarizer {
    segmentation: Segmentation,
    campplus: CamPlus,
    config: DiarizeConfig,
}

impl Diarizer {
    /// Loads segmentation and CAM++ on the CUDA devices given (`gpus`, in that order), each
    /// on the CPU when none.
    pub fn load(
        segmentation: &Path,
        campplus: &Path,
        config: DiarizeConfig,
        gpus: (Option<usize>, Option<usize>),
    ) -> Result<Self, SpeakerModelError> {
        let segmentation = Segmentation::load_on(segmentation, gpus.0)?;
        Ok(Self { segmentation, campplus: CamPlus::load_on(campplus, gpus.1)?, config })
    }

    /// Speaker turns of a clip from sample `from` on, each embedded when long enough and `embed`
    /// picks it. The audio before `from` is context for the segmentation model only (it
    /// separates speakers far better with several seconds to compare); turns there are not
    /// returned.
    pub fn diarize(&mut self, samples: &[f32], from: usize, embed: Embed) -> Result<Vec<EmbeddedTurn>, DiarizeError> {
        let windows = self.segmentation.activity(samples).map_err(DiarizeError::Segmentation)?;
        let mut turns = Vec::new();
        for (w, frames) in windows.iter().enumerate() {
            turns.extend(dominant_turns(frames, w * WINDOW, ms(self.config.min_turn_ms)));
        }
        if let Some(last) = turns.last_mut() {
            last.end = samples.len();
        }
        let narrowband = crate::speaker::band::is_narrowband(samples);
        let mut turns: Vec<LocalTurn> =
            turns.into_iter().filter(|t| t.end > from).map(|t| LocalTurn { start: t.start.max(from), ..t }).collect();
        if let (Some(f), Some(frames)) = (embed.first_change(&turns, samples.len()), windows.first()) {
            // A look's change is moved to where the first speaker stops, when the two overlap:
            // the words said over the change belong to the turn they finish.
            let at = overlap_end(frames, turns[f].start, turns[f - 1].local_speaker, ms(MAX_OVERLAP_MS));
            (turns[f - 1].end, turns[f].start) = (at, at);
        }
        // Picked after the move: a change it pushed past its confirmation is not cut on this look.
        let picks = embed.picks(&turns, samples.len());
        turns
            .into_iter()
            .zip(picks)
            .map(|(t, embed)| {
                let len = t.end.saturating_sub(t.start);
                let long_enough = len >= ms(self.config.min_embed_ms) || samples.len() < ms(self.config.min_embed_ms);
                let clip = middle(&samples[t.start..t.end], ms(self.config.max_embed_ms));
                let embedding = if embed && long_enough { self.campplus.embed(clip).ok() } else { None };
                let reliable = len >= ms(self.config.reliable_ms);
                Ok(EmbeddedTurn { start: t.start, end: t.end, embedding, reliable, narrowband, embedded: clip.len() })
            })
            .collect()
    }
}

struct Job {
    samples: Vec<f32>,
    from: usize,
    embed: Embed,
    reply: oneshot::Sender<Result<Vec<EmbeddedTurn>, DiarizeError>>,
}

/// Whether the diarization thread's models have loaded.
pub struct Loading(std::sync::mpsc::Receiver<Result<(), SpeakerModelError>>);

impl Loading {
    /// Blocks until the models are loaded or have failed to.
    pub fn wait(self) -> Result<(), SpeakerModelError> {
        self.0.recv().unwrap_or(Err(SpeakerModelError::LoaderStopped))
    }
}

/// The sessions' cheap handle on the diarization thread.
#[derive(Clone)]
pub struct DiarizeHandle {
    queue: Arc<JobQueue<Job>>,
    stats: Arc<WorkerStats>,
}

impl DiarizeHandle {
    /// Starts the diarization thread, which first loads its models with `load` (so whatever
    /// else is loading need not wait for them) and then serves the queue. Jobs queued meanwhile
    /// wait; if loading fails, every job is answered `NotLoaded`. The returned [`Loading`] tells
    /// when the models are ready, for callers that must know before they go on.
    pub fn spawn<F>(load: F, capacity: usize) -> (Self, Loading)
    where
        F: FnOnce() -> Result<Diarizer, SpeakerModelError> + Send + 'static,
    {
        let queue = Arc::new(JobQueue::<Job>::new(capacity, 0));
        let stats = Arc::new(WorkerStats::default());
        let (q, s) = (queue.clone(), stats.clone());
        let (ready, loading) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("diarize-worker".into())
            .spawn(move || {
                let _alive = s.alive_guard();
                let mut diarizer = match load() {
                    Ok(d) => {
                        let _ = ready.send(Ok(()));
                        Some(d)
                    }
                    Err(e) => {
                        tracing::error!(error = %crate::logging::chain(&e), "speaker models failed to load");
                        let _ = ready.send(Err(e));
                        None
                    }
                };
                while let Some((job, _slot)) = q.pop_blocking(Duration::from_secs(1)) {
                    if job.reply.is_closed() {
                        continue;
                    }
                    let Some(diarizer) = diarizer.as_mut() else {
                        let _ = job.reply.send(Err(DiarizeError::NotLoaded));
                        continue;
                    };
                    let started = Instant::now();
                    let result = super::supervise::run("diarization", &s, || {
                        super::supervise::inject_fault("diarization");
                        diarizer.diarize(&job.samples, job.from, job.embed)
                    })
                    .unwrap_or(Err(DiarizeError::Panicked));
                    s.record(started.elapsed());
                    crate::telemetry::record_inference("diarization", "utterance", started.elapsed().as_secs_f64());
                    let _ = job.reply.send(result);
                }
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        (Self { queue, stats }, Loading(loading))
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Queues a clip (turns from sample `from` on; what comes before is context), waiting up to
    /// `timeout` for room.
    pub async fn submit(
        &self,
        samples: Vec<f32>,
        from: usize,
        timeout: Duration,
    ) -> Result<DiarizeReply, DiarizeError> {
        self.push(samples, from, Embed::Every, timeout).await
    }

    /// Queues a look for a speaker change (all turns, embedded as `embed` says), if there is
    /// room now.
    pub async fn submit_look(&self, samples: Vec<f32>, embed: Embed) -> Result<DiarizeReply, DiarizeError> {
        self.push(samples, 0, embed, Duration::ZERO).await
    }

    async fn push(
        &self,
        samples: Vec<f32>,
        from: usize,
        embed: Embed,
        timeout: Duration,
    ) -> Result<DiarizeReply, DiarizeError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { samples, from, embed, reply };
        match self.queue.push_final(super::queue::clock_ms(), job, timeout).await {
            Ok(()) => Ok(rx),
            Err((PushError::Full, _)) => Err(DiarizeError::Overloaded),
            Err((PushError::Closed, _)) => Err(DiarizeError::ShuttingDown),
        }
    }

    pub fn close(&self) {
        self.queue.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(bounds: &[usize]) -> Vec<LocalTurn> {
        bounds.windows(2).enumerate().map(|(i, w)| LocalTurn { start: w[0], end: w[1], local_speaker: i % 2 }).collect()
    }

    #[test]
    fn a_look_embeds_only_the_two_turns_around_its_first_confirmed_change() {
        let t = turns(&[0, 100, 300, 600, 1000]);
        let look = |after, confirm| Embed::FirstChange { after, confirm }.picks(&t, 1000);
        assert_eq!(look(0, 100), vec![true, true, false, false], "the first change, at 100");
        assert_eq!(look(150, 100), vec![false, true, true, false], "changes before `after` do not count");
        assert_eq!(look(350, 300), vec![false, false, true, true], "600 has 400 after it");
        assert_eq!(look(350, 500), vec![false; 4], "nothing confirmed");
        assert_eq!(Embed::Every.picks(&t, 1000), vec![true; 4]);
    }
}
