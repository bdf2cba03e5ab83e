//! Storage: one connection type over SQLite and PostgreSQL, an r2d2 pool that keeps the real
//! connection error, embedded migrations per backend, [`Db::run`] (the one place where
//! blocking diesel work leaves the async threads) and [`transaction`].
//!
//! Queries take and return domain values (`crate::domain`) and [`DbError`]; the row structs
//! in `models` never leave this module. Framework-free: the blocking pool is tokio's.
//!
//! Everything written here uses the subset of SQL both backends share (see `schema.rs`):
//! text ids generated in Rust, Unix-second `BIGINT` times bound from Rust, no upserts.

pub mod accounts;
pub mod api_keys;
pub mod app_authorizations;
pub mod audit;
pub mod challenges;
pub mod clients;
pub mod console_sessions;
pub mod credentials;
pub mod health;
pub mod invites;
pub mod keys;
mod models;
pub mod pairing_guesses;
pub mod revocations;
pub mod schema;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

pub use health::{DbHealth, StoreFailure};

/// One connection, either backend, chosen at run time by the database URL.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// WAL lets the server and the CLI share one file; the busy timeout (set first, from
/// [`PoolOptions::statement_timeout`]) makes a writer wait for the other instead of failing
/// at once, and switching to WAL wait for a lock too. Foreign keys are per connection.
///
/// `cache_size` (negative: KiB) is per connection, so SQLite's default of 2 MiB grows to
/// 2 MiB times the pool once a large database has been read at random: 8 MiB of the
/// server's memory with the default pool. The hot path reads the in-memory view, not these
/// pages, and the operating system caches the file for the reads that miss it.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
    PRAGMA synchronous = NORMAL; PRAGMA cache_size = -512;";

/// libpq parameters added to a PostgreSQL URL that does not set them itself.
///
/// `connect_timeout` (seconds; libpq's minimum is 2): without it a frozen server holds a
/// connection attempt forever. TCP keepalives and `tcp_user_timeout` (ms): without them a
/// silently dropped network (no RST, no FIN) leaves a query waiting for its answer until
/// the kernel gives up retransmitting, about 15 minutes, holding a pooled connection and a
/// blocking thread the whole time; with them the socket dies after about 10 s.
const PG_CONNECTION_DEFAULTS: &[(&str, &str)] = &[
    ("connect_timeout", "2"),
    ("keepalives", "1"),
    ("keepalives_idle", "5"),
    ("keepalives_interval", "2"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// [`Db::connect_existing`]: no database there (the URL, described).
    #[error("no database at {0}")]
    Missing(String),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("damaged row in the database: {0}")]
    Corrupt(#[from] crate::domain::CorruptRow),
    #[error("{0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("the database task was canceled")]
    Canceled,
    /// A bug: the closure given to [`Db::run`] panicked (500, not 503).
    #[error("the database task panicked")]
    Panicked,
    /// The breaker is open: the database was seen down and has not answered since.
    #[error("the database is unavailable")]
    Unavailable,
    /// The database did not answer within the request's bound.
    #[error("the database did not answer in time")]
    TimedOut,
    /// A lookup from memory only found nothing it may trust (`crate::cache`); the caller
    /// asks again with the database. Never an answer to a request.
    #[error("not in the in-memory view")]
    NotCached,
}

impl DbError {
    /// A row referred to a row that is gone: on PostgreSQL, a concurrent transaction
    /// deleted the parent between this one's read of it and its insert.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _
            ))
        )
    }
}

/// Driver messages of a lost or unreachable server (libpq and PostgreSQL's own).
const OUTAGE_MESSAGES: &[&str] = &[
    "server closed the connection",
    "no connection to the server",
    "terminating connection",
    "could not connect",
    "connection refused",
    "connection timed out",
    "the database system is",
    "could not receive data",
    "could not send data",
    "ssl syscall error",
    "eof detected",
];

/// Driver messages of a database that refuses writes: SQLite's SQLITE_FULL, SQLITE_READONLY,
/// SQLITE_IOERR and SQLITE_CANTOPEN, PostgreSQL's disk_full and read-only transactions.
const WRITE_REFUSED_MESSAGES: &[&str] = &[
    "database or disk is full",
    "readonly database",
    "disk i/o error",
    "unable to open database file",
    "could not extend file",
    "no space left on device",
    "read-only transaction",
];

/// Transient but not an outage: contention past the busy timeout, a statement past
/// `statement_timeout`.
const TRANSIENT_MESSAGES: &[&str] = &[
    "database is locked",
    "database table is locked",
    "canceling statement due to statement timeout",
    "canceling statement due to lock timeout",
];

impl DbError {
    fn message_has(&self, needles: &[&str]) -> bool {
        use diesel::result::Error;
        match self {
            DbError::Query(Error::DatabaseError(_, info)) => {
                let message = info.message().to_ascii_lowercase();
                needles.iter().any(|needle| message.contains(needle))
            }
            _ => false,
        }
    }

