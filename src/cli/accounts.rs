//! `tollgate account …`: accounts, the owners of API keys.

use clap::Subcommand;

use super::{now, parse_scope_arg, print_json};
use crate::config::Settings;
use crate::db::DbConn;
use crate::service::accounts::{self, AccountView, NewAccount};
use crate::service::audit::Actor;
use crate::service::invites;

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; its scopes bound what its API keys may carry.
    Create {
        /// The account's unique handle: letters, digits, `-`, `_` or `.` (kept in lower
        /// case); the person signs in with it, and the other commands name it.
        #[arg(long)]
        handle: String,
        /// Display name (default: the handle).
        #[arg(long)]
        name: Option<String>,
        /// Space-separated scopes the account's keys may carry, e.g. "read write keys"
        /// (`keys` lets a key manage the account's keys).
        #[arg(long, default_value = "", hide_default_value = true)]
        scope: String,
        /// Make the account an operator of the console (clients, signing keys, accounts,
        /// audit).
        #[arg(long)]
        operator: bool,
        /// Print the account as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time console sign-in link for an account.
    ///
    /// With it the person sets a password and signs in to the console; it also resets a
    /// forgotten password. A newer link replaces older ones.
    Invite {
        /// The account's handle.
        handle: String,
        /// Hours the link works, 1 to 720 (default: console.invite_valid_hours).
        #[arg(long, value_name = "HOURS")]
        valid_hours: Option<i64>,
        /// Print {"handle","url","expires_at"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make an account an operator of the console.
    Promote {
        /// The account's handle.
        handle: String,
    },
    /// Take the operator role away from an account.
    Demote {
        /// The account's handle.
        handle: String,
    },
    /// List accounts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show {
        /// The account's handle.
        handle: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: every key of the account stops working at once, and its
    /// console sessions end.
    Disable {
        /// The account's handle.
        handle: String,
    },
    /// Enable a disabled account: its keys work again.
    Enable {
        /// The account's handle.
        handle: String,
    },
    /// Delete an account and its keys for good.
    Delete {
        /// The account's handle.
        handle: String,
    },
}

impl AccountCommand {
    /// Whether the command writes to the database.
    pub fn mutates(&self) -> bool {
        !matches!(self, Self::List { .. } | Self::Show { .. })
    }
}

fn print_account(account: &AccountView) {
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
    println!("operator: {}", if account.operator { "yes" } else { "no" });
    println!("created:  {}", account.created_at.to_rfc3339());
}

pub fn run(conn: &mut DbConn, settings: &Settings, command: AccountCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        AccountCommand::Create {
            handle,
            name,
            scope,
            operator,
            json,
        } => {
            let new = NewAccount {
                handle: &handle,
                display_name: name.as_deref(),
                scopes: &parse_scope_arg(&scope)?,
                operator,
            };
            let account = accounts::create(conn, &actor, &new, now())?;
            if json {
                print_json(&account)?;
            } else {
                print_account(&account);
            }
        }
        AccountCommand::Invite {
            handle,
            valid_hours,
            json,
        } => {
            let ttl = match valid_hours {
                Some(hours) if (1..=24 * 30).contains(&hours) => hours * 3600,
                Some(_) => anyhow::bail!("--valid-hours must be between 1 and 720"),
                None => settings.console.invite_ttl_seconds,
            };
            let link = invites::create(conn, &actor, &handle, &settings.issuer, ttl, now())?;
            if json {
                print_json(&link)?;
            } else {
                println!("{}", link.url);
                eprintln!(
                    "single use, valid until {}; give it to {} over a private channel",
                    link.expires_at.to_rfc3339(),
                    link.handle
                );
            }
        }
        AccountCommand::Promote { handle } => {
            accounts::set_operator(conn, &actor, &handle, true, now())?;
            println!("account {handle} is an operator");
        }
        AccountCommand::Demote { handle } => {
            accounts::set_operator(conn, &actor, &handle, false, now())?;
            println!("account {handle} is no longer an operator");
        }
        AccountCommand::List { json } => {
            let list = accounts::list(conn)?;
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
            let account = accounts::get(conn, &handle)?;
            if json {
                print_json(&account)?;
            } else {
                print_account(&account);
            }
        }
        AccountCommand::Disable { handle } => {
            accounts::set_disabled(conn, &actor, &handle, true, now())?;
            println!("account {handle} disabled: its keys stop working at once");
        }
        AccountCommand::Enable { handle } => {
            accounts::set_disabled(conn, &actor, &handle, false, now())?;
            println!("account {handle} enabled");
        }
        AccountCommand::Delete { handle } => {
            accounts::delete(conn, &actor, &handle, now())?;
            println!("account {handle} and its keys deleted");
        }
    }
    Ok(())
}
