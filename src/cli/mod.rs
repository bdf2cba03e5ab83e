//! The `tollgate` command line: `serve` (the default), `migrate`, and management commands
//! that work on the database directly, no server needed. They call the same service
//! functions as the admin API; a running server sees their changes (clients at once,
//! signing keys within `signing.key_refresh_ms`).
//!
//! `serve` and `migrate` create the database when it does not exist. The management
//! commands never do: on a missing SQLite file, or a database without Tollgate's tables,
//! they stop and say which database they looked for, where that came from and how to point
//! at the right one. Those that change the database say which one on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{MasterKeySource, Overrides, Settings};
use crate::crypto::sealed::MasterKey;
use crate::db::{self, DbConn, DbError, DbUrl};
use crate::oauth::Scope;
use crate::startup::{load_master_key, open_connection, serve};

mod accounts;
mod api_keys;
mod audit;
mod challenges;
mod clients;
mod signing_keys;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "OAuth 2.0 client-credentials authorization server",
    after_help = "Without a command, `tollgate` runs `serve`. `serve` and `migrate` create the \
                  database when it does not exist; the other commands work on an existing one \
                  and never create it."
)]
pub struct Cli {
    /// Configuration file (default: config/default.toml in the working directory, when
    /// present).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_CONFIG",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://… (default: database.url
    /// of the configuration file).
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Global options"
    )]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default command); creates the database and applies
    /// pending migrations first.
    Serve(ServeArgs),
    /// Create the database if needed, apply pending migrations, and exit.
    Migrate,
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage the keys that sign access tokens.
    #[command(subcommand)]
    SigningKey(signing_keys::SigningKeyCommand),
    /// Manage accounts (people or teams that own API keys).
    #[command(subcommand)]
    Account(accounts::AccountCommand),
    /// Manage API keys on an account's behalf.
    #[command(subcommand)]
    ApiKey(api_keys::ApiKeyCommand),
    /// Manage pending app pairing requests: list, approve and deny them.
    #[command(subcommand)]
    Challenge(challenges::ChallengeCommand),
    /// Show the audit trail, newest first.
    Audit(audit::AuditArgs),
}

impl Command {
    /// Whether the command changes the database (`serve` and `migrate` aside).
    fn mutates(&self) -> bool {
        match self {
            Command::Serve(_) | Command::Migrate | Command::Audit(_) => false,
            Command::Client(command) => command.mutates(),
            Command::SigningKey(command) => command.mutates(),
            Command::Account(command) => command.mutates(),
            Command::ApiKey(command) => command.mutates(),
            Command::Challenge(command) => command.mutates(),
        }
    }
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 (default: server.bind, 127.0.0.1:8080).
    #[arg(long, env = "TOLLGATE_BIND", value_name = "ADDR")]
    pub bind: Option<String>,
    /// Issuer URL (`iss` of every token), e.g. https://auth.example.com (default:
    /// server.issuer, else http://<bind>).
    #[arg(long, env = "TOLLGATE_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
}

/// How to point a command at another database; said with every "wrong database" error.
const POINT_ELSEWHERE: &str = "point at the server's database with --database-url, \
    DATABASE_URL or database.url in the configuration file (--config FILE or TOLLGATE_CONFIG)";

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The other commands read bind and issuer from the environment too: `account invite`
    // prints a link under the issuer.
    let (bind, issuer) = match &cli.command {
        Some(Command::Serve(args)) => (args.bind.clone(), args.issuer.clone()),
        _ => {
            let args = ServeArgs::default_from_env();
            (args.bind, args.issuer)
        }
    };
    let overrides = Overrides {
        config: cli.config.clone(),
        bind,
        database_url: cli.database_url.clone(),
        issuer,
        ..Overrides::default()
    }
    .with_process_env();
    let settings = Settings::load(&overrides)?;
    let mutates = cli.command.as_ref().is_some_and(Command::mutates);

    match cli.command {
        None | Some(Command::Serve(_)) => {
            crate::telemetry::init_with(&settings.log_level, settings.log_format)
                .map_err(anyhow::Error::msg)?;
            serve(settings)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Migrate) => {
            crate::telemetry::init("warn");
            drop(open_connection(&settings)?);
            println!("migrations applied to {}", settings.database_url.describe());
            return Ok(ExitCode::SUCCESS);
        }
        Some(_) => crate::telemetry::init("warn"),
    }
    let mut conn = open_existing(&settings, &overrides)?;
    match cli.command {
        Some(Command::Client(command)) => clients::run(&mut conn, &settings, command)?,
        Some(Command::SigningKey(command)) => signing_keys::run(&mut conn, &settings, command)?,
        Some(Command::Account(command)) => accounts::run(&mut conn, &settings, command)?,
        Some(Command::ApiKey(command)) => api_keys::run(&mut conn, command)?,
        Some(Command::Challenge(command)) => {
            let pairing = crate::service::pairing::Pairing::new(&master_key(&mut conn, &settings)?);
            challenges::run(&mut conn, &pairing, command)?;
        }
        Some(Command::Audit(args)) => audit::run(&mut conn, args)?,
        None | Some(Command::Serve(_) | Command::Migrate) => {}
    }
    if mutates {
        eprintln!("changed database {}", settings.database_url.describe());
    }
    Ok(ExitCode::SUCCESS)
}

