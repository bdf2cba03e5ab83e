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

use std::path::{Path, PathBuf};
use std::sync::Arc;
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
const SQLITE_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// libpq waits this long for a server to accept a connection (its minimum is 2 s) unless
/// the URL sets `connect_timeout` itself; without it a frozen server holds a connection
/// attempt forever.
const PG_CONNECT_TIMEOUT_SECONDS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
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
    /// The breaker is open: the database was seen down and has not answered since.
    #[error("the database is unavailable")]
    Unavailable,
    /// The database did not answer within the request's bound.
    #[error("the database did not answer in time")]
    TimedOut,
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

    /// The database is down, frozen or unreachable: the breaker opens and requests fail
    /// fast until it answers again.
    pub fn is_outage(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Pool(_) | DbError::Connect(_) | DbError::Unavailable | DbError::TimedOut => {
                true
            }
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

    /// Outages, refused writes, contention and timeouts are transient (503); anything else
    /// is a bug or a broken database (500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Canceled)
            || self.is_outage()
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

    /// A loggable description that never includes credentials.
    pub fn describe(&self) -> String {
        match self {
            DbUrl::Postgres(url) => match url::Url::parse(url.expose_secret()) {
                Ok(parsed) => format!(
                    "postgres://{}{}",
                    parsed.host_str().unwrap_or("localhost"),
                    parsed.path()
                ),
                Err(_) => "postgres://(unparsable)".to_owned(),
            },
            DbUrl::SqliteFile(path) => format!("sqlite://{}", path.display()),
            DbUrl::SqliteMemory => "sqlite::memory:".to_owned(),
        }
    }
}

/// Builds connections by backend and keeps the real connection error (see [`DbUrl::parse`]).
pub struct DbManager {
    url: DbUrl,
    options: PoolOptions,
}

/// A pooled connection; one that failed as if its server were gone is marked `dead` and
/// dropped at check-in instead of being handed to the next request.
pub struct PoolConn {
    conn: DbConn,
    dead: bool,
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
        Ok(PoolConn {
            conn: self.connect_conn()?,
            dead: false,
        })
    }

    fn is_valid(&self, conn: &mut PoolConn) -> Result<(), Self::Error> {
        conn.conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut PoolConn) -> bool {
        std::thread::panicking() || conn.dead || conn.conn.is_broken()
    }
}

impl DbManager {
    fn connect_conn(&self) -> Result<DbConn, diesel::r2d2::Error> {
        let statement_ms = self.options.statement_timeout.as_millis();
        Ok(match &self.url {
            DbUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(&with_connect_timeout(url.expose_secret()))
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // Bounds every statement, lock waits included; the server cancels it.
                conn.batch_execute(&format!("SET statement_timeout = {statement_ms}"))
                    .map_err(diesel::r2d2::Error::QueryError)?;
                DbConn::Postgres(conn)
            }
            DbUrl::SqliteFile(path) => self.sqlite_connection(&path.to_string_lossy())?,
            DbUrl::SqliteMemory => self.sqlite_connection(":memory:")?,
        })
    }

    fn sqlite_connection(&self, path: &str) -> Result<DbConn, diesel::r2d2::Error> {
        let mut conn =
            SqliteConnection::establish(path).map_err(diesel::r2d2::Error::ConnectionError)?;
        let mut pragmas = format!(
            "PRAGMA busy_timeout = {}; {SQLITE_PRAGMAS}",
            self.options.statement_timeout.as_millis()
        );
        if let Some(bytes) = self.options.sqlite_max_size_bytes {
            // page_size is 4096 unless the file says otherwise; max_page_count counts pages.
            let page_size: u64 = 4096;
            let pages = bytes.div_ceil(page_size).max(1);
            pragmas.push_str(&format!(" PRAGMA max_page_count = {pages};"));
        }
        conn.batch_execute(&pragmas)
            .map_err(diesel::r2d2::Error::QueryError)?;
        Ok(DbConn::Sqlite(conn))
    }
}

