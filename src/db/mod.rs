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
pub mod invites;
pub mod keys;
mod models;
pub mod pairing_guesses;
pub mod revocations;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

/// One connection, either backend, chosen at run time by the database URL.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// WAL lets the server and the CLI share one file; the busy timeout makes a writer wait for
/// the other instead of failing at once. Foreign keys are per connection in SQLite.
/// The busy timeout comes first so that switching to WAL waits for a lock too.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

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
}

impl DbError {
    /// Pool exhaustion and lost connections are transient (503); anything else is a bug or
    /// a broken database (500).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Pool(_) | DbError::Connect(_) | DbError::Canceled => true,
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => true,
            // SQLite under write contention past its busy timeout: transient.
            DbError::Query(Error::DatabaseError(_, info)) => {
                info.message().contains("database is locked")
            }
            _ => false,
        }
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
}

impl r2d2::ManageConnection for DbManager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        Ok(match &self.url {
            DbUrl::Postgres(url) => DbConn::Postgres(
                PgConnection::establish(url.expose_secret())
                    .map_err(diesel::r2d2::Error::ConnectionError)?,
            ),
            DbUrl::SqliteFile(path) => sqlite_connection(&path.to_string_lossy())?,
            DbUrl::SqliteMemory => sqlite_connection(":memory:")?,
        })
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

fn sqlite_connection(path: &str) -> Result<DbConn, diesel::r2d2::Error> {
    let mut conn =
        SqliteConnection::establish(path).map_err(diesel::r2d2::Error::ConnectionError)?;
    conn.batch_execute(SQLITE_PRAGMAS)
        .map_err(diesel::r2d2::Error::QueryError)?;
    Ok(DbConn::Sqlite(conn))
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<DbManager>,
    is_sqlite: bool,
}

impl Db {
    /// Opens the pool and checks that one connection can be made, so a wrong URL or a
    /// database that is down fails here with the driver's own message.
    pub fn connect(url: &DbUrl, options: &PoolOptions) -> Result<Self, DbError> {
        // One direct attempt first: r2d2 would retry until its timeout and report only
        // "timed out"; this surfaces the driver's own message at once.
        drop(Self::connect_one(url)?);
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
        let manager = DbManager { url: url.clone() };
        let pool = builder
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            is_sqlite: url.is_sqlite(),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        self.is_sqlite
    }

    /// One connection outside any pool, for short-lived commands (the CLI): it is closed
    /// before the process exits, rather than left to a pool's background threads.
    pub fn connect_one(url: &DbUrl) -> Result<DbConn, DbError> {
        if let DbUrl::SqliteFile(path) = url {
            create_parent_dir(path).map_err(|e| {
                DbError::Connect(format!(
                    "cannot create the directory for {}: {e}",
                    path.display()
                ))
            })?;
        }
        let manager = DbManager { url: url.clone() };
        r2d2::ManageConnection::connect(&manager).map_err(|e| connect_error(url, &e))
    }

    /// A pooled connection for synchronous callers (CLI, start-up, background tasks
    /// already on a blocking thread).
    pub fn get(&self) -> Result<r2d2::PooledConnection<DbManager>, DbError> {
        self.pool.get().map_err(DbError::Pool)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, keeping the
    /// caller's tracing span. Checkout happens there too, since it may block.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = pool.get().map_err(DbError::Pool)?;
                f(&mut conn)
            })
        })
        .await
        .map_err(|_| E::from(DbError::Canceled))?
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

fn create_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Applies every pending migration of the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut DbConn) -> Result<usize, DbError> {
    let applied = match conn {
        DbConn::Postgres(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
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
    enum Failure<E> {
        Inner(E),
        Db(diesel::result::Error),
    }
    impl<E> From<diesel::result::Error> for Failure<E> {
        fn from(err: diesel::result::Error) -> Self {
            Self::Db(err)
        }
    }
    conn.transaction(|conn| f(conn).map_err(Failure::Inner))
        .map_err(|failure| match failure {
            Failure::Inner(err) => err,
            Failure::Db(err) => E::from(DbError::Query(err)),
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