    /// The driver says the database is gone (lost or refused connection, server shutting
    /// down), or the breaker is open. Such an error raises a suspicion that a check with a
    /// fresh connection confirms before the breaker opens (see [`health`]). A pool
    /// checkout timeout or a request past its bound is not one: that is local overload.
    pub fn is_outage(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect(_) | DbError::Unavailable => true,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            other => other.message_has(OUTAGE_MESSAGES),
        }
    }

    /// The database answers but refuses to write: disk full, read-only.
    pub fn is_write_refused(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ReadOnlyTransaction,
                _
            ))
        ) || self.message_has(WRITE_REFUSED_MESSAGES)
    }

    /// Outages, refused writes, contention, overload and timeouts are transient (503);
    /// anything else is a bug or a broken database (500).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Canceled | DbError::Pool(_) | DbError::TimedOut
        ) || self.is_outage()
            || self.is_write_refused()
            || self.message_has(TRANSIENT_MESSAGES)
    }
}

/// A validated database URL. The Postgres URL may hold a password, so it stays secret.
#[derive(Clone)]
pub enum DbUrl {
    Postgres(SecretString),
    SqliteFile(PathBuf),
    SqliteMemory,
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl DbUrl {
    /// Accepts `postgres://…`, `postgresql://…`, `sqlite://PATH` and `sqlite::memory:`.
    ///
    /// The scheme picks the backend (as diesel_cli does): diesel's `MultiConnection::establish`
    /// would try each backend in turn, throw away the real error, and happily treat any
    /// string as a SQLite file name.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(SecretString::from(url.to_owned())));
        }
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(DbUrl::SqliteMemory);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/tollgate.db".into());
            }
            return Ok(DbUrl::SqliteFile(PathBuf::from(path)));
        }
        Err(format!(
            "unsupported database URL scheme in {:?}: use sqlite://PATH, sqlite::memory: or postgres://…",
            url.split("://").next().unwrap_or_default()
        ))
    }

    pub fn is_sqlite(&self) -> bool {
        !matches!(self, DbUrl::Postgres(_))
    }

    /// A loggable description that never includes credentials: a SQLite file by its
    /// absolute path (`sqlite:///srv/tollgate/data/tollgate.db`, itself a valid
    /// `database.url`), a PostgreSQL URL with its password (and any `…password=` query
    /// parameter) replaced by `***`.
    pub fn describe(&self) -> String {
        match self {
            DbUrl::Postgres(url) => describe_postgres(url.expose_secret()),
            DbUrl::SqliteFile(path) => format!("sqlite://{}", absolute(path).display()),
            DbUrl::SqliteMemory => "sqlite::memory:".to_owned(),
        }
    }
}

/// `path` made absolute against the working directory (without resolving links; a path
/// that cannot be made absolute stays as it is).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn describe_postgres(text: &str) -> String {
    const REDACTED: &str = "***";
    let Ok(mut url) = url::Url::parse(text) else {
        return "postgres://(unparsable URL)".to_owned();
    };
    url.set_fragment(None);
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let secret = name.to_ascii_lowercase().contains("password");
            let value = if secret {
                REDACTED.into()
            } else {
                value.into()
            };
            (name.into_owned(), value)
        })
        .collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
        // Not expected for a URL with a password; never print it anyway.
        return format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        );
    }
    url.to_string()
}

/// Builds connections by backend and keeps the real connection error (see [`DbUrl::parse`]).
pub struct DbManager {
    url: DbUrl,
    options: PoolOptions,
    health: Arc<DbHealth>,
}

/// A pooled connection; one that failed as if its server were gone is marked `dead` and
/// dropped at check-in instead of being handed to the next request, and so is one made
/// before the breaker last opened (it may be dead or hung: `epoch`).
pub struct PoolConn {
    conn: DbConn,
    dead: bool,
    epoch: u64,
}

impl PoolConn {
    /// Drops this connection when it goes back to the pool.
    pub fn discard(&mut self) {
        self.dead = true;
    }
}

impl std::ops::Deref for PoolConn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl std::ops::DerefMut for PoolConn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl r2d2::ManageConnection for DbManager {
    type Connection = PoolConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<PoolConn, Self::Error> {
        let epoch = self.health.epoch();
        Ok(PoolConn {
            conn: establish(&self.url, &self.options)?,
            dead: false,
            epoch,
        })
    }

    fn is_valid(&self, conn: &mut PoolConn) -> Result<(), Self::Error> {
        conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PoolConn) -> bool {
        std::thread::panicking()
            || conn.dead
            || conn.epoch != self.health.epoch()
            || conn.conn.is_broken()
    }
}

