//! Load-aware admission: a new stream is let in only while the engines can serve it on time.
//!
//! The plan: every second a sampler reads how much worker time finals (and speculative
//! finals) took on the ASR workers, and speaker labelling on its worker, and divides each by
//! the streams that used it, which gives what one real-time stream costs each engine (a moving
//! average; the `admission.prior_*_cost` settings until something was measured). A stream is
//! admitted while the streams running now plus this one, at those costs, stay within
//! `admission.target_load` of each engine it needs. A guard follows what clients feel: while
//! recent finals took longer than `admission.max_final_delay_ms` from the end of their
//! utterance, nobody new gets in. Idle connections (no audio for a few seconds) do not count as
//! streams; `limits.max_sessions` stays the hard ceiling.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::config::AdmissionConfig;
use crate::engine::asr::{AsrHandle, RecentWaits};
use crate::engine::diarize::DiarizeHandle;
pub use crate::protocol::rest::LoadStatus;

/// A stream that was admitted; its session says when audio arrives.
#[derive(Debug)]
pub struct StreamTicket {
    opened: Instant,
    /// Milliseconds after `opened` when audio last arrived; `NEVER` before the first.
    last_audio_ms: AtomicU64,
    diarize: bool,
    final_delays: Arc<RecentWaits>,
    /// Set once the session has nothing more to stream, before its client is told so.
    ended: AtomicBool,
}

/// A new session counts as streaming this long even before its first audio, so a burst of
/// connections is counted before their audio arrives.
const GRACE: Duration = Duration::from_secs(1);
const NEVER: u64 = u64::MAX;
/// A session that sent no audio for this long is idle.
const IDLE_AFTER: Duration = Duration::from_secs(3);
/// Streams younger than this have not ended an utterance yet: they are left out of the cost.
const MATURE_AFTER: Duration = Duration::from_secs(6);
/// Samples kept for the cost estimate (one a second).
const WINDOW: usize = 10;

impl StreamTicket {
    fn new(diarize: bool, final_delays: Arc<RecentWaits>) -> Self {
        let last_audio_ms = AtomicU64::new(NEVER);
        Self { opened: Instant::now(), last_audio_ms, diarize, final_delays, ended: AtomicBool::new(false) }
    }

    /// The stream is over: it counts no more, even before the ticket is dropped. Called before
    /// the client hears `closed`, so a client that reconnects at once never meets its own
    /// finished stream in the count.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Audio arrived.
    pub fn heard(&self) {
        self.last_audio_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// A final was ready `delay` after its utterance ended (or, for a client ahead of real
    /// time, after its audio was due).
    pub fn final_ready(&self, delay: Duration) {
        self.final_delays.record(delay);
    }

    fn streaming(&self, now: Instant) -> bool {
        if self.ended.load(Ordering::Relaxed) {
            return false;
        }
        let age = now - self.opened;
        match self.last_audio_ms.load(Ordering::Relaxed) {
            NEVER => age < GRACE,
            last => age.saturating_sub(Duration::from_millis(last)) < IDLE_AFTER,
        }
    }

    fn mature(&self, now: Instant) -> bool {
        now - self.opened >= MATURE_AFTER && self.streaming(now)
    }
}

/// A refusal: why, and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reason: String,
    pub retry_after_s: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// Seconds of worker time spent so far, on ASR finals (per worker) and on speaker labelling.
    final_busy: f64,
    diarize_busy: f64,
    /// Streams old enough to have ended utterances: all, and those labelling speakers.
    mature: (usize, usize),
}

/// Per-stream costs of each engine, learned from samples.
#[derive(Debug, Default)]
struct Estimate {
    samples: VecDeque<Sample>,
    asr_cost: Option<f64>,
    diarize_cost: Option<f64>,
    asr_share: f64,
    diarize_share: f64,
}

/// The streams running and what one more would need.
#[derive(Debug, Clone, Copy)]
pub struct Demand {
    pub streams: usize,
    pub diarizing: usize,
    /// Whether the new stream labels speakers.
    pub diarize: bool,
}

/// The pure decision: may one more stream come in? Costs are (ASR, labelling) per stream.
pub fn decide(
    config: &AdmissionConfig,
    demand: Demand,
    (asr_cost, diarize_cost): (f64, f64),
    final_delay_p90: Option<f64>,
) -> Result<(), String> {
    // Late finals protect the streams already running; with none running there is nobody to
    // protect, and one stream is always possible (`capacity`), so an idle server never stays
    // closed because of finals it was late with before.
    let late = final_delay_p90.filter(|d| *d * 1000.0 > config.max_final_delay_ms as f64);
    if let Some(delay) = late.filter(|_| demand.streams > 0) {
        return Err(format!("recent finals were ready {delay:.2} s after their utterance ended"));
    }
    let asr = capacity(config, asr_cost);
    if demand.streams >= asr {
        return Err(format!("{} streams are running; the recognition engine's capacity is {asr}", demand.streams));
    }
    let speakers = capacity(config, diarize_cost);
    if demand.diarize && demand.diarizing >= speakers {
        let n = demand.diarizing;
        return Err(format!("{n} streams label speakers; the speaker engine's capacity is {speakers}"));
    }
    Ok(())
}

