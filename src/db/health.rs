//! What the server has seen of its database lately, so that an outage costs each request
//! nothing: a circuit breaker that opens when the database stops answering (requests then
//! fail at once with [`DbError::Unavailable`], 503) and a background probe that closes it
//! as soon as one connection answers again, plus the time of the last refused write (disk
//! full, read-only database) for `/health/ready`.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{DbError, DbManager};

/// How often the probe tries the database while the breaker is open: the bound on how
/// long the service stays down after the database is back (plus one connection set-up).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long after a refused write `/health/ready` keeps answering 503.
pub const WRITE_FAILURE_WINDOW: Duration = Duration::from_secs(10);

/// Lets [`super::Db::run`] see the database error inside a use case's own error type.
pub trait StoreFailure {
    fn store_error(&self) -> Option<&DbError>;
}

impl StoreFailure for DbError {
    fn store_error(&self) -> Option<&DbError> {
        Some(self)
    }
}

#[derive(Default)]
struct State {
    down_since: Option<Instant>,
    probing: bool,
    last_write_failure: Option<Instant>,
}

/// Shared by every clone of a [`super::Db`].
#[derive(Default)]
pub struct DbHealth {
    state: Mutex<State>,
}

impl DbHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain
        // assignments), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while the breaker is open.
    pub fn is_down(&self) -> bool {
        self.lock().down_since.is_some()
    }

    /// How long the database has been seen down, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.lock().down_since.map(|since| since.elapsed())
    }

    /// Opens the breaker (if it is not already) and starts the probe that closes it.
    pub(super) fn trip(self: &Arc<Self>, pool: &r2d2::Pool<DbManager>, why: &DbError) {
        let start_probe = {
            let mut state = self.lock();
            if state.down_since.is_none() {
                state.down_since = Some(Instant::now());
                // Driver messages span lines; keep the log on one.
                let why = why
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::warn!(error = %why, "database unavailable; answering 503 until it is back");
            }
            !std::mem::replace(&mut state.probing, true)
        };
        if start_probe {
            let (health, pool) = (Arc::downgrade(self), pool.clone());
            let spawned = std::thread::Builder::new()
                .name("tollgate-db-probe".into())
                .spawn(move || probe(&health, &pool));
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start the database probe");
                self.lock().probing = false;
            }
        }
    }

    fn close(&self) {
        let mut state = self.lock();
        if let Some(since) = state.down_since.take() {
            tracing::info!(
                down_ms = since.elapsed().as_millis() as u64,
                "database available again"
            );
        }
        state.probing = false;
    }

    pub fn note_write_failure(&self) {
        self.lock().last_write_failure = Some(Instant::now());
    }

    /// A write was refused (disk full, read-only) within [`WRITE_FAILURE_WINDOW`].
    pub fn writes_failing(&self) -> bool {
        self.lock()
            .last_write_failure
            .is_some_and(|at| at.elapsed() < WRITE_FAILURE_WINDOW)
    }
}

/// Runs on its own thread while the breaker is open: every [`PROBE_INTERVAL`], a pooled
/// connection that answers a ping closes it. A connection that fails the ping is discarded
/// (a restarted server leaves every pooled connection dead). Ends with the pool's owner.
fn probe(health: &Weak<DbHealth>, pool: &r2d2::Pool<DbManager>) {
    loop {
        std::thread::sleep(PROBE_INTERVAL);
        let Some(health) = health.upgrade() else {
            return;
        };
        // Short, so a database that comes back is seen by the next round at the latest.
        let Ok(mut conn) = pool.get_timeout(PROBE_INTERVAL * 5) else {
            continue;
        };
        match diesel::r2d2::R2D2Connection::ping(&mut **conn) {
            Ok(()) => {
                health.close();
                return;
            }
            Err(_) => conn.discard(),
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::DbError;

    fn driver(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::Query(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn errors_are_told_apart_outage_refused_write_transient_or_bug() {
        use DatabaseErrorKind::{ClosedConnection, ReadOnlyTransaction, UniqueViolation, Unknown};
        let outages = [
            DbError::TimedOut,
            DbError::Unavailable,
            DbError::Connect("cannot connect".into()),
            driver(ClosedConnection, "no connection to the server"),
            driver(Unknown, "server closed the connection unexpectedly"),
            driver(
                Unknown,
                "terminating connection due to administrator command",
            ),
        ];
        for err in &outages {
            assert!(err.is_outage() && err.is_unavailable(), "{err}");
            assert!(!err.is_write_refused(), "{err}");
        }
        let refused = [
            driver(Unknown, "database or disk is full"),
            driver(Unknown, "attempt to write a readonly database"),
            driver(Unknown, "disk I/O error"),
            driver(Unknown, "unable to open database file"),
            driver(
                ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
            ),
            driver(
                Unknown,
                "could not extend file \"base/5/1234\": No space left on device",
            ),
        ];
        for err in &refused {
            assert!(err.is_write_refused() && err.is_unavailable(), "{err}");
            assert!(!err.is_outage(), "{err}: reads still work, no breaker");
        }
        let transient = [
            driver(Unknown, "database is locked"),
            driver(Unknown, "canceling statement due to statement timeout"),
        ];
        for err in &transient {
            assert!(err.is_unavailable(), "{err}");
            assert!(!err.is_outage() && !err.is_write_refused(), "{err}");
        }
        let bugs = [
            driver(UniqueViolation, "duplicate key value"),
            DbError::Query(Error::NotFound),
        ];
        for err in &bugs {
            assert!(!err.is_unavailable(), "{err}");
        }
    }
}