/// The database of a management command: it must exist and hold Tollgate's tables (pending
/// migrations are applied, as a server would at start). Errors say which database was
/// looked for, where its URL came from, and how to point elsewhere.
fn open_existing(settings: &Settings, overrides: &Overrides) -> anyhow::Result<DbConn> {
    let url = &settings.database_url;
    let described = url.describe();
    let origin = database_origin(overrides);
    if matches!(url, DbUrl::SqliteMemory) {
        anyhow::bail!(
            "{described} ({origin}) is a new, empty database in every process, so management \
             commands have nothing to work on: {POINT_ELSEWHERE}"
        );
    }
    let mut conn = db::Db::connect_existing(url).map_err(|err| match err {
        DbError::Missing(_) => anyhow::anyhow!(
            "no database at {described} ({origin}); management commands never create one: \
             {POINT_ELSEWHERE}, or create this one with `tollgate migrate`"
        ),
        // PostgreSQL: `FATAL: database "x" does not exist`.
        DbError::Connect(message) if message.contains("does not exist") => anyhow::anyhow!(
            "{message} ({origin}); management commands never create a database: \
             {POINT_ELSEWHERE}"
        ),
        other => anyhow::Error::from(other),
    })?;
    if !db::has_schema(&mut conn)? {
        anyhow::bail!(
            "{described} ({origin}) holds no Tollgate tables; management commands never set \
             up a database: {POINT_ELSEWHERE}, or set this one up with `tollgate migrate`"
        );
    }
    let applied = db::run_migrations(&mut conn)?;
    if applied > 0 {
        eprintln!("applied {applied} pending migrations to {described}");
    }
    Ok(conn)
}

/// The master key, for the commands that need it. Like the database, a missing key file is
/// not created once the database holds signing keys: they are sealed under a key that
/// exists somewhere, and a new one would only be the wrong one. (Before any server start
/// there are none, and the key file is created beside the SQLite database as `serve` does.)
pub(crate) fn master_key(conn: &mut DbConn, settings: &Settings) -> anyhow::Result<MasterKey> {
    if let MasterKeySource::File { path, create: true } = &settings.master_key
        && !path.exists()
        && !db::keys::list(conn)?.is_empty()
    {
        anyhow::bail!(
            "no master key file at {}, but {} holds signing keys sealed under a master key: \
             give it with TOLLGATE_MASTER_KEY, TOLLGATE_MASTER_KEY_FILE or \
             signing.master_key_file, or {POINT_ELSEWHERE}",
            db::absolute(path).display(),
            settings.database_url.describe()
        );
    }
    load_master_key(&settings.master_key)
}

/// Where `database.url` came from, for error messages.
fn database_origin(overrides: &Overrides) -> String {
    let from_env = std::env::var("DATABASE_URL").ok();
    match (
        &overrides.database_url,
        crate::config::config_file(overrides),
    ) {
        (Some(url), _) if from_env.as_deref() == Some(url.as_str()) => {
            "database.url from DATABASE_URL".to_owned()
        }
        (Some(_), _) => "database.url from --database-url".to_owned(),
        (None, Some(file)) if crate::config::file_sets_database_url(&file) => {
            format!("database.url from {}", file.display())
        }
        (None, file) => {
            let cwd = std::env::current_dir()
                .map(|dir| dir.display().to_string())
                .unwrap_or_else(|_| "?".to_owned());
            let file = match file {
                Some(file) => format!("{} does not set it", file.display()),
                None => format!(
                    "no configuration file: {cwd} has no {}",
                    crate::config::DEFAULT_CONFIG_PATH
                ),
            };
            format!("the default database.url, relative to the working directory; {file}")
        }
    }
}

/// An error as one line: its causes in order, each said once (a message that already
/// quotes its cause, as many do, is not followed by it again).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

impl ServeArgs {
    /// Bind and issuer from the environment, for `tollgate` with no command (which serves)
    /// and for the commands without these flags.
    fn default_from_env() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            bind: non_empty("TOLLGATE_BIND"),
            issuer: non_empty("TOLLGATE_ISSUER"),
        }
    }
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn parse_scope_arg(text: &str) -> anyhow::Result<Scope> {
    Scope::parse(text.trim()).map_err(|e| anyhow::anyhow!("invalid --scope: {}", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(io).context("cannot read x.toml: No such file");
        assert_eq!(error_line(&err), "cannot read x.toml: No such file");
        let err = anyhow::anyhow!("connection refused\n  is the server running?")
            .context("cannot connect");
        assert_eq!(
            error_line(&err),
            "cannot connect: connection refused is the server running?"
        );
    }
}