fn capacity(config: &AdmissionConfig, cost: f64) -> usize {
    ((config.target_load / cost.max(1e-3)).floor() as usize).max(1)
}

/// Admission control and the live load figures. Cheap to share.
pub struct Admission {
    asr: AsrHandle,
    diarize: Option<DiarizeHandle>,
    tickets: Mutex<Vec<Weak<StreamTicket>>>,
    estimate: Mutex<Estimate>,
    final_delays: Arc<RecentWaits>,
}

impl Admission {
    pub fn new(asr: AsrHandle, diarize: Option<DiarizeHandle>) -> Arc<Self> {
        Arc::new(Self {
            asr,
            diarize,
            tickets: Mutex::new(Vec::new()),
            estimate: Mutex::new(Estimate::default()),
            final_delays: Arc::new(RecentWaits::default()),
        })
    }

    /// Samples the engines every second for as long as the server runs.
    pub fn spawn_sampler(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while let Some(admission) = {
                tick.tick().await;
                weak.upgrade()
            } {
                admission.sample();
            }
        });
    }

    fn live_tickets(&self) -> Vec<Arc<StreamTicket>> {
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        tickets.retain(|t| t.strong_count() > 0);
        tickets.iter().filter_map(Weak::upgrade).collect()
    }

    /// Live streams that pass `keep`: all of them, and those labelling speakers.
    fn count(&self, keep: impl Fn(&StreamTicket) -> bool) -> (usize, usize) {
        let tickets = self.live_tickets();
        let kept = tickets.iter().filter(|t| keep(t));
        kept.fold((0, 0), |(all, dia), t| (all + 1, dia + usize::from(t.diarize)))
    }

    fn sample(&self) {
        let now = Instant::now();
        let mature = self.count(|t| t.mature(now));
        let stats = self.asr.stats();
        let final_busy =
            stats.final_busy_micros.load(Ordering::Relaxed) as f64 / 1e6 / self.asr.workers().max(1) as f64;
        let diarize_busy =
            self.diarize.as_ref().map_or(0.0, |d| d.stats().busy_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let sample = Sample { at: now, final_busy, diarize_busy, mature };
        let mut estimate = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        estimate.add(sample);
    }

    /// Admits a stream (`diarize`: one that labels speakers) or says why not.
    pub fn admit(&self, config: &AdmissionConfig, diarize: bool) -> Result<Arc<StreamTicket>, Refusal> {
        if let Some(reason) = self.status(config, diarize).reason {
            return Err(Refusal { reason, retry_after_s: config.retry_after_s });
        }
        let ticket = Arc::new(StreamTicket::new(diarize, self.final_delays.clone()));
        self.tickets.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(&ticket));
        Ok(ticket)
    }

    /// The load figures, and whether a new stream (`diarize`: with speakers) would be refused.
    pub fn status(&self, config: &AdmissionConfig, diarize: bool) -> LoadStatus {
        let now = Instant::now();
        let (streams, diarizing) = self.count(|t| t.streaming(now));
        let e = self.estimate.lock().unwrap_or_else(|p| p.into_inner());
        let asr_cost = e.asr_cost.unwrap_or(config.prior_asr_cost);
        let diarize_cost = e.diarize_cost.unwrap_or(config.prior_diarize_cost);
        let delay = self.final_delays.p90_within(Duration::from_secs(WINDOW as u64));
        let demand = Demand { streams, diarizing, diarize };
        let verdict = if config.enabled { decide(config, demand, (asr_cost, diarize_cost), delay) } else { Ok(()) };
        LoadStatus {
            streams,
            diarizing_streams: diarizing,
            asr_capacity: capacity(config, asr_cost),
            diarize_capacity: capacity(config, diarize_cost),
            asr_cost,
            diarize_cost,
            cost_measured: e.asr_cost.is_some(),
            asr_final_share: e.asr_share,
            diarize_share: e.diarize_share,
            final_delay_p90_s: delay,
            at_capacity: verdict.is_err(),
            reason: verdict.err(),
        }
    }
}

impl Estimate {
    /// Weight of the newest measurement in the moving average of the cost.
    const SMOOTHING: f64 = 0.2;

