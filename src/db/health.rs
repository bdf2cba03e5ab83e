//! What the server has seen of its database lately, so that an outage costs each request
//! nothing: a circuit breaker that opens when the database itself stops answering
//! (requests then fail at once with [`DbError::Unavailable`], 503) and a background probe
//! that closes it as soon as the database answers again, plus the time of the last refused
//! write (disk full, read-only database) for `/health/ready`.
//!
//! Only the database's own silence opens the breaker, never local overload. A request that
//! waited too long for a pooled connection, for a blocking thread, or for a slow closure
//! gets its own 503 and nothing more; what it raises is a *suspicion*, which a check with a
//! connection of its own, outside the pool and its queues, confirms or dismisses: the
//! breaker opens only when that fresh connection cannot connect, fails, or (PostgreSQL)
//! does not answer `SELECT 1` within [`PROBE_LIMIT`]. Both the check and the probe connect
//! outside the pool, so a pool full of hung connections cannot keep the breaker open.
//!
//! A fresh connection that is merely slow proves nothing when the database finished other
//! work meanwhile (a pooled statement, a round of the change feed): on a machine starved of
//! CPU, PostgreSQL's start of a new backend can take longer than [`PROBE_LIMIT`] while the
//! connections it already has keep answering. Such a check dismisses the suspicion; a
//! frozen or unreachable server finishes nothing, and an error still counts at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::DbError;

/// How often the probe tries the database while the breaker is open: the bound on how
/// long the service stays down after the database is back (plus one connection set-up).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How long a check's fresh connection may take to connect and answer `SELECT 1` before
/// PostgreSQL counts as not answering. A healthy server needs a few milliseconds.
pub const PROBE_LIMIT: Duration = Duration::from_secs(1);
/// After a check found the database answering, the next suspicion is checked this much
/// later at the earliest: under sustained overload, at most two extra connections a second.
pub const CHECK_COOLDOWN: Duration = Duration::from_millis(500);
/// How many probe connections may hang at once on an unreachable server (each gives up at
/// libpq's `connect_timeout`); new ones keep starting every [`PROBE_INTERVAL`] up to this.
const MAX_PENDING_PROBES: usize = 8;
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

/// Opens a fresh connection (outside any pool) and runs a trivial query on it.
pub type Probe = Arc<dyn Fn() -> Result<(), DbError> + Send + Sync>;

#[derive(Default)]
struct State {
    down_since: Option<Instant>,
    /// The recovery probe's thread is running.
    probing: bool,
    /// A check of a suspicion is scheduled or running.
    checking: bool,
    /// When a check or the probe last saw the database answer.
    last_answer: Option<Instant>,
    /// When a statement on a connection the server already had last finished
    /// ([`DbHealth::note_answer`]).
    last_work_done: Option<Instant>,
    last_write_failure: Option<Instant>,
}

/// Shared by every clone of a [`super::Db`].
pub struct DbHealth {
    state: Mutex<State>,
    /// Counts the times the breaker opened: connections made before the last opening may
    /// be dead or hung, and are dropped instead of reused (see `PoolConn`).
    epoch: AtomicU64,
    /// Bumped on every change (opened, closed, a check's verdict) for those who wait on it.
    changed: watch::Sender<u64>,
    probe: Probe,
    /// PostgreSQL: a probe that does not answer in time counts as a failure. SQLite is a
    /// local file: slowness there is lock contention, and only an error counts.
    silence_is_failure: bool,
}

/// What one probe connection found.
enum Verdict {
    Answered,
    Failed(String),
    /// No answer within the limit (a failure only where `silence_is_failure`).
    Silent(String),
    /// Nothing learnt (the probe could not even be started).
    Unknown,
}

