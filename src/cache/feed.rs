//! The change feed: one thread per instance, on a database connection of its own (never the
//! pool's), applying every change to clients, API keys, accounts and revocations to the
//! view and confirming each round.
//!
//! - PostgreSQL: `LISTEN tollgate_changes` (the triggers `NOTIFY` at commit). Notifications
//!   are drained every few milliseconds; a round trip every [`PG_ROUND`] confirms that
//!   everything committed before it was delivered (the server sends pending notifications
//!   before it answers). A lost session may have missed notifications: the view is forgotten
//!   and rebuilt from the database, on a new session.
//! - SQLite: the triggers append to `cache_changes`; each round reads the rows after the
//!   last one seen ([`SQLITE_ROUND`]). One writer at a time means rows appear in `seq` order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;
use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use super::HotCache;
use crate::db::{Db, DbConn, DbError, DbHealth};

/// The PostgreSQL channel the triggers notify.
pub const CHANNEL: &str = "tollgate_changes";
const PG_DRAIN: Duration = Duration::from_millis(5);
const PG_ROUND: Duration = Duration::from_millis(100);
const SQLITE_ROUND: Duration = Duration::from_millis(10);
/// Rows of `cache_changes` read at once.
const BATCH: i64 = 1000;
/// Rows of `cache_changes` older than this are pruned ([`prune`]); a round later than
/// [`STALL`] after the previous one forgets the view instead of trusting it had all rows.
pub const KEEP_CHANGES_SECONDS: i64 = 600;
const STALL: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How requests reach the feed thread: a wake-up, and the rounds it confirmed.
pub struct FeedHandle {
    wake: Mutex<Option<SyncSender<()>>>,
    confirmed: tokio::sync::watch::Sender<u64>,
}

