//! The `tollgate` command line: `serve` (the default), `migrate`, and management commands
//! that work on the database directly, no server needed. They call the same service
//! functions as the admin API; a running server sees their changes (clients at once,
//! signing keys within `signing.key_refresh_ms`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{Overrides, Settings};
use crate::crypto::signer::SigningAlgorithm;
use crate::db::DbConn;
use crate::oauth::Scope;
use crate::service;
use crate::service::clients::{ClientSpec, ClientView};
use crate::startup::{Application, load_master_key, open_connection};

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
    Client(ClientCommand),
    /// Manage the keys that sign access tokens.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
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

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client; prints its id and secret (the secret is shown only this once).
    Create {
        #[arg(long)]
        name: String,
        /// Space-separated scopes the client may request, e.g. "read write".
        #[arg(long, default_value = "")]
        scope: String,
        /// An audience (resource URI) the client may request; repeatable. The first is
        /// the default `aud`.
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<String>,
        /// Token lifetime in seconds (default: tokens.default_ttl_seconds).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// Print JSON only.
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: it can no longer get tokens.
    Disable { id: String },
    /// Enable a disabled client.
    Enable { id: String },
    /// Delete a client for good (its tokens stop working at once).
    Delete { id: String },
    /// Revoke every token issued to the client so far.
    RevokeTokens { id: String },
    /// Generate a new secret; the old one keeps working for --grace seconds.
    RotateSecret {
        id: String,
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        grace: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// List signing keys with their state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Generate a new signing key and make it active; the old one stays published until
    /// its tokens have expired.
    Rotate {
        /// ES256 or EdDSA (default: signing.algorithm).
        #[arg(long)]
        algorithm: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Import a PEM private key (PKCS#8, or PKCS#1 for RSA) and make it active.
    Import {
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
        /// RS256, ES256 or EdDSA.
        #[arg(long)]
        algorithm: String,
        #[arg(long)]
        json: bool,
    },
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
            crate::telemetry::init(&settings.log_level);
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
            client_command(&mut conn, &settings, command)?;
        }
        Some(Command::SigningKey(command)) => {
            crate::telemetry::init("warn");
            let mut conn = open_connection(&settings)?;
            signing_key_command(&mut conn, &settings, command)?;
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

fn serve(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let system = actix_web::rt::System::with_tokio_rt(|| runtime);
    system.block_on(async move {
        let app = Application::build(settings).await?;
        app.run_with_signals().await.context("server failed")
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_client(view: &ClientView) {
    println!("client_id:   {}", view.client_id);
    println!("name:        {}", view.name);
    println!("scopes:      {}", view.scopes.join(" "));
    println!(
        "audiences:   {}",
        if view.audiences.is_empty() {
            "(server default)".to_owned()
        } else {
            view.audiences.join(" ")
        }
    );
    println!(
        "token_ttl:   {}",
        view.token_ttl
            .map(|t| format!("{t}s"))
            .unwrap_or_else(|| "(server default)".into())
    );
    println!(
        "status:      {}",
        if view.disabled { "disabled" } else { "enabled" }
    );
    println!("created_at:  {}", view.created_at.to_rfc3339());
    if let Some(until) = view.previous_secret_expires_at {
        println!("old secret valid until: {}", until.to_rfc3339());
    }
}

fn print_secret_json(view: &ClientView, secret: &str) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(view)?;
    if let Some(members) = value.as_object_mut() {
        members.insert("client_secret".into(), serde_json::json!(secret));
    }
    print_json(&value)
}

fn client_command(
    conn: &mut DbConn,
    settings: &Settings,
    command: ClientCommand,
) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            name,
            scope,
            audiences,
            ttl,
            json,
        } => {
            let scopes = Scope::parse(scope.trim())
                .map_err(|e| anyhow::anyhow!("invalid --scope: {}", e.0))?;
            let spec = ClientSpec {
                name,
                scopes,
                audiences,
                token_ttl: ttl,
                grant_types: Vec::new(),
            };
            let (view, secret) = service::clients::create(conn, &spec, now())?;
            if json {
                print_secret_json(&view, secret.expose())?;
            } else {
                print_client(&view);
                println!("client_secret: {}", secret.expose());
                println!("\nStore the secret now: it is not kept and cannot be shown again.");
                if let Some(ttl) = view.token_ttl.filter(|t| *t > settings.max_ttl) {
                    println!(
                        "Note: ttl {ttl}s is above tokens.max_ttl_seconds ({}s); tokens will live {}s.",
                        settings.max_ttl, settings.max_ttl
                    );
                }
            }
        }
        ClientCommand::List { json } => {
            let clients = service::clients::list(conn, now())?;
            if json {
                print_json(&clients)?;
            } else if clients.is_empty() {
                println!("no clients");
            } else {
                println!("{:<24} {:<9} {:<24} SCOPES", "CLIENT_ID", "STATUS", "NAME");
                for c in &clients {
                    println!(
                        "{:<24} {:<9} {:<24} {}",
                        c.client_id,
                        if c.disabled { "disabled" } else { "enabled" },
                        c.name,
                        c.scopes.join(" ")
                    );
                }
            }
        }
        ClientCommand::Show { id, json } => {
            let view = service::clients::get(conn, &id, now())?;
            if json {
                print_json(&view)?;
            } else {
                print_client(&view);
            }
        }
        ClientCommand::Disable { id } => {
            service::clients::set_disabled(conn, &id, true, now())?;
            println!("client {id} disabled");
        }
        ClientCommand::Enable { id } => {
            service::clients::set_disabled(conn, &id, false, now())?;
            println!("client {id} enabled");
        }
        ClientCommand::RevokeTokens { id } => {
            service::clients::revoke_tokens(conn, &id, now())?;
            println!("every token issued to client {id} until now is revoked");
        }
        ClientCommand::Delete { id } => {
            service::clients::delete(conn, &id)?;
            println!("client {id} deleted");
        }
        ClientCommand::RotateSecret { id, grace, json } => {
            let (view, secret) = service::clients::rotate_secret(conn, &id, grace, now())?;
            if json {
                print_secret_json(&view, secret.expose())?;
            } else {
                println!("client_id:     {}", view.client_id);
                println!("client_secret: {}", secret.expose());
                match view.previous_secret_expires_at {
                    Some(until) => println!("The old secret works until {}.", until.to_rfc3339()),
                    None => println!("The old secret no longer works."),
                }
            }
        }
    }
    Ok(())
}

fn signing_key_command(
    conn: &mut DbConn,
    settings: &Settings,
    command: SigningKeyCommand,
) -> anyhow::Result<()> {
    let grace = settings.token_policy().retired_key_grace();
    let parse_algorithm = |text: &str| {
        SigningAlgorithm::parse(text)
            .ok_or_else(|| anyhow::anyhow!("unknown algorithm {text:?}: use ES256, EdDSA or RS256"))
    };
    let (view, json) = match command {
        SigningKeyCommand::List { json } => {
            let keys = service::keys::list(conn, now())?;
            if json {
                print_json(&keys)?;
            } else {
                println!(
                    "{:<44} {:<6} {:<8} {:<26} PUBLISHED UNTIL",
                    "KID", "ALG", "STATE", "CREATED"
                );
                for k in &keys {
                    println!(
                        "{:<44} {:<6} {:<8} {:<26} {}",
                        k.kid,
                        k.algorithm,
                        k.state,
                        k.created_at.to_rfc3339(),
                        match (k.state.as_str(), k.publish_until) {
                            ("active", _) => "(active)".to_owned(),
                            (_, Some(t)) => t.to_rfc3339(),
                            _ => "-".to_owned(),
                        }
                    );
                }
            }
            return Ok(());
        }
        SigningKeyCommand::Rotate { algorithm, json } => {
            let algorithm = match algorithm {
                Some(text) => parse_algorithm(&text)?,
                None => settings.signing_algorithm,
            };
            let master = load_master_key(&settings.master_key)?;
            (
                service::keys::rotate(conn, &master, algorithm, grace, now())?,
                json,
            )
        }
        SigningKeyCommand::Import {
            pem,
            algorithm,
            json,
        } => {
            let algorithm = parse_algorithm(&algorithm)?;
            let text = std::fs::read_to_string(&pem)
                .with_context(|| format!("cannot read {}", pem.display()))?;
            let master = load_master_key(&settings.master_key)?;
            (
                service::keys::import_pem(conn, &master, algorithm, &text, grace, now())?,
                json,
            )
        }
    };
    if json {
        print_json(&view)?;
    } else {
        println!("active signing key: {} ({})", view.kid, view.algorithm);
        println!(
            "The previous key stays published for {grace}s so tokens it signed keep verifying; \
             running servers switch within {} ms.",
            settings.key_refresh.as_millis()
        );
    }
    Ok(())
}
