//! The `tollgate` command line: `serve` (the default), `migrate`, and management commands
//! that work on the database directly, no server needed. They call the same service
//! functions as the admin API; a running server sees their changes (clients at once,
//! signing keys within `signing.key_refresh_ms`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{Overrides, Settings};
use crate::oauth::Scope;
use crate::startup::{open_connection, serve};

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
    about = "OAuth 2.0 client-credentials authorization server"
)]
pub struct Cli {
    /// Configuration file (default: config/default.toml when present).
    #[arg(long, global = true, env = "TOLLGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://…
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default command).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
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
    /// See and deny pending app pairing requests.
    #[command(subcommand)]
    Challenge(challenges::ChallengeCommand),
    /// Show the audit trail, newest first.
    Audit(audit::AuditArgs),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long, env = "TOLLGATE_BIND", value_name = "ADDR")]
    pub bind: Option<String>,
    /// Issuer URL (`iss`), e.g. https://auth.example.com.
    #[arg(long, env = "TOLLGATE_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (bind, issuer) = match &cli.command {
        Some(Command::Serve(args)) => (args.bind.clone(), args.issuer.clone()),
        None => {
            let args = ServeArgs::default_from_env();
            (args.bind, args.issuer)
        }
        Some(_) => (None, None),
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

    match cli.command {
        None | Some(Command::Serve(_)) => {
            crate::telemetry::init_with(&settings.log_level, settings.log_format)
                .map_err(anyhow::Error::msg)?;
            serve(settings)?;
        }
        Some(Command::Migrate) => {
            crate::telemetry::init("warn");
            drop(open_connection(&settings)?);
            println!("migrations applied to {}", settings.database_url.describe());
        }
        Some(Command::Client(command)) => {
            crate::telemetry::init("warn");
            let mut conn = open_connection(&settings)?;
            clients::run(&mut conn, &settings, command)?;
        }
        Some(Command::SigningKey(command)) => {
            crate::telemetry::init("warn");
            let mut conn = open_connection(&settings)?;
            signing_keys::run(&mut conn, &settings, command)?;
        }
        Some(Command::Account(command)) => {
            crate::telemetry::init("warn");
            accounts::run(&mut open_connection(&settings)?, &settings, command)?;
        }
        Some(Command::ApiKey(command)) => {
            crate::telemetry::init("warn");
            api_keys::run(&mut open_connection(&settings)?, command)?;
        }
        Some(Command::Challenge(command)) => {
            crate::telemetry::init("warn");
            let pairing = crate::service::pairing::Pairing::new(&crate::startup::load_master_key(
                &settings.master_key,
            )?);
            challenges::run(&mut open_connection(&settings)?, &pairing, command)?;
        }
        Some(Command::Audit(args)) => {
            crate::telemetry::init("warn");
            audit::run(&mut open_connection(&settings)?, args)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl ServeArgs {
    /// `tollgate` with no subcommand serves, reading bind and issuer from the environment.
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
