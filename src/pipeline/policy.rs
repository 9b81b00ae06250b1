//! When to ask for a partial hypothesis of the open utterance.

/// Requests a partial each time the open utterance has grown by `interval` samples since the
/// last request, with at most one request in flight: a slow ASR worker then sees fewer, larger
/// partials instead of a growing backlog.
#[derive(Debug)]
pub struct PartialPolicy {
    interval: usize,
    min_len: usize,
    requested_at_len: usize,
    in_flight: bool,
}

impl PartialPolicy {
    pub fn new(interval: usize, min_len: usize) -> Self {
        Self { interval, min_len, requested_at_len: 0, in_flight: false }
    }

    /// Whether to request a partial now that the open utterance holds `open_len` samples.
    pub fn should_request(&mut self, open_len: usize) -> bool {
        if self.in_flight || open_len < self.min_len || open_len < self.requested_at_len + self.interval {
            return false;
        }
        self.requested_at_len = open_len;
        self.in_flight = true;
        true
    }

    /// The request came back (or was refused by a full queue).
    pub fn completed(&mut self) {
        self.in_flight = false;
    }

    /// A new utterance begins: counting starts again.
    pub fn reset(&mut self) {
        self.requested_at_len = 0;
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
        p.completed();
        assert!(!p.should_request(150), "not yet an interval past the last request");
        assert!(p.should_request(250));
        p.reset();
        assert!(p.should_request(100));
    }
}