/// One new connection of the URL's backend, set up as the pool's are.
fn establish(url: &DbUrl, options: &PoolOptions) -> Result<DbConn, diesel::r2d2::Error> {
    let statement_ms = options.statement_timeout.as_millis();
    Ok(match url {
        DbUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(&with_pg_defaults(url.expose_secret()))
                .map_err(diesel::r2d2::Error::ConnectionError)?;
            // Bounds every statement, lock waits included; the server cancels it.
            conn.batch_execute(&format!("SET statement_timeout = {statement_ms}"))
                .map_err(diesel::r2d2::Error::QueryError)?;
            DbConn::Postgres(conn)
        }
        DbUrl::SqliteFile(path) => sqlite_connection(&path.to_string_lossy(), options)?,
        DbUrl::SqliteMemory => sqlite_connection(":memory:", options)?,
    })
}

fn sqlite_connection(path: &str, options: &PoolOptions) -> Result<DbConn, diesel::r2d2::Error> {
    let mut conn =
        SqliteConnection::establish(path).map_err(diesel::r2d2::Error::ConnectionError)?;
    let mut pragmas = format!(
        "PRAGMA busy_timeout = {}; {SQLITE_PRAGMAS}",
        options.statement_timeout.as_millis()
    );
    if let Some(bytes) = options.sqlite_max_size_bytes {
        // page_size is 4096 unless the file says otherwise; max_page_count counts pages.
        let page_size: u64 = 4096;
        let pages = bytes.div_ceil(page_size).max(1);
        pragmas.push_str(&format!(" PRAGMA max_page_count = {pages};"));
    }
    conn.batch_execute(&pragmas)
        .map_err(diesel::r2d2::Error::QueryError)?;
    Ok(DbConn::Sqlite(conn))
}

/// Adds each of [`PG_CONNECTION_DEFAULTS`] that the URL's query does not set itself.
fn with_pg_defaults(url: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (url, None),
    };
    let given: Vec<&str> = base
        .split_once('?')
        .map(|(_, query)| {
            query
                .split('&')
                .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
                .collect()
        })
        .unwrap_or_default();
    let mut out = base.to_owned();
    let mut separator = if base.contains('?') { '&' } else { '?' };
    for (name, value) in PG_CONNECTION_DEFAULTS {
        if !given.contains(name) {
            out.push(separator);
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            separator = '&';
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a request waits for a pooled connection.
    pub connection_timeout: Duration,
    /// PostgreSQL's `statement_timeout` and SQLite's `busy_timeout`.
    pub statement_timeout: Duration,
    /// SQLite only: the largest the database file may grow (`max_page_count`); past it,
    /// writes fail with SQLITE_FULL (503) while reads go on.
    pub sqlite_max_size_bytes: Option<u64>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(5),
            sqlite_max_size_bytes: None,
        }
    }
}

impl PoolOptions {
    /// The longest a request waits for the database: a checkout, then one statement
    /// (which the server cancels at its timeout), with a little slack.
    pub fn request_limit(&self) -> Duration {
        self.connection_timeout + self.statement_timeout + Duration::from_millis(250)
    }
}

/// A request whose database work runs this long raises a suspicion (a check with a fresh
/// connection, see [`health`]), or sooner with a shorter statement timeout: long enough to
/// be rare on a healthy database, short enough that a frozen one is found before the
/// requests waiting on it time out.
const SUSPECT_AFTER: Duration = Duration::from_secs(1);

/// Background upkeep may take longer than a request (pruning, many statements); the
/// server still bounds each statement.
pub const BACKGROUND_LIMIT: Duration = Duration::from_secs(60);

/// What [`Db::pool_state`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections, idle or in use.
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// The circuit breaker is closed.
    pub up: bool,
}

/// Counts a caller as waiting for a pooled connection until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<DbManager>,
    is_sqlite: bool,
    health: Arc<DbHealth>,
    /// Callers inside [`checkout`], for the pool gauges.
    waiting: Arc<AtomicUsize>,
    request_limit: Duration,
    suspect_after: Duration,
    /// How long a caller past its bound still waits for a commit already under way.
    commit_grace: Duration,
    url: DbUrl,
    options: PoolOptions,
}

