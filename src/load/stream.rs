//! One load client, and the sampler that watches the server's CPU and memory during a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::plan::{LoadFile, LoadOptions};
use crate::audio::wav::WavAudio;
use crate::client::{self, ClientError, Received, Refused, StreamOptions};
use crate::process::ProcessUsage;
use crate::protocol::rest::Stats;

/// How one stream ended.
pub enum StreamOutcome {
    Done(Vec<Received>),
    Refused(Refused),
    Failed(String),
}

pub struct StreamJob {
    url: String,
    audio: Arc<WavAudio>,
    options: StreamOptions,
    delay: Duration,
}

impl StreamJob {
    pub fn new(load: &LoadOptions, file: &LoadFile, delay: Duration) -> Self {
        let mut query = load.query.clone();
        if let Some(d) = load.diarize {
            query.push(("diarize".into(), d.to_string()));
        }
        if let Some(t) = &load.token {
            query.push(("token".into(), t.clone()));
        }
        let options = StreamOptions { speed: load.speed, query, ..Default::default() };
        Self { url: load.url.clone(), audio: file.audio.clone(), options, delay }
    }

    pub async fn run(self) -> StreamOutcome {
        tokio::time::sleep(self.delay).await;
        match client::stream_audio(&self.url, &self.audio, &self.options, |_| {}).await {
            Ok(received) => StreamOutcome::Done(received),
            Err(e) => match e {
                ClientError::Refused(refused) => StreamOutcome::Refused(refused),
                e => StreamOutcome::Failed(crate::logging::chain(&e)),
            },
        }
    }
}

/// The server's CPU and memory over a run, from its `/stats`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct ServerUsage {
    /// Average CPU use over the run, in cores (2.0 = both cores of a 2-core machine busy).
    pub cpu_cores: Option<f64>,
    pub rss_mb_start: Option<f64>,
    pub rss_mb_max: Option<f64>,
}

/// Polls `/stats` every half second until finished.
pub struct ServerSampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<ServerUsage>,
}

const POLL: Duration = Duration::from_millis(500);

/// The server's memory and CPU time, from the `process` section of its `/stats`.
pub async fn server_process(url: &str, token: Option<&str>) -> Result<ProcessUsage, ClientError> {
    let stats: Stats = client::get_json(url, "/stats", token).await?;
    Ok(stats.process)
}

impl ServerSampler {
    pub async fn start(url: &str, token: Option<String>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let url = url.to_owned();
        let task = tokio::spawn(async move {
            let read = || async {
                let p = server_process(&url, token.as_deref()).await.ok()?;
                Some((Instant::now(), p.cpu_seconds, p.rss_bytes as f64 / 1e6))
            };
            let first = read().await;
            let mut last = first;
            let mut rss_max = first.map(|f| f.2);
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = tokio::time::sleep(POLL) => {}
                }
                if let Some(now) = read().await {
                    rss_max = Some(rss_max.map_or(now.2, |m: f64| m.max(now.2)));
                    last = Some(now);
                }
            }
            let cpu = match (first, last) {
                (Some(a), Some(b)) if b.0 > a.0 => Some((b.1 - a.1) / (b.0 - a.0).as_secs_f64()),
                _ => None,
            };
            ServerUsage { cpu_cores: cpu, rss_mb_start: first.map(|f| f.2), rss_mb_max: rss_max }
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> ServerUsage {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
