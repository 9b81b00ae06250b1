//! A vendor's live protocol spoken over one session (Deepgram's, OpenAI Realtime's): a
//! translator at the edge between that protocol's frames and ours. The session behind it is
//! the same one our own protocol drives; a dialect never runs a pipeline of its own.

use super::ServerMessage;

/// A WebSocket frame, free of any socket library.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Binary(Vec<u8>),
    Text(String),
    /// The client closed its side.
    Close,
}

/// What one client frame in the vendor's protocol comes to.
#[derive(Debug, Default, PartialEq)]
pub struct Inbound {
    /// Frames for the session, in our protocol: audio in the session's encoding, and our
    /// control messages.
    pub frames: Vec<Frame>,
    /// What the protocol answers at once (acknowledgements, its own errors), as JSON text.
    pub replies: Vec<String>,
}

impl Inbound {
    pub fn frame(frame: Frame) -> Self {
        Self { frames: vec![frame], replies: Vec::new() }
    }

    pub fn reply(text: String) -> Self {
        Self { frames: Vec::new(), replies: vec![text] }
    }
}

/// A translator between a vendor's protocol and ours, one per connection (it keeps the state
/// the vendor's protocol needs: item ids, what was already said, ...).
pub trait Dialect: Send {
    /// A client frame, in the vendor's protocol.
    fn inbound(&mut self, frame: Frame) -> Inbound;
    /// One of the session's messages, as the vendor's frames (none where it has no equivalent).
    fn outbound(&mut self, message: &ServerMessage, out: &mut Vec<String>);
    /// The end of a batch of messages: whatever was held back to learn what follows it goes out.
    fn flush(&mut self, _out: &mut Vec<String>) {}
    /// The largest frame the protocol allows a client (0: our own limit applies).
    fn max_frame_bytes(&self) -> usize {
        0
    }
}

/// Serialises a vendor's event; its types always serialise.
pub fn to_json<T: serde::Serialize>(event: &T) -> String {
    serde_json::to_string(event).expect("protocol events always serialise")
}

/// A Unix time as RFC 3339 in UTC, to the millisecond (`2026-12-05T08:30:00.000Z`).
pub fn rfc3339(unix_seconds: f64) -> String {
    let millis = (unix_seconds.max(0.0) * 1000.0).round() as i64;
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, ms) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the era arithmetic of 400-year cycles).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn unix_times_format_as_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400.5), "2000-02-29T00:00:00.500Z", "a leap day of a century divisible by 400");
        assert_eq!(rfc3339(1_796_459_400.0), "2026-12-05T08:30:00.000Z");
    }
}
