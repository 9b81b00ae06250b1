//! `server.host`: an IP address or a host name, checked when the configuration is read so a typo
//! is named there rather than failing the bind (or a name lookup) at start.

use std::net::IpAddr;

/// Why `host` cannot be listened on, or `None` when it is an IP address (v4 or v6, bracketed or
/// not) or a host name of letters, digits and hyphens in dot-separated labels (RFC 1123).
pub fn host_problem(host: &str) -> Option<String> {
    if bare_ip(host).is_some() || is_host_name(host) {
        return None;
    }
    let shown: String = host.chars().take(40).collect();
    let more = if shown.len() < host.len() { "..." } else { "" };
    Some(format!("must be an IP address or a host name, got {shown:?}{more}"))
}

/// `host` as an address, accepting IPv6 in brackets (`[::1]`) as URLs write it.
pub fn bare_ip(host: &str) -> Option<IpAddr> {
    let inner = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    match inner {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse().ok(),
    }
}

fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_label)
}

fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_host_names_are_accepted() {
        for host in ["127.0.0.1", "0.0.0.0", "::", "::1", "[::1]", "localhost", "speech-1.internal", "node7."] {
            assert_eq!(host_problem(host), None, "{host}");
        }
    }

    #[test]
    fn anything_else_is_named_with_the_value() {
        for host in ["", "0.0''''abc", "host name", "-lead.example", "a..b", "http://x", "[127.0.0.1]", "x:80"] {
            let problem = host_problem(host).unwrap_or_else(|| panic!("{host:?} was accepted"));
            assert!(problem.starts_with("must be an IP address or a host name"), "{problem}");
        }
        let long = "'".repeat(500);
        assert!(host_problem(&long).unwrap().ends_with("\"..."), "a long value is shown cut");
    }
}
