//! `tollgate api-key …`: API keys, on an account's behalf.

use clap::Subcommand;

use super::{now, parse_scope_arg, print_json};
use crate::db::DbConn;
use crate::service::api_keys::{self, KeySpec, Within};
use crate::service::audit::Actor;
use crate::service::with_secret_once;

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
    /// A new secret under the same name, scopes and lifetime; the old key is revoked at
    /// once and the new one printed once ("rotate regularly").
    Regenerate {
        id: String,
        /// Print the new key as JSON (with `api_key`).
        #[arg(long)]
        json: bool,
    },
    /// Delete for good.
    Delete { id: String },
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
