//! A small sliding-window rate limiter, per key, in memory (per instance).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bounds how many keys are tracked, so a flood of distinct keys cannot grow memory
/// without limit; past it, the oldest windows are dropped.
const MAX_TRACKED_KEYS: usize = 100_000;

#[derive(Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// Records an event for `key` if fewer than `limit` happened within `per`; otherwise
    /// returns how long until the next one is allowed.
    pub fn check(&self, key: &str, limit: usize, per: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() >= MAX_TRACKED_KEYS {
            windows.retain(|_, events| events.back().is_some_and(|t| now.duration_since(*t) < per));
        }
        let events = windows.entry(key.to_owned()).or_default();
        while events
            .front()
            .is_some_and(|t| now.duration_since(*t) >= per)
        {
            events.pop_front();
        }
        if events.len() >= limit {
            let oldest = events.front().copied().unwrap_or(now);
            return Err(per.saturating_sub(now.duration_since(oldest)));
        }
        events.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_per_key() {
        let limiter = RateLimiter::default();
        let minute = Duration::from_secs(60);
        assert!(limiter.check("a", 2, minute).is_ok());
        assert!(limiter.check("a", 2, minute).is_ok());
        let wait = limiter.check("a", 2, minute).err();
        assert!(wait.is_some_and(|w| w > Duration::from_secs(50)));
        assert!(limiter.check("b", 2, minute).is_ok());
        assert!(limiter.check("c", 1, Duration::ZERO).is_ok());
        assert!(limiter.check("c", 1, Duration::ZERO).is_ok());
    }
}
