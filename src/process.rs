//! This process's memory and CPU use, read from `/proc/self` (Linux). Served by `/stats` so a
//! load generator on another machine can watch the server.

use serde::{Deserialize, Serialize};

/// Kernel clock ticks per second for `/proc/*/stat` times (USER_HZ, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident memory now and at its peak, and CPU time used since start (user + system).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProcessUsage {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// Reads the usage; zeros where `/proc` is not available.
pub fn usage() -> ProcessUsage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    ProcessUsage {
        rss_bytes: status_kib(&status, "VmRSS:") * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:") * 1024,
        cpu_seconds: cpu_ticks(&stat) / TICKS_PER_SECOND,
    }
}

fn status_kib(status: &str, key: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with(key));
    line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

/// utime + stime: fields 14 and 15 of `/proc/self/stat`, counted after the `(comm)` field,
/// which may itself hold spaces.
fn cpu_ticks(stat: &str) -> f64 {
    let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0.0 };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| fields.get(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the comm field, field 3 (state) is index 0, so utime (14) is index 11.
    field(11) + field(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(cpu_ticks(stat), 300.0);
        assert_eq!(status_kib("VmRSS:\t  2048 kB\n", "VmRSS:"), 2048);
    }

    #[test]
    fn reads_this_process() {
        let u = usage();
        assert!(u.rss_bytes > 0 && u.peak_rss_bytes >= u.rss_bytes);
    }
}