impl DbHealth {
    pub fn new(probe: Probe, silence_is_failure: bool) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            epoch: AtomicU64::new(0),
            changed: watch::Sender::new(0),
            probe,
            silence_is_failure,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain
        // assignments), so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while the breaker is open. Never open without a probe: one that is missing
    /// (it could not start, or ended by a panic) is started again here.
    pub fn is_down(self: &Arc<Self>) -> bool {
        let orphaned = {
            let state = self.lock();
            if state.down_since.is_none() {
                return false;
            }
            !state.probing
        };
        if orphaned {
            self.start_probe();
        }
        self.lock().down_since.is_some()
    }

    /// How long the database has been seen down, if it is.
    pub fn down_for(&self) -> Option<Duration> {
        self.lock().down_since.map(|since| since.elapsed())
    }

    /// How many times the breaker has opened since start.
    pub fn times_opened(&self) -> u64 {
        self.epoch()
    }

    /// Connections made before this value changed are not reused.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Wakes on every change of the breaker and on every check's verdict.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Something looked like the database may be gone (a request that waits too long, a
    /// connection the driver reports lost, a pool that cannot connect). Checks it with a
    /// connection of its own, in the background, and opens the breaker only if that fails.
    /// Cheap to call often: one check at a time, and none within [`CHECK_COOLDOWN`] of the
    /// database last answering (the check is then scheduled for the end of the cooldown).
    pub fn suspect(self: &Arc<Self>, why: &str) {
        let delay = {
            let mut state = self.lock();
            if state.down_since.is_some() || state.checking {
                return;
            }
            state.checking = true;
            state
                .last_answer
                .map(|at| CHECK_COOLDOWN.saturating_sub(at.elapsed()))
                .unwrap_or_default()
        };
        let (health, probe) = (Arc::downgrade(self), self.probe.clone());
        let why = one_line(why);
        let spawned = std::thread::Builder::new()
            .name("tollgate-db-check".into())
            .spawn(move || {
                std::thread::sleep(delay);
                let silence_is_failure = match health.upgrade() {
                    Some(health) => health.silence_is_failure,
                    None => return,
                };
                let asked = Instant::now();
                let verdict = attempt(&probe, PROBE_LIMIT, silence_is_failure);
                let Some(health) = health.upgrade() else {
                    return;
                };
                let work_done = {
                    let mut state = health.lock();
                    state.checking = false;
                    state.last_work_done.is_some_and(|at| at >= asked)
                };
                match verdict {
                    Verdict::Answered => {
                        health.lock().last_answer = Some(Instant::now());
                        tracing::debug!(suspicion = %why, "database check: it answers");
                        health.notify();
                    }
                    Verdict::Silent(err) if work_done => {
                        health.lock().last_answer = Some(Instant::now());
                        tracing::debug!(
                            suspicion = %why,
                            "database check: a fresh connection is slow ({err}), but the database finished other work meanwhile"
                        );
                        health.notify();
                    }
                    Verdict::Failed(err) | Verdict::Silent(err) => {
                        health.trip(&format!("{why}; a fresh connection: {err}"));
                    }
                    Verdict::Unknown => health.notify(),
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start a database check");
            self.lock().checking = false;
        }
    }

    /// Whether the database answers a connection of its own: the last check's verdict if it
    /// is recent, else a new check's, waited for up to [`PROBE_LIMIT`] and a little more.
    /// For `/health/ready` when its pooled `SELECT 1` could not run (a busy pool is not a
    /// database outage).
    pub async fn confirm(self: &Arc<Self>) -> bool {
        let mut changes = self.subscribe();
        let asked = Instant::now();
        let deadline = tokio::time::Instant::now() + PROBE_LIMIT + CHECK_COOLDOWN;
        {
            let state = self.lock();
            if state.down_since.is_some() {
                return false;
            }
            if state
                .last_answer
                .is_some_and(|at| at.elapsed() < CHECK_COOLDOWN)
            {
                return true;
            }
        }
        self.suspect("the readiness check could not use a pooled connection");
        loop {
            if !matches!(
                tokio::time::timeout_at(deadline, changes.changed()).await,
                Ok(Ok(()))
            ) {
                return false;
            }
            let state = self.lock();
            if state.down_since.is_some() {
                return false;
            }
            if state.last_answer.is_some_and(|at| at >= asked) {
                return true;
            }
        }
    }

    /// Opens the breaker (if it is not already) and starts the probe that closes it.
    fn trip(self: &Arc<Self>, why: &str) {
        {
            let mut state = self.lock();
            if state.down_since.is_none() {
                state.down_since = Some(Instant::now());
                self.epoch.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(error = %one_line(why), "database unavailable; answering 503 until it is back");
            }
        }
        self.start_probe();
        self.notify();
    }

    fn start_probe(self: &Arc<Self>) {
        {
            let mut state = self.lock();
            if state.probing || state.down_since.is_none() {
                return;
            }
            state.probing = true;
        }
        let (health, probe) = (Arc::downgrade(self), self.probe.clone());
        let silence_is_failure = self.silence_is_failure;
        let spawned = std::thread::Builder::new()
            .name("tollgate-db-probe".into())
            .spawn(move || recovery_probe(&health, &probe, silence_is_failure));
        if let Err(err) = spawned {
            // Without a probe nothing would ever close the breaker: let requests try the
            // database themselves (each is bounded) rather than answer 503 until restart.
            tracing::error!(error = %err, "cannot start the database probe; breaker closed");
            let mut state = self.lock();
            state.probing = false;
            state.down_since = None;
            drop(state);
            self.notify();
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
        state.last_answer = Some(Instant::now());
        drop(state);
        self.notify();
    }

    /// A statement on an established connection finished: the database answers. Weighed by
    /// a check whose fresh connection was silent (see the module documentation).
    pub fn note_answer(&self) {
        self.lock().last_work_done = Some(Instant::now());
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

/// Driver messages span lines; keep the log on one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// PostgreSQL refusing a new connection because all its slots are taken (by others): the
/// server is up and the pool's own connections still work, so this is no outage.
const SERVER_FULL_MESSAGES: &[&str] = &[
    "too many clients already",
    "remaining connection slots are reserved",
];

/// Whether a probe's error means the database is not there (see `silence_is_failure`).
fn failed(err: &DbError, silence_is_failure: bool) -> bool {
    let message = err.to_string().to_ascii_lowercase();
    if SERVER_FULL_MESSAGES.iter().any(|m| message.contains(m)) {
        return false;
    }
    silence_is_failure || err.is_outage()
}

/// One probe connection on a thread of its own, waited for up to `limit`. A probe that
/// hangs (a frozen server) is left to end at libpq's `connect_timeout` or when the server
/// answers; its late answer is ignored.
fn attempt(probe: &Probe, limit: Duration, silence_is_failure: bool) -> Verdict {
    let (tx, rx) = mpsc::channel();
    let probe = probe.clone();
    let spawned = std::thread::Builder::new()
        .name("tollgate-db-probe-conn".into())
        .spawn(move || {
            let _ = tx.send(probe());
        });
    if spawned.is_err() {
        return Verdict::Unknown;
    }
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => Verdict::Answered,
        Ok(Err(err)) if failed(&err, silence_is_failure) => Verdict::Failed(err.to_string()),
        Ok(Err(_)) => Verdict::Answered,
        Err(RecvTimeoutError::Timeout) if silence_is_failure => {
            Verdict::Silent(format!("no answer within {} ms", limit.as_millis()))
        }
        Err(_) => Verdict::Unknown,
    }
}

/// Runs on its own thread while the breaker is open: every [`PROBE_INTERVAL`] it starts a
/// fresh connection (outside the pool, whose connections may all be hung), keeping up to
/// [`MAX_PENDING_PROBES`] waiting on a server that does not answer, and closes the breaker
/// on the first that answers. Ends with the breaker's owner.
fn recovery_probe(health: &Weak<DbHealth>, probe: &Probe, silence_is_failure: bool) {
    /// Should the thread panic, the breaker is not left open without it. (Every other way
    /// out is through `close`, which clears `probing` itself: clearing it here as well could
    /// hide a probe started by a new opening meanwhile.)
    struct Ended<'a>(&'a Weak<DbHealth>);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            if std::thread::panicking()
                && let Some(health) = self.0.upgrade()
            {
                let mut state = health.lock();
                state.probing = false;
                if state.down_since.take().is_some() {
                    tracing::error!("the database probe failed; breaker closed");
                }
            }
        }
    }
    let _ended = Ended(health);
    let (tx, rx) = mpsc::channel::<Result<(), DbError>>();
    let mut pending = 0usize;
    loop {
        if pending < MAX_PENDING_PROBES {
            let (sender, attempt) = (tx.clone(), probe.clone());
            let spawned = std::thread::Builder::new()
                .name("tollgate-db-probe-conn".into())
                .spawn(move || {
                    let _ = sender.send(attempt());
                });
            if spawned.is_err() {
                // No thread to spare: probe here, blocking this loop for one attempt.
                let _ = tx.send(probe());
            }
            pending += 1;
        }
        let tick = Instant::now() + PROBE_INTERVAL;
        while let Ok(result) = rx.recv_timeout(tick.saturating_duration_since(Instant::now())) {
            pending = pending.saturating_sub(1);
            let answered = match result {
                Ok(()) => true,
                Err(err) => !failed(&err, silence_is_failure),
            };
            if answered {
                if let Some(health) = health.upgrade() {
                    health.close();
                }
                return;
            }
        }
        match health.upgrade() {
            Some(health) if health.lock().down_since.is_some() => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use diesel::result::{DatabaseErrorKind, Error};

    use super::{DbError, DbHealth, PROBE_LIMIT, Probe};

    fn driver(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::Query(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn errors_are_told_apart_outage_refused_write_transient_or_bug() {
        use DatabaseErrorKind::{ClosedConnection, ReadOnlyTransaction, UniqueViolation, Unknown};
        let outages = [
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
        // Local overload and contention: a 503 for this request, no evidence of an outage.
        let transient = [
            DbError::TimedOut,
            DbError::Canceled,
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
            DbError::Panicked,
        ];
        for err in &bugs {
            assert!(!err.is_unavailable() && !err.is_outage(), "{err}");
        }
    }

    /// A probe whose answer the test switches: up, down (refused) or hanging.
    fn switchable() -> (Probe, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        // 0 up, 1 refused, 2 hangs for 3 s.
        let mode = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (m, c) = (mode.clone(), calls.clone());
        let probe: Probe = Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            match m.load(Ordering::SeqCst) {
                0 => Ok(()),
                1 => Err(DbError::Connect("connection refused".into())),
                _ => {
                    std::thread::sleep(Duration::from_secs(3));
                    Ok(())
                }
            }
        });
        (probe, mode, calls)
    }

    fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < limit, "{what} not within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_suspicion_opens_the_breaker_only_when_a_fresh_connection_fails() {
        let (probe, mode, _) = switchable();
        let health = DbHealth::new(probe, true);
        // The database answers: overload raised the suspicion, nothing opens.
        health.suspect("slow request");
        wait_for("the check", Duration::from_secs(2), || {
            !health.lock().checking
        });
        assert!(!health.is_down());
        // Refused: the breaker opens, the epoch moves, and the probe closes it once the
        // database is back.
        mode.store(1, Ordering::SeqCst);
        std::thread::sleep(super::CHECK_COOLDOWN);
        let epoch = health.epoch();
        health.suspect("connection lost");
        wait_for("the breaker to open", Duration::from_secs(2), || {
            health.is_down()
        });
        assert_eq!(health.epoch(), epoch + 1);
        std::thread::sleep(Duration::from_millis(300));
        assert!(health.is_down(), "still down while refused");
        mode.store(0, Ordering::SeqCst);
        wait_for("the probe to close it", Duration::from_secs(1), || {
            !health.is_down()
        });
    }

    #[test]
    fn silence_opens_the_breaker_for_postgresql_but_not_for_sqlite() {
        for silence_is_failure in [true, false] {
            let (probe, mode, _) = switchable();
            mode.store(2, Ordering::SeqCst);
            let health = DbHealth::new(probe, silence_is_failure);
            let started = Instant::now();
            health.suspect("slow request");
            wait_for("the check", PROBE_LIMIT * 2, || !health.lock().checking);
            assert_eq!(health.is_down(), silence_is_failure);
            if silence_is_failure {
                assert!(started.elapsed() < PROBE_LIMIT + Duration::from_millis(500));
            }
        }
    }

    #[test]
    fn a_slow_fresh_connection_is_no_outage_while_other_work_finishes() {
        let (probe, mode, _) = switchable();
        mode.store(2, Ordering::SeqCst);
        let health = DbHealth::new(probe, true);
        // Established connections keep answering (a starved machine, not a frozen server).
        let answering = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let worker = {
            let (health, answering) = (health.clone(), answering.clone());
            std::thread::spawn(move || {
                while answering.load(Ordering::SeqCst) {
                    health.note_answer();
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        health.suspect("slow request");
        wait_for("the check", PROBE_LIMIT * 2, || !health.lock().checking);
        assert!(
            !health.is_down(),
            "the database finished work during the check"
        );
        answering.store(false, Ordering::SeqCst);
        worker.join().expect("worker");
        // Work that finished before the check began is no evidence: silence opens it.
        std::thread::sleep(super::CHECK_COOLDOWN);
        health.suspect("slow request");
        wait_for("the breaker to open", PROBE_LIMIT * 2, || health.is_down());
        // An error is never outweighed by other work.
        mode.store(0, Ordering::SeqCst);
        wait_for("the probe to close it", Duration::from_secs(4), || {
            !health.is_down()
        });
        mode.store(1, Ordering::SeqCst);
        std::thread::sleep(super::CHECK_COOLDOWN);
        health.note_answer();
        health.suspect("connection lost");
        health.note_answer();
        wait_for("the breaker to open", Duration::from_secs(2), || {
            health.is_down()
        });
    }

    #[test]
    fn a_full_server_or_a_busy_sqlite_file_is_not_an_outage() {
        let full = DbError::Connect(
            "cannot connect to postgres://h/db: FATAL: sorry, too many clients already".into(),
        );
        assert!(!super::failed(&full, true));
        let locked = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        ));
        assert!(!super::failed(&locked, false));
        assert!(super::failed(&locked, true), "PostgreSQL: any other error");
        assert!(super::failed(&DbError::Connect("refused".into()), false));
    }

    #[test]
    fn an_open_breaker_always_has_a_probe() {
        let (probe, mode, calls) = switchable();
        mode.store(1, Ordering::SeqCst);
        let health = DbHealth::new(probe, true);
        // As if the probe had died without closing the breaker.
        health.lock().down_since = Some(Instant::now());
        assert!(!health.lock().probing);
        assert!(health.is_down());
        assert!(health.lock().probing, "asking restarts the probe");
        wait_for("probe attempts", Duration::from_secs(1), || {
            calls.load(Ordering::SeqCst) >= 2
        });
        mode.store(0, Ordering::SeqCst);
        wait_for("the probe to close it", Duration::from_secs(1), || {
            !health.is_down()
        });
    }

    #[test]
    fn confirm_reports_whether_the_database_answers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let (probe, mode, _) = switchable();
        let health = DbHealth::new(probe, true);
        assert!(rt.block_on(health.confirm()));
        std::thread::sleep(super::CHECK_COOLDOWN);
        mode.store(1, Ordering::SeqCst);
        assert!(!rt.block_on(health.confirm()));
        assert!(health.is_down());
    }
}