impl Db {
    /// Opens the pool and checks that one connection can be made, so a wrong URL or a
    /// database that is down fails here with the driver's own message.
    pub fn connect(url: &DbUrl, options: &PoolOptions) -> Result<Self, DbError> {
        // One direct attempt first: r2d2 would retry until its timeout and report only
        // "timed out"; this surfaces the driver's own message at once.
        drop(Self::connect_one_with(url, options)?);
        // Every in-memory SQLite connection is a new, empty database: keep exactly one.
        let max_size = if matches!(url, DbUrl::SqliteMemory) {
            1
        } else {
            options.max_size.max(1)
        };
        let mut builder = r2d2::Pool::builder()
            .max_size(max_size)
            // Connections open on demand. A background "keep one idle" connect would also
            // race process exit in short-lived CLI runs (libpq and OpenSSL tear-down).
            .min_idle(Some(0))
            .connection_timeout(options.connection_timeout)
            // The token path does exactly one query; a `SELECT 1` on every checkout would
            // double it. A dead connection fails one request and is then dropped by
            // `has_broken`.
            .test_on_check_out(false);
        if matches!(url, DbUrl::SqliteMemory) {
            builder = builder.idle_timeout(None).max_lifetime(None);
        }
        // The breaker's checks and probe use connections of their own, never the pool's:
        // a pool full of hung connections must not keep it open.
        let probe: health::Probe = {
            let (url, options) = (url.clone(), options.clone());
            Arc::new(move || {
                let mut conn = establish(&url, &options).map_err(|e| connect_error(&url, &e))?;
                ping(&mut conn)
            })
        };
        let health = DbHealth::new(probe, !url.is_sqlite());
        let manager = DbManager {
            url: url.clone(),
            options: options.clone(),
            health: health.clone(),
        };
        let pool = builder
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            is_sqlite: url.is_sqlite(),
            health,
            waiting: Arc::default(),
            request_limit: options.request_limit(),
            suspect_after: options.statement_timeout.min(SUSPECT_AFTER),
            commit_grace: options.statement_timeout,
            url: url.clone(),
            options: options.clone(),
        })
    }

    /// Opens connections of their own (outside the pool) to the same database, for a
    /// long-lived reader such as the change feed. None for an in-memory SQLite database,
    /// which a second connection would not see.
    pub fn dedicated_connector(
        &self,
    ) -> Option<impl Fn() -> Result<DbConn, DbError> + Send + 'static> {
        if matches!(self.url, DbUrl::SqliteMemory) {
            return None;
        }
        let (url, options) = (self.url.clone(), self.options.clone());
        Some(move || establish(&url, &options).map_err(|e| connect_error(&url, &e)))
    }

    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// The breaker and the last refused write, for `/health/ready`.
    pub fn health(&self) -> &Arc<DbHealth> {
        &self.health
    }

    /// The pool's state, for the metrics.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
            waiting: self.waiting.load(Ordering::Relaxed),
            up: !self.health.is_down(),
        }
    }

    /// One connection outside any pool, for short-lived commands (the CLI): it is closed
    /// before the process exits, rather than left to a pool's background threads.
    pub fn connect_one(url: &DbUrl) -> Result<DbConn, DbError> {
        Self::connect_one_with(url, &PoolOptions::default())
    }

    /// One connection, like [`Db::connect_one`], to a database that must exist already: a
    /// missing SQLite file is an error ([`DbError::Missing`]), never created.
    pub fn connect_existing(url: &DbUrl) -> Result<DbConn, DbError> {
        if let DbUrl::SqliteFile(path) = url {
            match absolute(path).try_exists() {
                Ok(true) => {}
                Ok(false) => return Err(DbError::Missing(url.describe())),
                Err(_) => return Err(DbError::Connect(sqlite_access_error(path))),
            }
            if let Some(problem) = sqlite_access_problem(path) {
                return Err(DbError::Connect(problem));
            }
        }
        establish(url, &PoolOptions::default()).map_err(|e| connect_error(url, &e))
    }

    fn connect_one_with(url: &DbUrl, options: &PoolOptions) -> Result<DbConn, DbError> {
        if let DbUrl::SqliteFile(path) = url {
            create_parent_dir(path).map_err(|e| DbError::Connect(create_error(path, &e)))?;
            if let Some(problem) = sqlite_access_problem(path) {
                return Err(DbError::Connect(problem));
            }
        }
        establish(url, options).map_err(|e| connect_error(url, &e))
    }

    /// A pooled connection for synchronous callers (CLI, start-up, background tasks
    /// already on a blocking thread).
    pub fn get(&self) -> Result<r2d2::PooledConnection<DbManager>, DbError> {
        if self.health.is_down() {
            return Err(DbError::Unavailable);
        }
        checkout(
            &self.pool,
            &self.health,
            &self.waiting,
            self.pool.connection_timeout(),
        )
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, keeping the
    /// caller's tracing span. Checkout happens there too, since it may block.
    ///
    /// Bounded: the caller gets [`DbError::TimedOut`] after the checkout timeout plus the
    /// statement timeout even when the database is frozen (a 503 for this request only),
    /// [`DbError::Unavailable`] at once while the breaker is open and as soon as it opens
    /// while waiting (see [`health`]), and [`DbError::Panicked`] (500) if `f` panics. Once
    /// the caller has its answer, `f` can no longer commit a [`transaction`].
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + StoreFailure + Send + 'static,
    {
        self.run_within(self.request_limit, f).await
    }

    /// [`Db::run`] for background upkeep, bounded by [`BACKGROUND_LIMIT`].
    pub async fn run_background<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + StoreFailure + Send + 'static,
    {
        self.run_within(BACKGROUND_LIMIT.max(self.request_limit), f)
            .await
    }

    /// [`Db::run`] with a bound of its own (the readiness check's is short). Running out of
    /// time never opens the breaker by itself: it raises a suspicion that a check with a
    /// fresh connection confirms or dismisses.
    pub async fn run_within<T, E, F>(&self, limit: Duration, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + StoreFailure + Send + 'static,
    {
        if self.health.is_down() {
            return Err(DbError::Unavailable.into());
        }
        let started = Instant::now();
        let deadline = started + limit;
        let gate = Arc::new(Gate::default());
        let mut changes = self.health.subscribe();
        let (pool, health, task_gate) = (self.pool.clone(), self.health.clone(), gate.clone());
        let waiting = self.waiting.clone();
        let scope = crate::telemetry::request::RequestScope::current();
        let mut task = tokio::task::spawn_blocking(move || {
            crate::telemetry::request::RequestScope::run(scope, || {
                // Waited in the queue past the caller's patience, or the database went
                // down meanwhile: do not run work nobody waits for.
                if task_gate.is_abandoned() || Instant::now() >= deadline {
                    return Err(DbError::TimedOut.into());
                }
                if health.is_down() {
                    return Err(DbError::Unavailable.into());
                }
                let wait = deadline.saturating_duration_since(Instant::now());
                let mut conn = checkout(
                    &pool,
                    &health,
                    &waiting,
                    wait.min(pool.connection_timeout()),
                )?;
                if task_gate.is_abandoned() {
                    return Err(DbError::TimedOut.into());
                }
                let result = {
                    let _gated = GateScope::enter(task_gate);
                    f(&mut conn)
                };
                if result.is_ok() {
                    health.note_answer();
                }
                if let Err(err) = &result
                    && let Some(db_err) = err.store_error()
                {
                    if db_err.is_outage() {
                        conn.discard();
                        health.suspect(&db_err.to_string());
                    } else if db_err.is_write_refused() {
                        health.note_write_failure();
                    }
                }
                result
            })
        });
        // If this future is dropped (the client went away), the task cannot commit either.
        let mut waiting = AbandonOnDrop(Some(gate.clone()));
        let suspect_at = tokio::time::Instant::from(started + self.suspect_after);
        let mut suspected = false;
        let mut watching = true;
        let gave_up = loop {
            tokio::select! {
                joined = &mut task => {
                    waiting.0 = None;
                    return joined_result(joined);
                }
                () = tokio::time::sleep_until(suspect_at), if !suspected => {
                    suspected = true;
                    self.health.suspect(&format!(
                        "a database task has run for over {} ms",
                        self.suspect_after.as_millis()
                    ));
                }
                () = tokio::time::sleep_until(deadline.into()) => break DbError::TimedOut,
                changed = changes.changed(), if watching => {
                    watching = changed.is_ok();
                    if self.health.is_down() {
                        break DbError::Unavailable;
                    }
                }
            }
        };
        if !gate.abandon() {
            // A commit is under way or done: its outcome is the answer, if it comes soon.
            if let Ok(joined) = tokio::time::timeout(self.commit_grace, &mut task).await {
                return joined_result(joined);
            }
            gate.force_abandon();
            tracing::warn!("gave up on a database task that had begun to commit");
        }
        Err(gave_up.into())
    }
}

fn joined_result<T, E>(joined: Result<Result<T, E>, tokio::task::JoinError>) -> Result<T, E>
where
    E: From<DbError>,
{
    match joined {
        Ok(result) => result,
        Err(err) if err.is_panic() => {
            tracing::error!("a database task panicked");
            Err(DbError::Panicked.into())
        }
        Err(_) => Err(DbError::Canceled.into()),
    }
}

/// A pooled connection made since the breaker last opened. A checkout timeout is a 503 for
/// this caller only; one that carries a connection error (the pool could not connect)
/// raises a suspicion too.
fn checkout(
    pool: &r2d2::Pool<DbManager>,
    health: &Arc<DbHealth>,
    waiting: &AtomicUsize,
    wait: Duration,
) -> Result<r2d2::PooledConnection<DbManager>, DbError> {
    let until = Instant::now() + wait;
    let _waiting = Waiting::new(waiting);
    loop {
        match pool.get_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(mut conn) => {
                if conn.epoch == health.epoch() {
                    return Ok(conn);
                }
                // Made before the last outage: it may be dead or hung on a lost socket.
                conn.discard();
            }
            Err(err) => {
                // r2d2 appends the last connection error to its timeout message.
                if err.to_string().len() > "timed out waiting for connection".len() {
                    health.suspect(&err.to_string());
                }
                return Err(DbError::Pool(err));
            }
        }
    }
}