/// Adds libpq's `connect_timeout` to a PostgreSQL URL that does not set one.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={PG_CONNECT_TIMEOUT_SECONDS}")
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

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<DbManager>,
    is_sqlite: bool,
    health: Arc<DbHealth>,
    request_limit: Duration,
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
        let manager = DbManager {
            url: url.clone(),
            options: options.clone(),
        };
        let pool = builder
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            is_sqlite: url.is_sqlite(),
            health: Arc::default(),
            request_limit: options.request_limit(),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// The breaker and the last refused write, for `/health/ready`.
    pub fn health(&self) -> &DbHealth {
        &self.health
    }

    /// One connection outside any pool, for short-lived commands (the CLI): it is closed
    /// before the process exits, rather than left to a pool's background threads.
    pub fn connect_one(url: &DbUrl) -> Result<DbConn, DbError> {
        Self::connect_one_with(url, &PoolOptions::default())
    }

    fn connect_one_with(url: &DbUrl, options: &PoolOptions) -> Result<DbConn, DbError> {
        if let DbUrl::SqliteFile(path) = url {
            create_parent_dir(path).map_err(|e| {
                DbError::Connect(format!(
                    "cannot create the directory for {}: {e}",
                    path.display()
                ))
            })?;
        }
        let manager = DbManager {
            url: url.clone(),
            options: options.clone(),
        };
        manager.connect_conn().map_err(|e| connect_error(url, &e))
    }

    /// A pooled connection for synchronous callers (CLI, start-up, background tasks
    /// already on a blocking thread).
    pub fn get(&self) -> Result<r2d2::PooledConnection<DbManager>, DbError> {
        if self.health.is_down() {
            return Err(DbError::Unavailable);
        }
        self.pool.get().map_err(DbError::Pool)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, keeping the
    /// caller's tracing span. Checkout happens there too, since it may block.
    ///
    /// Bounded: the caller gets [`DbError::TimedOut`] after the checkout timeout plus the
    /// statement timeout even when the database is frozen, and [`DbError::Unavailable`] at
    /// once while the breaker is open (see [`health`]).
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + StoreFailure + Send + 'static,
    {
        self.run_within(self.request_limit, f).await
    }

    /// [`Db::run`] with a bound of its own (the readiness probe's is short).
    pub async fn run_within<T, E, F>(&self, limit: Duration, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + StoreFailure + Send + 'static,
    {
        if self.health.is_down() {
            return Err(DbError::Unavailable.into());
        }
        let deadline = Instant::now() + limit;
        let (pool, health) = (self.pool.clone(), self.health.clone());
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                // Waited in the queue past the caller's patience, or the database went
                // down meanwhile: do not run work nobody waits for.
                if Instant::now() >= deadline {
                    return Err(DbError::TimedOut.into());
                }
                if health.is_down() {
                    return Err(DbError::Unavailable.into());
                }
                let wait = deadline.saturating_duration_since(Instant::now());
                let mut conn = match pool.get_timeout(wait.min(pool.connection_timeout())) {
                    Ok(conn) => conn,
                    Err(err) => {
                        let err = DbError::Pool(err);
                        health.trip(&pool, &err);
                        return Err(err.into());
                    }
                };
                let result = f(&mut conn);
                if let Err(err) = &result
                    && let Some(db_err) = err.store_error()
                {
                    if db_err.is_outage() {
                        conn.discard();
                        health.trip(&pool, db_err);
                    } else if db_err.is_write_refused() {
                        health.note_write_failure();
                    }
                }
                result
            })
        });
        match tokio::time::timeout_at(deadline.into(), task).await {
            Ok(joined) => joined.map_err(|_| E::from(DbError::Canceled))?,
            Err(_) => {
                let err = DbError::TimedOut;
                self.health.trip(&self.pool, &err);
                Err(err.into())
            }
        }
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
pub fn transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    enum Failure {
        Inner,
        Db(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Failure {
        fn from(err: diesel::result::Error) -> Self {
            Self::Db(err)
        }
    }
    let mut inner = None;
    let result = conn.transaction(|conn| {
        f(conn).map_err(|err| {
            inner = Some(err);
            Failure::Inner
        })
    });
    result.map_err(|failure| match (inner, failure) {
        // When the rollback fails too (SQLite rolls back by itself on SQLITE_FULL and
        // SQLITE_IOERR, then "cannot rollback - no transaction is active"), the use
        // case's error is still the cause to report.
        (Some(err), _) => err,
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
