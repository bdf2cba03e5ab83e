//! A small sliding-window rate limiter, per key, in memory (per instance), and the client
//! address it is keyed by.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::TrustedProxies;

/// Bounds how many keys are tracked, so a flood of distinct keys cannot grow memory
/// without limit. When full, finished windows are dropped first, then the keys whose last
/// event is oldest: a flood evicts (mostly its own) entries instead of refusing new keys,
/// which would let anyone with enough addresses lock everyone else out.
const MAX_TRACKED_KEYS: usize = 100_000;
/// Share of the keys evicted at once when still full, so that eviction (a sort) runs once
/// per this many new keys rather than on each.
const EVICT_DIVISOR: usize = 10;

pub struct RateLimiter {
    limit: usize,
    per: Duration,
    max_keys: usize,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// At most `limit` events per key within any `per`.
    pub fn new(limit: usize, per: Duration) -> Self {
        Self::with_capacity(limit, per, MAX_TRACKED_KEYS)
    }

    /// [`RateLimiter::new`] tracking at most `max_keys` keys.
    pub fn with_capacity(limit: usize, per: Duration, max_keys: usize) -> Self {
        Self {
            limit,
            per,
            max_keys: max_keys.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // Every update leaves the map consistent, so a poisoned lock is used as is.
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records an event for `key` if allowed; otherwise returns how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.lock();
        if let Some(wait) = self.wait_in(&mut windows, key, now) {
            return Err(wait);
        }
        self.push(&mut windows, key, now);
        Ok(())
    }

    /// How long `key` must wait, if it is at its limit; records nothing.
    pub fn blocked(&self, key: &str) -> Option<Duration> {
        self.wait_in(&mut self.lock(), key, Instant::now())
    }

    /// Records an event for `key` whether or not it is over the limit.
    pub fn record(&self, key: &str) {
        self.push(&mut self.lock(), key, Instant::now());
    }

    /// How many keys are tracked.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn wait_in(
        &self,
        windows: &mut HashMap<String, VecDeque<Instant>>,
        key: &str,
        now: Instant,
    ) -> Option<Duration> {
        let events = windows.get_mut(key)?;
        while events
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.per)
        {
            events.pop_front();
        }
        if events.is_empty() {
            windows.remove(key);
            return None;
        }
        (events.len() >= self.limit).then(|| {
            let oldest = events.front().copied().unwrap_or(now);
            self.per.saturating_sub(now.duration_since(oldest))
        })
    }

    fn push(&self, windows: &mut HashMap<String, VecDeque<Instant>>, key: &str, now: Instant) {
        if !windows.contains_key(key) && windows.len() >= self.max_keys {
            self.make_room(windows, now);
        }
        let events = windows.entry(key.to_owned()).or_default();
        events.push_back(now);
        // Only the last `limit` events decide; older ones need no memory.
        while events.len() > self.limit.max(1) {
            events.pop_front();
        }
    }

    /// Drops finished windows, then, if still full, the least recently active keys.
    fn make_room(&self, windows: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        let per = self.per;
        windows.retain(|_, events| events.back().is_some_and(|t| now.duration_since(*t) < per));
        if windows.len() < self.max_keys {
            return;
        }
        let mut by_age: Vec<(Instant, String)> = windows
            .iter()
            .map(|(key, events)| (events.back().copied().unwrap_or(now), key.clone()))
            .collect();
        let evict = (self.max_keys / EVICT_DIVISOR).max(1);
        by_age.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
        for (_, key) in by_age.into_iter().take(evict) {
            windows.remove(&key);
        }
    }
}

/// Failed client authentication, counted per (client id, address) and per address
/// (RFC 6749 §2.3.1: protect the endpoints against brute force). Only failures count, so
/// correct requests are never slowed; and since a client id is locked only together with
/// the address that failed, spamming wrong secrets for someone else's id from elsewhere
/// cannot lock that client out.
pub struct AuthThrottle {
    by_client_and_address: RateLimiter,
    by_address: RateLimiter,
}

/// Client ids are the caller's text: only this much of one goes into a key.
const MAX_CLIENT_ID_IN_KEY: usize = 128;

impl AuthThrottle {
    pub fn new(settings: &crate::config::AuthThrottleSettings) -> Self {
        Self {
            by_client_and_address: RateLimiter::new(
                settings.per_client_and_address,
                settings.window,
            ),
            by_address: RateLimiter::new(settings.per_address, settings.window),
        }
    }

    fn pair_key(client_id: &str, address: &str) -> String {
        let mut end = client_id.len().min(MAX_CLIENT_ID_IN_KEY);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        format!("{address} {}", &client_id[..end])
    }