impl Default for FeedHandle {
    fn default() -> Self {
        Self {
            wake: Mutex::new(None),
            confirmed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl FeedHandle {
    pub(super) fn confirmed(&self, round_started: u64) {
        self.confirmed.send_if_modified(|confirmed| {
            let moved = round_started > *confirmed;
            *confirmed = (*confirmed).max(round_started);
            moved
        });
    }

    fn wake(&self) {
        if let Ok(wake) = self.wake.lock()
            && let Some(wake) = wake.as_ref()
        {
            // Full: a round is already due.
            let _ = wake.try_send(());
        }
    }

    pub(super) async fn wait_for_round(&self, wanted: u64, limit: Duration) {
        let mut confirmed = self.confirmed.subscribe();
        self.wake();
        let _ = tokio::time::timeout(limit, confirmed.wait_for(|at| *at >= wanted)).await;
    }

    pub(super) fn wait_for_round_blocking(&self, wanted: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        self.wake();
        while *self.confirmed.borrow() < wanted && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Stops the feed when dropped; the view is no longer trusted from then on.
pub struct FeedGuard {
    stop: Arc<AtomicBool>,
    cache: Arc<HotCache>,
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.cache.distrust();
        self.cache.feed.wake();
    }
}

/// Starts the feed thread. An in-memory SQLite database cannot be shared with a second
/// connection: there is no feed then, and every lookup reads the database.
pub fn start(cache: Arc<HotCache>, db: &Db) -> Option<FeedGuard> {
    let connect = db.dedicated_connector()?;
    let health = db.health().clone();
    let (wake, woken) = sync_channel(1);
    if let Ok(mut slot) = cache.feed.wake.lock() {
        *slot = Some(wake);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let guard = FeedGuard {
        stop: stop.clone(),
        cache: cache.clone(),
    };
    let spawned = std::thread::Builder::new()
        .name("tollgate-feed".into())
        .spawn(move || run(&cache, &health, connect, &woken, &stop));
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the change feed; every lookup reads the database");
        return None;
    }
    Some(guard)
}

fn run(
    cache: &HotCache,
    health: &DbHealth,
    connect: impl Fn() -> Result<DbConn, DbError>,
    woken: &Receiver<()>,
    stop: &AtomicBool,
) {
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        let ended = connect().and_then(|conn| {
            if failing {
                tracing::info!("change feed reconnected");
                failing = false;
            }
            backoff = Duration::from_millis(50);
            match conn {
                DbConn::Postgres(conn) => follow_postgres(cache, health, conn, woken, stop),
                DbConn::Sqlite(conn) => follow_sqlite(cache, conn, woken, stop),
            }
        });
        cache.distrust();
        match ended {
            Ok(()) => return,
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "change feed lost; lookups read the database until it is back");
                    failing = true;
                }
            }
        }
        // Woken early when asked: a request waiting for a round should not wait out the
        // whole back-off, and a stop should end the thread at once.
        match woken.recv_timeout(backoff) {
            Err(RecvTimeoutError::Disconnected) => return,
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Waits for the next round: woken by a request, or the period ends. `None`: stop.
fn next_round(woken: &Receiver<()>, period: Duration, stop: &AtomicBool) -> Option<bool> {
    let forced = match woken.recv_timeout(period) {
        Ok(()) => true,
        Err(RecvTimeoutError::Timeout) => false,
        Err(RecvTimeoutError::Disconnected) => return None,
    };
    (!stop.load(Ordering::Acquire)).then_some(forced)
}

fn follow_postgres(
    cache: &HotCache,
    health: &DbHealth,
    mut conn: PgConnection,
    woken: &Receiver<()>,
    stop: &AtomicBool,
) -> Result<(), DbError> {
    // Named, so that an operator can tell it in `pg_stat_activity`.
    diesel::sql_query("SET application_name = 'tollgate-change-feed'").execute(&mut conn)?;
    diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
    // Whatever happened while nobody listened is in the database: start over from it.
    cache.forget_all();
    let mut last_round = Instant::now();
    pg_round(cache, &mut conn)?;
    while let Some(forced) = next_round(woken, PG_DRAIN, stop) {
        drain(cache, &mut conn)?;
        if forced || last_round.elapsed() >= PG_ROUND {
            last_round = Instant::now();
            pg_round(cache, &mut conn)?;
            // Evidence for a check whose fresh connection is slow (see `db::health`).
            health.note_answer();
        }
    }
    Ok(())
}

/// A round trip: every notification committed before it is in by its answer.
fn pg_round(cache: &HotCache, conn: &mut PgConnection) -> Result<(), DbError> {
    let started = cache.now_ms();
    diesel::sql_query("SELECT 1").execute(conn)?;
    drain(cache, conn)?;
    cache.confirm(started);
    Ok(())
}

fn drain(cache: &HotCache, conn: &mut PgConnection) -> Result<(), DbError> {
    for notification in conn.notifications_iter() {
        let notification = notification?;
        match notification.payload.split_once(' ') {
            Some((kind, key)) => cache.apply(kind, key),
            None => cache.apply("", ""),
        }
    }
    Ok(())
}

// SQLite only (PostgreSQL has no such table). Declared for the query builder, whose
// statements are prepared once per connection and reused.
diesel::table! {
    cache_changes (seq) {
        seq -> BigInt,
        kind -> Text,
        key -> Text,
    }
}

/// The newest change row's `seq` (0 when there is none). No parameter (`get_result`, not
/// `first`, whose bound `LIMIT` made SQLite prepare the statement again on every round):
/// the statement stays prepared.
fn newest_change(conn: &mut SqliteConnection) -> Result<i64, DbError> {
    let newest: Option<i64> = cache_changes::table
        .select(diesel::dsl::max(cache_changes::seq))
        .get_result(conn)?;
    Ok(newest.unwrap_or(0))
}

fn follow_sqlite(
    cache: &HotCache,
    mut conn: SqliteConnection,
    woken: &Receiver<()>,
    stop: &AtomicBool,
) -> Result<(), DbError> {
    let started = cache.now_ms();
    let mut last = newest_change(&mut conn)?;
    cache.forget_all();
    cache.confirm(started);
    let mut last_round = Instant::now();
    while next_round(woken, SQLITE_ROUND, stop).is_some() {
        if last_round.elapsed() >= STALL {
            cache.forget_all();
        }
        last_round = Instant::now();
        let started = cache.now_ms();
        // Most rounds find nothing new: ask that first. The range query below is planned
        // again whenever its bound changes (SQLite re-plans range constraints on a new
        // value).
        let newest = newest_change(&mut conn)?;
        while newest > last {
            let changes: Vec<(i64, String, String)> = cache_changes::table
                .filter(cache_changes::seq.gt(last))
                .order(cache_changes::seq)
                .limit(BATCH)
                .load(&mut conn)?;
            for (seq, kind, key) in &changes {
                cache.apply(kind, key);
                last = *seq;
            }
            if changes.is_empty() {
                break;
            }
        }
        cache.confirm(started);
    }
    Ok(())
}

/// Drops SQLite's change rows every instance has long read (PostgreSQL keeps none). By
/// the database's own clock, the one that stamped them.
pub fn prune(conn: &mut DbConn) -> Result<usize, DbError> {
    match conn {
        DbConn::Sqlite(_) => Ok(diesel::sql_query(
            "DELETE FROM cache_changes WHERE changed_at < CAST(strftime('%s', 'now') AS INTEGER) - ?",
        )
        .bind::<BigInt, _>(KEEP_CHANGES_SECONDS)
        .execute(conn)?),
        DbConn::Postgres(_) => Ok(0),
    }
}