/// Whether anyone still waits for a blocking database task's answer; `transaction`
/// consults it before committing, so that a caller that was answered 503 (past its bound,
/// breaker opened, client gone) never has its work committed afterwards.
#[derive(Default)]
struct Gate(AtomicU8);

impl Gate {
    const RUNNING: u8 = 0;
    const ABANDONED: u8 = 1;
    const COMMITTING: u8 = 2;
    const COMMITTED: u8 = 3;

    fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == Self::ABANDONED
    }

    /// Before a commit: false if the caller gave up.
    fn begin_commit(&self) -> bool {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current == Self::ABANDONED {
                return false;
            }
            match self.0.compare_exchange(
                current,
                Self::COMMITTING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    fn end_commit(&self) {
        let _ = self.0.compare_exchange(
            Self::COMMITTING,
            Self::COMMITTED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The caller gives up; false when a commit is under way or done.
    fn abandon(&self) -> bool {
        match self.0.compare_exchange(
            Self::RUNNING,
            Self::ABANDONED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => now == Self::ABANDONED,
        }
    }

    /// The caller gives up whatever happened: no further commit.
    fn force_abandon(&self) {
        self.0.store(Self::ABANDONED, Ordering::Release);
    }
}

struct AbandonOnDrop(Option<Arc<Gate>>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.abandon();
        }
    }
}

thread_local! {
    /// The gate of the `Db::run` task running on this thread, if any.
    static GATE: RefCell<Option<Arc<Gate>>> = const { RefCell::new(None) };
    /// How deep in `transaction` this thread is: only the outermost commits.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Installs a task's gate on this (blocking) thread for as long as `f` runs.
struct GateScope;

impl GateScope {
    fn enter(gate: Arc<Gate>) -> Self {
        GATE.with(|g| *g.borrow_mut() = Some(gate));
        Self
    }
}

impl Drop for GateScope {
    fn drop(&mut self) {
        GATE.with(|g| *g.borrow_mut() = None);
    }
}

struct Depth;

impl Depth {
    /// Enters a transaction; true if it is the outermost.
    fn enter() -> (Self, bool) {
        let outermost = DEPTH.with(|d| {
            let depth = d.get();
            d.set(depth + 1);
            depth == 0
        });
        (Self, outermost)
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn connect_error(url: &DbUrl, err: &diesel::r2d2::Error) -> DbError {
    // libpq's messages span lines; keep the error on one.
    let message = err
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    DbError::Connect(format!("cannot connect to {}: {message}", url.describe()))
}

/// Why the SQLite database at `path` cannot be created: which directory or file, and, for
/// a permission problem, that it is one.
fn create_error(path: &Path, err: &std::io::Error) -> String {
    if err.kind() != std::io::ErrorKind::PermissionDenied {
        return format!(
            "cannot create the database {}: {err}",
            absolute(path).display()
        );
    }
    let path = absolute(path);
    // The deepest ancestor that exists is the one this user may not write in.
    let blocking = path
        .ancestors()
        .skip(1)
        .find(|dir| matches!(dir.try_exists(), Ok(true)))
        .unwrap_or(&path);
    format!(
        "permission denied: cannot create the database {} because this user ({}) may not \
         write in the directory {}{}; create it with the right owner, or point database.url \
         elsewhere",
        path.display(),
        user_description(),
        blocking.display(),
        owner_and_mode(blocking)
    )
}

/// Why an SQLite database whose existence cannot even be checked is out of reach.
fn sqlite_access_error(path: &Path) -> String {
    sqlite_access_problem(path).unwrap_or_else(|| {
        format!(
            "cannot reach the database {}: a directory on the way cannot be searched",
            absolute(path).display()
        )
    })
}

/// A permission problem that would keep SQLite from opening the database at `path` for
/// reading and writing, said plainly: which directory or file, its owner and mode, and
/// who this process runs as. SQLite itself says only "unable to open database file" or
/// "attempt to write a readonly database". `None` when no such problem is seen.
pub fn sqlite_access_problem(path: &Path) -> Option<String> {
    let path = absolute(path);
    let denied = |result: std::io::Result<()>| matches!(result, Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
    let fix = "run Tollgate as the user that owns it, or fix the owner or mode";
    // A directory on the way that may not be searched.
    if denied(std::fs::metadata(&path).map(drop)) {
        let blocking = path
            .ancestors()
            .skip(1)
            .find(|dir| !denied(std::fs::metadata(dir).map(drop)))
            .unwrap_or(&path);
        return Some(format!(
            "permission denied: this user ({}) cannot reach the database {} (the directory {}{} \
             may not be searched); {fix}",
            user_description(),
            path.display(),
            blocking.display(),
            owner_and_mode(blocking)
        ));
    }
    let name = path.file_name()?.to_string_lossy().into_owned();
    let mut files = vec![path.clone()];
    for suffix in ["-wal", "-shm"] {
        let sidecar = path.with_file_name(format!("{name}{suffix}"));
        if sidecar.exists() {
            files.push(sidecar);
        }
    }
    let sidecars_missing = files.len() < 3;
    for file in &files {
        if !may_read_and_write(file) {
            return Some(format!(
                "permission denied: this user ({}) cannot read and write {}{}; {fix}",
                user_description(),
                file.display(),
                owner_and_mode(file)
            ));
        }
    }
    // SQLite (in WAL mode) creates `<name>-wal` and `<name>-shm` beside the database.
    let dir = path.parent()?;
    if sidecars_missing && !may_write_in(dir) {
        return Some(format!(
            "permission denied: this user ({}) may not write in {}{}, where SQLite creates \
             {name}-wal and {name}-shm beside the database; {fix}",
            user_description(),
            dir.display(),
            owner_and_mode(dir)
        ));
    }
    None
}

/// Whether this process may search and write in `dir`, by its effective ids (as opening
/// a file checks them).
#[cfg(unix)]
fn may_write_in(dir: &Path) -> bool {
    use rustix::fs::{Access, AtFlags, CWD, accessat};
    !matches!(
        accessat(
            CWD,
            dir,
            Access::WRITE_OK | Access::EXEC_OK,
            AtFlags::EACCESS
        ),
        Err(rustix::io::Errno::ACCESS)
    )
}

/// Whether this process may open `file` for reading and writing. Checked with access(2),
/// never by opening it: closing any descriptor of an SQLite file drops every POSIX lock
/// the process holds on it, including its open connections' locks.
#[cfg(unix)]
fn may_read_and_write(file: &Path) -> bool {
    use rustix::fs::{Access, AtFlags, CWD, accessat};
    !matches!(
        accessat(
            CWD,
            file,
            Access::READ_OK | Access::WRITE_OK,
            AtFlags::EACCESS
        ),
        Err(rustix::io::Errno::ACCESS)
    )
}

#[cfg(not(unix))]
fn may_write_in(_dir: &Path) -> bool {
    true
}

#[cfg(not(unix))]
fn may_read_and_write(_file: &Path) -> bool {
    true
}

#[cfg(unix)]
fn owner_and_mode(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| format!(" (owner uid {}, mode {:04o})", m.uid(), m.mode() & 0o7777))
        .unwrap_or_default()
}

#[cfg(not(unix))]
fn owner_and_mode(_path: &Path) -> String {
    String::new()
}

#[cfg(unix)]
fn user_description() -> String {
    format!("uid {}", rustix::process::geteuid().as_raw())
}

#[cfg(not(unix))]
fn user_description() -> String {
    "this user".to_owned()
}

/// Whether the database holds Tollgate's tables (its migrations table, in the
/// connection's schema on PostgreSQL): the management commands refuse a database that
/// was never set up rather than set it up on a mistyped URL.
pub fn has_schema(conn: &mut DbConn) -> Result<bool, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        found: i64,
    }
    let sql = match conn {
        DbConn::Postgres(_) => {
            "SELECT COUNT(*) AS found FROM pg_catalog.pg_tables \
             WHERE tablename = '__diesel_schema_migrations' AND schemaname = current_schema()"
        }
        DbConn::Sqlite(_) => {
            "SELECT COUNT(*) AS found FROM sqlite_master \
             WHERE type = 'table' AND name = '__diesel_schema_migrations'"
        }
    };
    Ok(diesel::sql_query(sql).get_result::<Found>(conn)?.found > 0)
}

/// Creates the database's directory (owner-only, 0700, for the directories it makes) and
/// the database file itself (0600) when missing, so that neither the data nor SQLite's
/// `-wal`/`-shm` files (which take the database file's mode) are readable by others.
fn create_parent_dir(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        // An empty file is an empty SQLite database.
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// `mkdir -p` whose new directories are 0700 (existing ones keep their mode).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Applies every pending migration of the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, DbError> {
    let applied = match conn {
        DbConn::Postgres(c) => {
            // A migration over a large table may run long: no statement timeout for it;
            // the connection gets its own back afterwards.
            #[derive(diesel::QueryableByName)]
            struct Setting {
                #[diesel(sql_type = diesel::sql_types::Text)]
                value: String,
            }
            let previous =
                diesel::sql_query("SELECT current_setting('statement_timeout') AS value")
                    .get_result::<Setting>(c)?
                    .value;
            c.batch_execute("SET statement_timeout = 0")?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len());
            c.batch_execute(&format!(
                "SET statement_timeout = '{}'",
                previous.replace('\'', "''")
            ))?;
            applied
        }
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}

/// Reverts every applied migration (used by the migration round-trip test).
pub fn revert_all_migrations(conn: &mut DbConn) -> Result<(), DbError> {
    let reverted = match conn {
        DbConn::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(drop),
        DbConn::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(drop),
    };
    reverted.map_err(|e| DbError::Migration(e.to_string()))
}

/// Runs `f` in a transaction: committed when it returns `Ok`, rolled back on `Err` (its
/// error comes back unchanged) or when the commit itself fails. Nested calls become
/// savepoints, so a use case can call another.
///
/// Inside [`Db::run`], the outermost transaction commits only while the caller still waits
/// for the answer; otherwise it rolls back with [`DbError::TimedOut`].
pub fn transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    enum Failure {
        Inner,
        Abandoned,
        Db(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Failure {
        fn from(err: diesel::result::Error) -> Self {
            Self::Db(err)
        }
    }
    let (_depth, outermost) = Depth::enter();
    let gate = if outermost {
        GATE.with(|g| g.borrow().clone())
    } else {
        None
    };
    let mut inner = None;
    let mut committing = false;
    let result = conn.transaction(|conn| {
        let value = f(conn).map_err(|err| {
            inner = Some(err);
            Failure::Inner
        })?;
        if let Some(gate) = &gate {
            if !gate.begin_commit() {
                return Err(Failure::Abandoned);
            }
            committing = true;
        }
        Ok(value)
    });
    if committing && let Some(gate) = &gate {
        gate.end_commit();
    }
    result.map_err(|failure| match (inner, failure) {
        // When the rollback fails too (SQLite rolls back by itself on SQLITE_FULL and
        // SQLITE_IOERR, then "cannot rollback - no transaction is active"), the use
        // case's error is still the cause to report.
        (Some(err), _) => err,
        (None, Failure::Abandoned) => E::from(DbError::TimedOut),
        (None, Failure::Db(err)) => E::from(DbError::Query(err)),
        (None, Failure::Inner) => E::from(DbError::Canceled),
    })
}

/// Turns rows into domain values; the first damaged row fails the whole read.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, DbError>
where
    T: TryFrom<R, Error = crate::domain::CorruptRow>,
{
    rows.into_iter()
        .map(|row| T::try_from(row).map_err(DbError::from))
        .collect()
}

/// Cheap liveness query for `/health/ready`.
pub fn ping(conn: &mut DbConn) -> Result<(), DbError> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}

/// Whether `text` can be a key in the database. PostgreSQL refuses a NUL byte in a text
/// parameter with an error; no stored id or handle contains one, so a lookup of such a value
/// is answered "not found" without asking the database.
pub fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// True when the error is a unique-key clash (the portable stand-in for an upsert).
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use diesel::connection::SimpleConnection;

    use super::{Db, DbError, DbUrl, PoolOptions, transaction, with_pg_defaults};

    #[test]
    fn postgres_urls_get_timeouts_and_keepalives_unless_they_set_them() {
        assert_eq!(
            with_pg_defaults("postgres://u@h/db"),
            "postgres://u@h/db?connect_timeout=2&keepalives=1&keepalives_idle=5\
             &keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000"
        );
        let own = with_pg_defaults(
            "postgres://u@h/db?sslmode=require&connect_timeout=9&tcp_user_timeout=1#x",
        );
        assert_eq!(
            own,
            "postgres://u@h/db?sslmode=require&connect_timeout=9&tcp_user_timeout=1\
             &keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3#x"
        );
    }

    fn sqlite(dir: &tempfile::TempDir, options: &PoolOptions) -> Db {
        let url = DbUrl::SqliteFile(dir.path().join("t.db"));
        let db = Db::connect(&url, options).expect("open");
        db.get()
            .expect("conn")
            .batch_execute("CREATE TABLE t (x INTEGER)")
            .expect("table");
        db
    }

    fn rows(db: &Db) -> i64 {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<Count>(&mut **db.get().expect("conn"))
            .expect("count")
            .n
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_panicking_closure_is_a_bug_not_an_outage() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sqlite(&dir, &PoolOptions::default());
        let rt = runtime();
        let result: Result<(), DbError> = rt.block_on(db.run(|_| panic!("bug in a closure")));
        let err = result.expect_err("panicked");
        assert!(matches!(err, DbError::Panicked), "{err}");
        assert!(!err.is_unavailable(), "500, not 503");
        assert!(!db.health().is_down());
        rt.block_on(db.run(super::ping))
            .expect("the pool still works");
    }

    #[test]
    fn a_caller_answered_past_its_bound_never_sees_its_work_committed() {
        let dir = tempfile::tempdir().expect("dir");
        let db = sqlite(&dir, &PoolOptions::default());
        let rt = runtime();
        let slow = |conn: &mut super::DbConn| {
            transaction(conn, |conn| {
                conn.batch_execute("INSERT INTO t VALUES (1)")?;
                std::thread::sleep(Duration::from_millis(400));
                Ok::<_, DbError>(())
            })
        };
        let late = rt.block_on(db.run_within(Duration::from_millis(150), slow));
        assert!(matches!(late, Err(DbError::TimedOut)), "{late:?}");
        // Give the blocking task time to reach its commit, and refuse it.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(rows(&db), 0, "rolled back");
        assert!(!db.health().is_down(), "a slow closure is not an outage");
        // Within its bound the same work commits.
        rt.block_on(db.run_within(Duration::from_secs(5), slow))
            .expect("in time");
        assert_eq!(rows(&db), 1);
    }

    #[test]
    fn an_exhausted_pool_is_a_503_for_that_request_only() {
        let dir = tempfile::tempdir().expect("dir");
        let options = PoolOptions {
            max_size: 1,
            connection_timeout: Duration::from_millis(200),
            ..PoolOptions::default()
        };
        let db = sqlite(&dir, &options);
        let rt = runtime();
        let held = db.get().expect("the only connection");
        let err = rt
            .block_on(db.run(super::ping))
            .expect_err("no connection to spare");
        assert!(matches!(err, DbError::Pool(_)), "{err}");
        assert!(err.is_unavailable() && !err.is_outage(), "{err}");
        drop(held);
        assert!(!db.health().is_down());
        rt.block_on(db.run(super::ping))
            .expect("served again at once");
    }
}
