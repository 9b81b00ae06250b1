//! The fleet's load on its database: simulated replicas, each with live sessions that keep
//! growing, go through the same store code as the server (`begin`, `append` per final, the
//! heartbeat's `publish`), and the database's own counters say what that cost per second:
//! transactions, rows written and WAL bytes. Run by `scripts/bench-fleet.sh`, which starts a
//! throw-away PostgreSQL; the figures go to docs/BENCHMARKS.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use speech_service::audio::pcm::Encoding;
use speech_service::domain::{Segment, Word};
use speech_service::protocol::SessionHeader;
use speech_service::store::{Fleet, PostgresStore, StoreConfig, StoredSession, TranscriptStore};

#[derive(Parser)]
struct Args {
    /// postgres://user@host:port/db
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 8)]
    replicas: usize,
    /// Live sessions per replica.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Finals each session already has when the measurement starts (a session minutes in).
    #[arg(long, default_value_t = 60)]
    prefill: usize,
    /// A session sends a final this often (seconds): one utterance of running speech.
    #[arg(long, default_value_t = 3.0)]
    final_every_s: f64,
    #[arg(long, default_value_t = 2)]
    heartbeat_s: u64,
    /// How long to measure.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

/// The database's counters at one moment.
#[derive(Debug, Clone, Copy)]
struct Counters {
    commits: i64,
    rows_written: i64,
    wal_bytes: f64,
}

fn counters(client: &mut postgres::Client) -> Counters {
    let row = client
        .query_one(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .expect("the statistics are readable");
    Counters { commits: row.get(0), rows_written: row.get(1), wal_bytes: row.get(2) }
}

fn segment(n: u64) -> Segment {
    let text = "and so my fellow americans ask not what your country can do for you";
    let words = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| Word { word: w.into(), start: i as f64 * 0.3, end: i as f64 * 0.3 + 0.25, probability: 0.9 })
        .collect();
    Segment {
        segment_id: n,
        part: 0,
        start: n as f64 * 3.0,
        end: n as f64 * 3.0 + 2.9,
        text: text.into(),
        words,
        language: "en".into(),
        speaker: Some(format!("S{}", n % 2 + 1)),
        channel: None,
    }
}

fn session(replica: usize, i: usize, prefill: usize) -> StoredSession {
    let now = speech_service::store::unix_now();
    let header = SessionHeader {
        id: format!("bench-{replica}-{i}"),
        client: "127.0.0.1:1".into(),
        sample_rate: 16_000,
        encoding: Encoding::PcmS16le,
        language: Some("en".into()),
        diarize: true,
        started_at: now,
    };
    StoredSession {
        header,
        ended_at: now,
        close_reason: None,
        audio_seconds: prefill as f64 * 3.0,
        segments: (0..prefill as u64).map(segment).collect(),
    }
}

/// One replica: its sessions send finals at their pace, and it beats every `heartbeat_s`.
fn replica(index: usize, args: &Args, stop: &AtomicBool, beats: &Mutex<Vec<f64>>) {
    let config = StoreConfig {
        url: Some(args.url.clone()),
        replica_id: Some(format!("bench-{index}")),
        ..StoreConfig::default()
    };
    let store = PostgresStore::open(&args.url, &config).expect("PostgreSQL is reachable");
    let name = config.replica();
    let mut live: Vec<StoredSession> = (0..args.sessions).map(|i| session(index, i, args.prefill)).collect();
    // The sessions' finals come evenly spread over the beat.
    let start = Instant::now();
    let mut next_beat = Duration::from_secs(args.heartbeat_s);
    while !stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed().as_secs_f64();
        for (i, s) in live.iter_mut().enumerate() {
            let due = ((elapsed + i as f64 * args.final_every_s / args.sessions as f64) / args.final_every_s) as usize;
            while s.segments.len() < args.prefill + due {
                let final_segment = segment(s.segments.len() as u64);
                s.audio_seconds = final_segment.end;
                store.append(&s.header.id, &final_segment, s.audio_seconds);
                s.segments.push(final_segment);
            }
        }
        if start.elapsed() >= next_beat {
            let took = Instant::now();
            if let Err(e) = store.publish(&name, &live) {
                eprintln!("replica {index}: heartbeat failed: {}", speech_service::logging::chain(&e));
            }
            beats.lock().unwrap().push(took.elapsed().as_secs_f64());
            next_beat += Duration::from_secs(args.heartbeat_s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    store.close();
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

fn main() {
    let args = Args::parse();
    let mut stats = postgres::Client::connect(&args.url, postgres::NoTls).expect("PostgreSQL is reachable");
    let stop = AtomicBool::new(false);
    let beats = Mutex::new(Vec::new());
    let (before, after) = std::thread::scope(|scope| {
        for index in 0..args.replicas {
            let (args, stop, beats) = (&args, &stop, &beats);
            scope.spawn(move || replica(index, args, stop, beats));
        }
        // The first beats insert every session: measure the steady state after them.
        std::thread::sleep(Duration::from_secs(args.heartbeat_s * 2 + 1));
        let before = counters(&mut stats);
        std::thread::sleep(Duration::from_secs(args.seconds));
        let after = counters(&mut stats);
        stop.store(true, Ordering::Relaxed);
        (before, after)
    });
    let per_s = |a: f64, b: f64| (b - a) / args.seconds as f64;
    let mut beats = beats.into_inner().unwrap_or_else(|p| p.into_inner());
    beats.sort_by(f64::total_cmp);
    println!(
        "{} replicas x {} sessions ({} finals each at the start, one per {} s), heartbeat every {} s, {} s measured",
        args.replicas, args.sessions, args.prefill, args.final_every_s, args.heartbeat_s, args.seconds
    );
    println!(
        "| transactions/s | rows written/s | WAL MB/s | heartbeat p50 / p95 (ms) |\n|---|---|---|---|\n| {:.0} | {:.0} | {:.2} | {:.0} / {:.0} |",
        per_s(before.commits as f64, after.commits as f64),
        per_s(before.rows_written as f64, after.rows_written as f64),
        per_s(before.wal_bytes, after.wal_bytes) / 1e6,
        percentile(&beats, 0.5) * 1000.0,
        percentile(&beats, 0.95) * 1000.0,
    );
}
