//! A small sliding-window rate limiter, per key, in memory (per instance), and the client
//! address it is keyed by.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bounds how many keys are tracked, so a flood of distinct keys cannot grow memory
/// without limit. When full after dropping finished windows, new keys are refused
/// (failing closed: the limiter guards against guessing).
const MAX_TRACKED_KEYS: usize = 100_000;

pub struct RateLimiter {
    limit: usize,
    per: Duration,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// At most `limit` events per key within any `per`.
    pub fn new(limit: usize, per: Duration) -> Self {
        Self {
            limit,
            per,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event for `key` if allowed; otherwise returns how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Err(Duration::from_secs(1));
        };
        if windows.len() >= MAX_TRACKED_KEYS && !windows.contains_key(key) {
            let per = self.per;
            windows.retain(|_, events| events.back().is_some_and(|t| now.duration_since(*t) < per));
            if windows.len() >= MAX_TRACKED_KEYS {
                return Err(Duration::from_secs(1));
            }
        }
        let events = windows.entry(key.to_owned()).or_default();
        while events
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.per)
        {
            events.pop_front();
        }
        if events.len() >= self.limit {
            let oldest = events.front().copied().unwrap_or(now);
            return Err(self.per.saturating_sub(now.duration_since(oldest)));
        }
        events.push_back(now);
        Ok(())
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy. Headers from anyone else are
/// ignored, since any client can write them.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = forwarded_for
        .unwrap_or_default()
        .split(',')
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(
        hops.iter()
            .rev()
            .find(|hop| !trusted.contains(hop))
            .or_else(|| hops.first())
            .copied()
            .unwrap_or(peer),
    )
}

/// The key for a client address: IPv6 clients are counted per /64, since one host
/// typically holds a whole /64.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").err();
        assert!(wait.is_some_and(|w| w > Duration::from_secs(50)));
        assert!(limiter.check("b").is_ok());
        let instant = RateLimiter::new(1, Duration::ZERO);
        assert!(instant.check("c").is_ok());
        assert!(instant.check("c").is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let proxy = ip("10.0.0.5");
        let xff = Some("198.51.100.9, 203.0.113.7, 10.0.0.4");
        assert_eq!(
            client_ip(Some(ip("203.0.113.1")), xff, &[proxy]),
            Some(ip("203.0.113.1"))
        );
        assert_eq!(
            client_ip(Some(proxy), xff, &[proxy, ip("10.0.0.4")]),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(client_ip(Some(proxy), None, &[proxy]), Some(proxy));
        assert_eq!(
            client_ip(Some(proxy), Some("garbage"), &[proxy]),
            Some(proxy)
        );
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(
            address_key("10.0.0.1".parse::<IpAddr>().unwrap()),
            "10.0.0.1"
        );
    }
}
