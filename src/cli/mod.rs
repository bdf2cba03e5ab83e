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
use crate::service::audit::Actor;
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
    /// Manage accounts (people or teams that own API keys).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage API keys on an account's behalf.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// See and deny pending app pairing requests.
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// Show the audit trail, newest first.
    Audit {
        /// Only events of this account (handle).
        #[arg(long)]
        account: Option<String>,
        /// Only events of this client (id).
        #[arg(long)]
        client: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; `--scope` bounds what its keys may carry.
    Create {
        #[arg(long)]
        handle: String,
        /// Display name (default: the handle).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        handle: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable: every key of the account stops working at once.
    Disable {
        handle: String,
    },
    Enable {
        handle: String,
    },
    /// Delete the account and its keys.
    Delete {
        handle: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// Space-separated scopes, within the account's (default: all of the account's).
        #[arg(long)]
        scope: Option<String>,
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke at once; the key stays listed as revoked.
    Revoke { id: String },
    /// Delete for good.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ChallengeCommand {
    /// Pending pairing requests of an account, with their 4-digit codes.
    List {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// Refuse a pending request.
    Deny { id: String },
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
        /// A grant type the client may use; repeatable (default: client_credentials).
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
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
        Some(Command::Account(command)) => {
            crate::telemetry::init("warn");
            account_command(&mut open_connection(&settings)?, command)?;
        }
        Some(Command::ApiKey(command)) => {
            crate::telemetry::init("warn");
            api_key_command(&mut open_connection(&settings)?, command)?;
        }
        Some(Command::Challenge(command)) => {
            crate::telemetry::init("warn");
            challenge_command(&mut open_connection(&settings)?, command)?;
        }
        Some(Command::Audit {
            account,
            client,
            limit,
            json,
        }) => {
            crate::telemetry::init("warn");
            let mut conn = open_connection(&settings)?;
            let events =
                service::audit::list(&mut conn, account.as_deref(), client.as_deref(), limit)?;
            if json {
                print_json(&events)?;
            } else {
                for e in &events {
                    println!(
                        "{}  {:<24} {:<28} {} {}",
                        e.occurred_at.to_rfc3339(),
                        e.action,
                        e.actor,
                        e.subject_id.as_deref().unwrap_or("-"),
                        if e.details.is_null() {
                            String::new()
                        } else {
                            e.details.to_string()
                        }
                    );
                }
            }
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
            grant_types,
            json,
        } => {
            let scopes = Scope::parse(scope.trim())
                .map_err(|e| anyhow::anyhow!("invalid --scope: {}", e.0))?;
            let spec = ClientSpec {
                name,
                scopes,
                audiences,
                token_ttl: ttl,
                grant_types,
            };
            let (view, secret) = service::clients::create(conn, &Actor::cli(), &spec, now())?;
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
            service::clients::set_disabled(conn, &Actor::cli(), &id, true, now())?;
            println!("client {id} disabled");
        }
        ClientCommand::Enable { id } => {
            service::clients::set_disabled(conn, &Actor::cli(), &id, false, now())?;
            println!("client {id} enabled");
        }
        ClientCommand::RevokeTokens { id } => {
            service::clients::revoke_tokens(conn, &Actor::cli(), &id, now())?;
            println!("every token issued to client {id} until now is revoked");
        }
        ClientCommand::Delete { id } => {
            service::clients::delete(conn, &Actor::cli(), &id, now())?;
            println!("client {id} deleted");
        }
        ClientCommand::RotateSecret { id, grace, json } => {
            let (view, secret) =
                service::clients::rotate_secret(conn, &Actor::cli(), &id, grace, now())?;
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

fn parse_scope_arg(text: &str) -> anyhow::Result<Scope> {
    Scope::parse(text.trim()).map_err(|e| anyhow::anyhow!("invalid --scope: {}", e.0))
}

fn print_account(account: &service::accounts::AccountView) {
    println!("id:       {}", account.id);
    println!("handle:   {}", account.handle);
    println!("name:     {}", account.display_name);
    println!("scopes:   {}", account.scopes.join(" "));
    println!(
        "status:   {}",
        if account.disabled {
            "disabled"
        } else {
            "enabled"
        }
    );
    println!("created:  {}", account.created_at.to_rfc3339());
}

fn account_command(conn: &mut DbConn, command: AccountCommand) -> anyhow::Result<()> {
    use service::accounts;
    let actor = Actor::cli();
    match command {
        AccountCommand::Create {
            handle,
            name,
            scope,
            json,
        } => {
            let account = accounts::create_account(
                conn,
                &actor,
                &handle,
                name.as_deref(),
                &parse_scope_arg(&scope)?,
                now(),
            )?;
            if json {
                print_json(&account)?;
            } else {
                print_account(&account);
            }
        }
        AccountCommand::List { json } => {
            let list = accounts::list_accounts(conn)?;
            if json {
                print_json(&list)?;
            } else {
                println!("{:<24} {:<9} {:<24} SCOPES", "HANDLE", "STATUS", "ID");
                for a in &list {
                    println!(
                        "{:<24} {:<9} {:<24} {}",
                        a.handle,
                        if a.disabled { "disabled" } else { "enabled" },
                        a.id,
                        a.scopes.join(" ")
                    );
                }
            }
        }
        AccountCommand::Show { handle, json } => {
            let account = accounts::get_account(conn, &handle)?;
            if json {
                print_json(&account)?;
            } else {
                print_account(&account);
            }
        }
        AccountCommand::Disable { handle } => {
            accounts::set_account_disabled(conn, &actor, &handle, true, now())?;
            println!("account {handle} disabled: its keys stop working at once");
        }
        AccountCommand::Enable { handle } => {
            accounts::set_account_disabled(conn, &actor, &handle, false, now())?;
            println!("account {handle} enabled");
        }
        AccountCommand::Delete { handle } => {
            accounts::delete_account(conn, &actor, &handle, now())?;
            println!("account {handle} and its keys deleted");
        }
    }
    Ok(())
}

fn api_key_command(conn: &mut DbConn, command: ApiKeyCommand) -> anyhow::Result<()> {
    use service::accounts::{self, KeySpec};
    let actor = Actor::cli();
    match command {
        ApiKeyCommand::Create {
            account,
            name,
            scope,
            expires_in,
            json,
        } => {
            let spec = KeySpec {
                name,
                scopes: scope.as_deref().map(parse_scope_arg).transpose()?,
                expires_in,
            };
            let (view, secret) = accounts::create_key_for(conn, &actor, &account, &spec, now())?;
            if json {
                let mut value = serde_json::to_value(&view)?;
                if let Some(members) = value.as_object_mut() {
                    members.insert("api_key".into(), serde_json::json!(secret.expose()));
                }
                print_json(&value)?;
            } else {
                println!("id:      {}", view.id);
                println!("name:    {}", view.name);
                println!("scopes:  {}", view.scopes.join(" "));
                println!("api_key: {}", secret.expose());
                println!("\nStore the key now: it is not kept and cannot be shown again.");
            }
        }
        ApiKeyCommand::List { account, json } => {
            let keys = accounts::list_keys_for(conn, &account, now())?;
            if json {
                print_json(&keys)?;
            } else {
                println!(
                    "{:<24} {:<14} {:<8} {:<22} {:<26} NAME",
                    "ID", "PREFIX", "STATUS", "CREATED", "LAST USED"
                );
                for k in &keys {
                    println!(
                        "{:<24} {:<14} {:<8} {:<22} {:<26} {}",
                        k.id,
                        k.prefix,
                        k.status,
                        k.created_at.format("%Y-%m-%d %H:%M:%S"),
                        k.last_used_at
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_else(|| "never".into()),
                        k.name
                    );
                }
            }
        }
        ApiKeyCommand::Revoke { id } => {
            accounts::revoke_key(conn, &actor, &id, None, now())?;
            println!("API key {id} revoked");
        }
        ApiKeyCommand::Delete { id } => {
            accounts::delete_key(conn, &actor, &id, None, now())?;
            println!("API key {id} deleted");
        }
    }
    Ok(())
}

fn challenge_command(conn: &mut DbConn, command: ChallengeCommand) -> anyhow::Result<()> {
    use service::accounts;
    match command {
        ChallengeCommand::List { account, json } => {
            let pending = accounts::pending_challenges_for(conn, &account, now())?;
            if json {
                print_json(&pending)?;
            } else if pending.is_empty() {
                println!("no pending requests");
            } else {
                for c in &pending {
                    println!(
                        "{}  code {}  app {:?} asks for: {}  (expires {})",
                        c.id,
                        c.code,
                        c.app_name,
                        c.scopes.join(" "),
                        c.expires_at.to_rfc3339()
                    );
                }
            }
        }
        ChallengeCommand::Deny { id } => {
            accounts::deny_challenge(conn, &Actor::cli(), &id, None, now())?;
            println!("pairing request {id} denied");
        }
    }
    Ok(())
}
