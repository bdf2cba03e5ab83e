//! The application's clock. Service functions take `now` as a parameter; this is where
//! `http` and the maintenance task read it, and where tests move it forward instead of
//! sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// System time plus an offset that only tests change. Cheap to clone; clones share the
/// offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_seconds: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.offset_seconds.load(Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::system();
        let clone = clock.clone();
        let before = clone.now();
        clock.advance(3600);
        assert!(clone.now() >= before + 3600);
        assert!(clone.now() < before + 3600 + 5);
    }
}
