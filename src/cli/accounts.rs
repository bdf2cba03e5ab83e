//! `tollgate account …`: accounts, the owners of API keys.

use clap::Subcommand;

use super::{now, parse_scope_arg, print_json};
use crate::db::DbConn;
use crate::service::accounts::{self, AccountView};
use crate::service::audit::Actor;

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
    println!("created:  {}", account.created_at.to_rfc3339());
}

pub fn run(conn: &mut DbConn, command: AccountCommand) -> anyhow::Result<()> {
    let actor = Actor::cli();
    match command {
        AccountCommand::Create {
            handle,
            name,
            scope,
            json,
        } => {
            let account = accounts::create(
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