    fn add(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while self.samples.len() > WINDOW {
            self.samples.pop_front();
        }
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else { return };
        let span = (last.at - first.at).as_secs_f64();
        if span < 3.0 {
            return;
        }
        self.asr_share = (last.final_busy - first.final_busy) / span;
        self.diarize_share = (last.diarize_busy - first.diarize_busy) / span;
        let n = self.samples.len() as f64;
        // Learn only from windows in which every sample saw streams using the engine.
        if self.samples.iter().all(|s| s.mature.0 > 0) {
            let streams = self.samples.iter().map(|s| s.mature.0).sum::<usize>() as f64 / n;
            smooth(&mut self.asr_cost, self.asr_share / streams);
        }
        if self.samples.iter().all(|s| s.mature.1 > 0) {
            let streams = self.samples.iter().map(|s| s.mature.1).sum::<usize>() as f64 / n;
            smooth(&mut self.diarize_cost, self.diarize_share / streams);
        }
    }
}

fn smooth(average: &mut Option<f64>, measured: f64) {
    *average = Some(match *average {
        Some(a) => a + Estimate::SMOOTHING * (measured - a),
        None => measured,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(streams: usize, diarizing: usize, diarize: bool) -> Demand {
        Demand { streams, diarizing, diarize }
    }

    #[test]
    fn admits_until_the_planned_load_of_each_engine() {
        let config = AdmissionConfig { target_load: 0.8, ..Default::default() };
        let costs = (0.05, 0.1); // capacities 16 and 8
        assert!(decide(&config, demand(7, 7, true), costs, Some(0.2)).is_ok());
        let speakers = decide(&config, demand(8, 8, true), costs, None).unwrap_err();
        assert!(speakers.contains("speaker engine's capacity is 8"), "{speakers}");
        assert!(decide(&config, demand(12, 8, false), costs, None).is_ok(), "without speakers there is room");
        let asr = decide(&config, demand(16, 0, false), costs, None).unwrap_err();
        assert!(asr.contains("recognition engine's capacity is 16"), "{asr}");
        assert_eq!(capacity(&config, 2.0), 1, "one stream is always possible");
    }

    #[test]
    fn slow_finals_close_admission() {
        let config = AdmissionConfig { max_final_delay_ms: 1000, ..Default::default() };
        let slow = decide(&config, demand(1, 1, true), (0.01, 0.01), Some(1.5)).unwrap_err();
        assert!(slow.contains("1.50 s"), "{slow}");
        assert!(decide(&config, demand(0, 0, true), (0.01, 0.01), Some(1.5)).is_ok(), "an idle server admits one");
    }

    fn sample(at: Instant, final_busy: f64, diarize_busy: f64, mature: (usize, usize)) -> Sample {
        Sample { at, final_busy, diarize_busy, mature }
    }

    #[test]
    fn each_engines_cost_is_its_share_per_stream_using_it() {
        let t0 = Instant::now();
        let mut e = Estimate::default();
        for i in 0..6 {
            // Four streams, two with speakers: ASR finals take 40% of the workers, labels 20%.
            e.add(sample(t0 + Duration::from_secs(i), 0.4 * i as f64, 0.2 * i as f64, (4, 2)));
        }
        assert!((e.asr_cost.unwrap() - 0.1).abs() < 1e-9);
        assert!((e.diarize_cost.unwrap() - 0.1).abs() < 1e-9);
        assert!((e.asr_share - 0.4).abs() < 1e-9 && (e.diarize_share - 0.2).abs() < 1e-9);
    }

    #[test]
    fn nothing_is_learned_from_an_idle_window() {
        let t0 = Instant::now();
        let mut e = Estimate::default();
        for i in 0..6 {
            e.add(sample(t0 + Duration::from_secs(i), 0.0, 0.0, (0, 0)));
        }
        assert_eq!((e.asr_cost, e.diarize_cost), (None, None));
    }

    #[test]
    fn idle_and_young_streams_are_told_apart() {
        let t = StreamTicket::new(true, Arc::default());
        let now = Instant::now();
        assert!(t.streaming(now), "a new session counts before its first audio");
        assert!(!t.streaming(now + GRACE), "no audio past the grace period: idle");
        t.heard();
        assert!(t.streaming(now + GRACE) && !t.streaming(now + IDLE_AFTER * 2));
        assert!(!t.mature(now));
    }

    #[test]
    fn an_ended_stream_counts_no_more_while_its_ticket_lives() {
        let t = StreamTicket::new(false, Arc::default());
        t.heard();
        let now = Instant::now();
        assert!(t.streaming(now));
        t.end();
        assert!(!t.streaming(now) && !t.mature(now + MATURE_AFTER));
    }
}
