//! `tollgate api-key …`: API keys, on an account's behalf.

use clap::Subcommand;

use super::{now, parse_scope_arg, print_json};
use crate::db::DbConn;
use crate::service::api_keys::{self, KeySpec, Within};
use crate::service::audit::Actor;
use crate::service::with_secret_once;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an account; it is printed once and cannot be shown again.
    Create {
        /// The handle of the account that owns the key.
        #[arg(long, value_name = "HANDLE")]
        account: String,
        /// A name for the key, e.g. what uses it ("CI deploy").
        #[arg(long)]
        name: String,
        /// Space-separated scopes, within the account's (default: all of the account's).
        #[arg(long)]
        scope: Option<String>,
        /// Seconds until the key expires (default: it does not expire).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<i64>,
        /// Print the key, with `api_key`, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an account's API keys (never the keys themselves).
    List {
        /// The handle of the account.
        #[arg(long, value_name = "HANDLE")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key at once; it stays listed as revoked.
    Revoke {
        /// The key's id (from `api-key list`).
        #[arg(value_name = "KEY_ID")]
        id: String,
    },
    /// Regenerate an API key: a new secret under the same name, scopes and lifetime; the
    /// old key is revoked at once and the new one printed once.
    Regenerate {
        /// The key's id (from `api-key list`).
        #[arg(value_name = "KEY_ID")]
        id: String,
        /// Print the new key as JSON (with `api_key`).
        #[arg(long)]
        json: bool,
    },
    /// Delete an API key for good.
    Delete {
        /// The key's id (from `api-key list`).
        #[arg(value_name = "KEY_ID")]
        id: String,
    },
}

impl ApiKeyCommand {
    /// Whether the command writes to the database.
    pub fn mutates(&self) -> bool {
        !matches!(self, Self::List { .. })
    }
}

pub fn run(conn: &mut DbConn, command: ApiKeyCommand) -> anyhow::Result<()> {
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
            let (view, secret) = api_keys::create_for(conn, &actor, &account, &spec, now())?;
            if json {
                print_json(&with_secret_once(&view, "api_key", secret.expose()))?;
            } else {
                println!("id:      {}", view.id);
                println!("name:    {}", view.name);
                println!("scopes:  {}", view.scopes.join(" "));
                println!("api_key: {}", secret.expose());
                println!("\nStore the key now: it is not kept and cannot be shown again.");
            }
        }
        ApiKeyCommand::List { account, json } => {
            let keys = api_keys::list_for(conn, &account, now())?;
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
        ApiKeyCommand::Regenerate { id, json } => {
            let (view, secret) = api_keys::regenerate(conn, &actor, &id, Within::Any, now())?;
            if json {
                print_json(&with_secret_once(&view, "api_key", secret.expose()))?;
            } else {
                println!("id:      {}", view.id);
                println!("name:    {}", view.name);
                println!("api_key: {}", secret.expose());
                println!(
                    "\nThe old key {id} is revoked. Store the new key now: it cannot be shown again."
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            api_keys::revoke(conn, &actor, &id, Within::Any, now())?;
            println!("API key {id} revoked");
        }
        ApiKeyCommand::Delete { id } => {
            api_keys::delete(conn, &actor, &id, Within::Any, now())?;
            println!("API key {id} deleted");
        }
    }
    Ok(())
}