    /// How long to wait when this client id from this address, or this address, is over
    /// its failure budget; checked before the secret is.
    pub fn check(&self, client_id: Option<&str>, address: &str) -> Result<(), Duration> {
        let pair = client_id.and_then(|id| {
            self.by_client_and_address
                .blocked(&Self::pair_key(id, address))
        });
        match pair
            .into_iter()
            .chain(self.by_address.blocked(address))
            .max()
        {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts one failed authentication.
    pub fn record_failure(&self, client_id: Option<&str>, address: &str) {
        if let Some(id) = client_id {
            self.by_client_and_address
                .record(&Self::pair_key(id, address));
        }
        self.by_address.record(address);
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy. Headers from anyone else are
/// ignored, since any client can write them.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(peer) {
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
            .find(|hop| !trusted.contains(**hop))
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
    fn a_full_limiter_evicts_the_least_recent_keys_instead_of_refusing() {
        let limiter = RateLimiter::with_capacity(1, Duration::from_secs(600), 100);
        assert!(limiter.check("victim-old").is_ok());
        std::thread::sleep(Duration::from_millis(2));
        for n in 0..99 {
            assert!(limiter.check(&format!("flood-{n}")).is_ok());
        }
        assert_eq!(limiter.tracked(), 100);
        // Full, and every window still running: a new key is still admitted.
        assert!(limiter.check("newcomer").is_ok());
        assert!(limiter.tracked() <= 100);
        // The least recently active key went first; recent ones keep their count.
        assert!(limiter.check("victim-old").is_ok());
        assert!(limiter.check("flood-98").is_err());
        for n in 0..10_000 {
            let _ = limiter.check(&format!("more-{n}"));
            assert!(limiter.tracked() <= 100);
        }
    }

    #[test]
    fn blocked_and_record_count_failures_only() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert_eq!(limiter.blocked("k"), None);
        limiter.record("k");
        assert_eq!(limiter.blocked("k"), None);
        limiter.record("k");
        assert!(
            limiter
                .blocked("k")
                .is_some_and(|w| w > Duration::from_secs(50))
        );
        assert_eq!(limiter.blocked("other"), None);
        assert_eq!(limiter.tracked(), 1, "peeking does not track keys");
        let expired = RateLimiter::new(1, Duration::from_millis(1));
        expired.record("k");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(expired.blocked("k"), None);
        assert_eq!(expired.tracked(), 0, "finished windows are dropped");
    }

    #[test]
    fn failed_authentication_locks_the_pair_then_the_address() {
        let throttle = AuthThrottle::new(&crate::config::AuthThrottleSettings {
            per_client_and_address: 2,
            per_address: 3,
            window: Duration::from_secs(60),
        });
        assert!(throttle.check(Some("c1"), "198.51.100.1").is_ok());
        throttle.record_failure(Some("c1"), "198.51.100.1");
        throttle.record_failure(Some("c1"), "198.51.100.1");
        assert!(throttle.check(Some("c1"), "198.51.100.1").is_err());
        // The same client from elsewhere, and another client from here, still pass.
        assert!(throttle.check(Some("c1"), "203.0.113.9").is_ok());
        assert!(throttle.check(Some("c2"), "198.51.100.1").is_ok());
        // A third failure from the address, under another id, locks the whole address.
        throttle.record_failure(Some("c2"), "198.51.100.1");
        let wait = throttle.check(Some("c3"), "198.51.100.1").unwrap_err();
        assert!(wait > Duration::from_secs(50));
        assert!(throttle.check(None, "198.51.100.1").is_err());
        // Long client ids are cut, on a character boundary.
        let long = "é".repeat(200);
        throttle.record_failure(Some(&long), "203.0.113.50");
        assert!(throttle.check(Some(&long), "203.0.113.50").is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        let trusted = |list: &[&str]| TrustedProxies::parse(list).unwrap();
        let proxy = ip("10.0.0.5");
        let xff = Some("198.51.100.9, 203.0.113.7, 10.0.0.4");
        assert_eq!(
            client_ip(Some(ip("203.0.113.1")), xff, &trusted(&["10.0.0.5"])),
            Some(ip("203.0.113.1"))
        );
        assert_eq!(
            client_ip(Some(proxy), xff, &trusted(&["10.0.0.5", "10.0.0.4"])),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client_ip(Some(proxy), None, &trusted(&["10.0.0.5"])),
            Some(proxy)
        );
        assert_eq!(
            client_ip(Some(proxy), Some("garbage"), &trusted(&["10.0.0.5"])),
            Some(proxy)
        );
        // Ranges: the whole 10/8 is trusted, so the hop before it is the client.
        assert_eq!(
            client_ip(Some(proxy), xff, &trusted(&["10.0.0.0/8"])),
            Some(ip("203.0.113.7"))
        );
        // Nobody trusted (the default): the header is ignored.
        assert_eq!(
            client_ip(Some(proxy), xff, &TrustedProxies::default()),
            Some(proxy)
        );
        // An IPv4 proxy seen through an IPv6 socket is still the proxy.
        assert_eq!(
            client_ip(Some(ip("::ffff:10.0.0.5")), xff, &trusted(&["10.0.0.5"])),
            Some(ip("10.0.0.4"))
        );
        assert_eq!(
            client_ip(
                Some(ip("fd00::7")),
                Some("2001:db8::1"),
                &trusted(&["fd00::/8"])
            ),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_ne!(address_key(a), address_key(other_64));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7");
        assert_eq!(
            address_key("10.0.0.1".parse::<IpAddr>().unwrap()),
            "10.0.0.1"
        );
    }
}
