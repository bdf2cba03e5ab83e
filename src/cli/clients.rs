//! `tollgate client …`: OAuth clients.

use clap::Subcommand;

use super::{now, parse_scope_arg, print_json};
use crate::config::Settings;
use crate::db::DbConn;
use crate::service::audit::Actor;
use crate::service::clients::{self, ClientSpec, ClientView};
use crate::service::with_secret_once;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client; prints its id and secret (the secret is shown only this once).
    Create {
        /// A name for people to recognise the client by (need not be unique).
        #[arg(long)]
        name: String,
        /// Space-separated scopes the client may request, e.g. "read write"; `admin` for
        /// the admin API, `introspect` for a resource server.
        #[arg(long, default_value = "", hide_default_value = true)]
        scope: String,
        /// An audience (resource URI) the client may request; repeatable. The first is
        /// the default `aud` (default: tokens.default_audience).
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<String>,
        /// Token lifetime in seconds (default: tokens.default_ttl_seconds; capped at
        /// tokens.max_ttl_seconds).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<i64>,
        /// A grant type the client may use; repeatable (default: client_credentials).
        #[arg(long = "grant-type", value_name = "GRANT")]
        grant_types: Vec<String>,
        /// Print the client, with `client_secret`, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one client (never its secret).
    Show {
        /// The client's id.
        #[arg(value_name = "CLIENT_ID")]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: it gets no more tokens, and its tokens stop working at once.
    Disable {
        /// The client's id.
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Enable a disabled client (the tokens revoked by disabling it stay revoked).
    Enable {
        /// The client's id.
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Delete a client for good (its tokens stop working at once).
    Delete {
        /// The client's id.
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Revoke every token issued to a client so far (new ones are valid).
    RevokeTokens {
        /// The client's id.
        #[arg(value_name = "CLIENT_ID")]
        id: String,
    },
    /// Rotate a client's secret; prints the new one (shown only this once).
    ///
    /// The client's tokens are revoked; the old secret keeps working for --grace seconds.
    RotateSecret {
        /// The client's id.
        #[arg(value_name = "CLIENT_ID")]
        id: String,
        /// How long the old secret keeps working, in seconds (0: not at all).
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        grace: i64,
        /// Print the client, with the new `client_secret`, as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl ClientCommand {
    /// Whether the command writes to the database.
    pub fn mutates(&self) -> bool {
        !matches!(self, Self::List { .. } | Self::Show { .. })
    }
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

pub fn run(conn: &mut DbConn, settings: &Settings, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            name,
            scope,
            audiences,
            ttl,
            grant_types,
            json,
        } => {
            let scopes = parse_scope_arg(&scope)?;
            let spec = ClientSpec {
                name,
                scopes,
                audiences,
                token_ttl: ttl,
                grant_types,
            };
            let (view, secret) = clients::create(conn, &Actor::cli(), &spec, now())?;
            if json {
                print_json(&with_secret_once(&view, "client_secret", secret.expose()))?;
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
            let clients = clients::list(conn, now())?;
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
            let view = clients::get(conn, &id, now())?;
            if json {
                print_json(&view)?;
            } else {
                print_client(&view);
            }
        }
        ClientCommand::Disable { id } => {
            clients::set_disabled(conn, &Actor::cli(), &id, true, now())?;
            println!("client {id} disabled");
        }
        ClientCommand::Enable { id } => {
            clients::set_disabled(conn, &Actor::cli(), &id, false, now())?;
            println!("client {id} enabled");
        }
        ClientCommand::RevokeTokens { id } => {
            clients::revoke_tokens(conn, &Actor::cli(), &id, now())?;
            println!("every token issued to client {id} until now is revoked");
        }
        ClientCommand::Delete { id } => {
            clients::delete(conn, &Actor::cli(), &id, now())?;
            println!("client {id} deleted");
        }
        ClientCommand::RotateSecret { id, grace, json } => {
            let (view, secret) = clients::rotate_secret(conn, &Actor::cli(), &id, grace, now())?;
            if json {
                print_json(&with_secret_once(&view, "client_secret", secret.expose()))?;
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
