//! When to ask for a partial hypothesis of the open utterance.

/// Requests a partial each time the open utterance has grown by `interval` samples since the
/// last request, with at most one request in flight: a slow ASR worker then sees fewer, larger
/// partials instead of a growing backlog. When partials come back slowly (a busy engine serves
/// sessions' partials in turn) the interval stretches to their turnaround, so a session asks
/// again only once its turn came round.
#[derive(Debug)]
pub struct PartialPolicy {
    interval: usize,
    min_len: usize,
    requested_at_len: usize,
    /// `requested_at_len` and `brisk` before the last request, restored if that request is
    /// withdrawn.
    previous_request: (usize, usize),
    in_flight: bool,
    /// Turnaround of the last partial, in samples of audio time.
    last_turnaround: usize,
    /// Requests still to come at half the interval, after a progressive cut.
    brisk: usize,
}

impl PartialPolicy {
    pub fn new(interval: usize, min_len: usize) -> Self {
        Self {
            interval,
            min_len,
            requested_at_len: 0,
            previous_request: (0, 0),
            in_flight: false,
            last_turnaround: 0,
            brisk: 0,
        }
    }

    fn effective_interval(&self) -> usize {
        let interval = if self.brisk > 0 { self.interval / 2 } else { self.interval };
        interval.max(self.last_turnaround)
    }

    /// Whether to request a partial now that the open utterance holds `open_len` samples.
    pub fn should_request(&mut self, open_len: usize) -> bool {
        // An utterance's first partial comes as soon as it is long enough: it is the one that
        // shows a listener they are heard.
        let due = if self.requested_at_len == 0 { 0 } else { self.requested_at_len + self.effective_interval() };
        if self.in_flight || open_len < self.min_len || open_len < due {
            return false;
        }
        self.previous_request = (self.requested_at_len, self.brisk);
        if self.requested_at_len != 0 {
            self.brisk = self.brisk.saturating_sub(1);
        }
        self.requested_at_len = open_len;
        self.in_flight = true;
        true
    }

    /// The request just made was not sent after all: as if it had never been asked for.
    pub fn withdraw(&mut self) {
        (self.requested_at_len, self.brisk) = self.previous_request;
        self.in_flight = false;
    }

    /// The request came back after `turnaround` samples' worth of time, or was refused (0).
    pub fn completed(&mut self, turnaround: usize) {
        self.in_flight = false;
        self.last_turnaround = turnaround;
    }

    /// The open utterance was just cut for a progressive final, and its rest begins: as after
    /// [`reset`](Self::reset), but the two requests after the first come at half the interval
    /// (never sooner than partials come back). The first decode of a rest often stops at the
    /// cut's audio in front of it and misses a new voice (docs/BENCHMARKS.md, "Eighth session");
    /// a quicker second look lets that voice's words agree sooner.
    pub fn reset_after_cut(&mut self) {
        self.reset();
        self.brisk = 2;
    }

    /// A new utterance begins: counting starts again.
    pub fn reset(&mut self) {
        self.requested_at_len = 0;
        self.brisk = 0;
        self.in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::PartialPolicy;

    #[test]
    fn requests_every_interval_and_one_at_a_time() {
        let mut p = PartialPolicy::new(100, 50);
        assert!(!p.should_request(40), "shorter than the minimum");
        assert!(p.should_request(100));
        assert!(!p.should_request(250), "one already in flight");
        p.completed(0);
        assert!(!p.should_request(150), "not yet an interval past the last request");
        assert!(p.should_request(250));
        p.reset();
        assert!(p.should_request(100));
        p.withdraw();
        assert!(p.should_request(100), "a withdrawn request leaves the policy as it was");
    }

    #[test]
    fn after_a_cut_two_requests_come_at_half_the_interval() {
        let mut p = PartialPolicy::new(100, 50);
        p.reset_after_cut();
        assert!(p.should_request(50), "the rest's first partial waits only for the minimum");
        p.completed(20);
        assert!(!p.should_request(99));
        assert!(p.should_request(100), "half the interval after the first");
        p.withdraw();
        assert!(p.should_request(100), "a withdrawn request does not use up a quick one");
        p.completed(20);
        assert!(p.should_request(150));
        p.completed(20);
        assert!(!p.should_request(200), "then the whole interval again");
        assert!(p.should_request(250));
        p.completed(80);
        p.reset_after_cut();
        assert!(p.should_request(50));
        p.completed(80);
        assert!(!p.should_request(120) && p.should_request(130), "never sooner than partials come back");
    }

    #[test]
    fn slow_partials_stretch_the_interval() {
        let mut p = PartialPolicy::new(100, 50);
        assert!(p.should_request(100));
        p.completed(160); // took 160 samples' time: next one needs 160 samples of growth
        assert!(!p.should_request(250));
        assert!(p.should_request(260));
        p.completed(160);
        p.reset();
        assert!(p.should_request(50), "a new utterance's first partial waits only for the minimum");
    }
}
