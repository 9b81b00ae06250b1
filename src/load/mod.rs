//! The load generator: N clients stream real recordings in real time at once, and the run is
//! summed up as latency, partials, word error rate, refusals and the server's own CPU and memory
//! (read from its `/stats`, so the server may be on another machine).

mod chart;
mod error;
mod plan;
pub mod report;
mod stream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::ClientError;

pub use chart::latency_chart;
pub use error::LoadError;
pub use plan::{default_files, LoadFile, LoadOptions};
pub use report::{LevelReport, StreamReport};
use stream::{ServerSampler, StreamOutcome};

/// Streams `n` clients at once (file `i % files`) and sums the run up.
pub async fn run_level(options: &LoadOptions, n: usize) -> Result<LevelReport, LoadError> {
    if options.files.is_empty() {
        return Err(LoadError::NoRecordings);
    }
    let sampler = ServerSampler::start(&options.url, options.token.clone()).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let file = &options.files[i % options.files.len()];
            let job = stream::StreamJob::new(options, file, options.stagger * i as u32);
            tokio::spawn(job.run())
        })
        .collect();
    let mut outcomes: Vec<(String, Option<String>, StreamOutcome)> = Vec::with_capacity(n);
    for (i, task) in tasks.into_iter().enumerate() {
        let file = &options.files[i % options.files.len()];
        let outcome = task.await.unwrap_or_else(|e| StreamOutcome::Failed(format!("client task failed: {e}")));
        outcomes.push((file.name.clone(), file.reference.clone(), outcome));
    }
    let server = sampler.finish().await;
    Ok(LevelReport::new(n, &outcomes, server, started.elapsed(), options.speed))
}

/// Where a sweep writes its results.
pub struct SweepOutput {
    pub json: bool,
    /// Writes `load.md` (the table), `load.json` and `load.svg` (the chart) here.
    pub dir: Option<PathBuf>,
    pub pause: Duration,
}

/// Runs each level in turn, printing a table row as each finishes (or JSON at the end).
pub async fn sweep(options: &LoadOptions, levels: &[usize], out: &SweepOutput) -> Result<Vec<LevelReport>, LoadError> {
    let mut reports = Vec::with_capacity(levels.len());
    if !out.json {
        println!("{}", report::TABLE_HEADER);
    }
    for (i, &n) in levels.iter().enumerate() {
        if i > 0 {
            // Let the server finish the previous level's sessions before the next one starts.
            tokio::time::sleep(out.pause).await;
        }
        let level = run_level(options, n).await?;
        if !out.json {
            println!("{}", report::table_row(&level));
        }
        reports.push(level);
    }
    if out.json {
        println!("{}", serde_json::to_string_pretty(&reports).expect("reports always serialise"));
    }
    if let Some(dir) = &out.dir {
        write_outputs(dir, options.diarize, &reports)?;
    }
    Ok(reports)
}

/// Writes the table, JSON and chart again from the `load.json` of an earlier run.
pub fn redraw(json: &Path, dir: &Path, diarize: Option<bool>) -> Result<(), LoadError> {
    let text = std::fs::read_to_string(json).map_err(|source| LoadError::Read { path: json.to_owned(), source })?;
    let reports: Vec<LevelReport> =
        serde_json::from_str(&text).map_err(|source| LoadError::Json { path: json.to_owned(), source })?;
    for r in &reports {
        println!("{}", report::table_row(r));
    }
    write_outputs(dir, diarize, &reports)
}

fn write_outputs(dir: &Path, diarize: Option<bool>, reports: &[LevelReport]) -> Result<(), LoadError> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| LoadError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| LoadError::Write { path: dir.to_owned(), source })?;
    let rows: Vec<String> = reports.iter().map(report::table_row).collect();
    write("load.md", format!("{}\n{}\n", report::TABLE_HEADER, rows.join("\n")))?;
    write("load.json", serde_json::to_string_pretty(reports).expect("reports always serialise"))?;
    let speakers = match diarize {
        Some(false) => "speakers off",
        _ => "speakers on",
    };
    let title = format!("Final latency against concurrent streams ({speakers})");
    write("load.svg", latency_chart(&title, reports))?;
    eprintln!("wrote load.md, load.json and load.svg to {}", dir.display());
    Ok(())
}

/// What `n` connected idle sessions (ready, no audio) cost the server, in MB of RSS.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct IdleReport {
    pub sessions: usize,
    pub rss_mb_before: f64,
    pub rss_mb_after: f64,
}

/// Opens `n` sessions that send no audio, a few at a time (a new session counts as streaming
/// for a second), measures the server's RSS before and after, and closes them.
pub async fn idle_sessions(url: &str, n: usize, token: Option<&str>) -> Result<IdleReport, LoadError> {
    let rss = async || -> Result<f64, ClientError> {
        let process = stream::server_process(url, token).await?;
        Ok(process.rss_bytes as f64 / 1e6)
    };
    let rss_mb_before = rss().await?;
    let mut url = format!("{url}{}diarize=false", if url.contains('?') { '&' } else { '?' });
    if let Some(t) = token {
        url.push_str(&format!("&token={t}"));
    }
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 && i.is_multiple_of(8) {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        sockets.push(crate::client::open_ready(&url).await?);
    }
    let rss_mb_after = rss().await?;
    drop(sockets);
    Ok(IdleReport { sessions: n, rss_mb_before, rss_mb_after })
}
