//! `tollgate challenge …`: pending app pairing requests.

use clap::Subcommand;

use super::{now, print_json};
use crate::db::DbConn;
use crate::service::api_keys::Within;
use crate::service::audit::Actor;
use crate::service::pairing::{self, Pairing};

#[derive(Debug, Subcommand)]
pub enum ChallengeCommand {
    /// List an account's pending pairing requests, with their 4-digit codes.
    List {
        /// The handle of the account.
        #[arg(long, value_name = "HANDLE")]
        account: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deny a pending pairing request.
    Deny {
        /// The request's id (from `challenge list`).
        #[arg(value_name = "CHALLENGE_ID")]
        id: String,
    },
    /// Approve a pending pairing request: the app may redeem it with its code even when
    /// the account's daily guessing budget is spent.
    Approve {
        /// The request's id (from `challenge list`).
        #[arg(value_name = "CHALLENGE_ID")]
        id: String,
    },
}

impl ChallengeCommand {
    /// Whether the command writes to the database.
    pub fn mutates(&self) -> bool {
        !matches!(self, Self::List { .. })
    }
}

/// `pairing` derives the codes (from the master key, the same as the server's).
pub fn run(conn: &mut DbConn, pairing: &Pairing, command: ChallengeCommand) -> anyhow::Result<()> {
    match command {
        ChallengeCommand::List { account, json } => {
            let pending = pairing::pending_challenges_for(conn, pairing, &account, now())?;
            if json {
                print_json(&pending)?;
            } else if pending.is_empty() {
                println!("no pending requests");
            } else {
                for c in &pending {
                    println!(
                        "{}  code {}  app {:?} asks for: {}  (expires {})",
                        c.id,
                        c.code.as_deref().unwrap_or("----"),
                        c.app_name,
                        c.scopes.join(" "),
                        c.expires_at.to_rfc3339()
                    );
                }
            }
        }
        ChallengeCommand::Deny { id } => {
            pairing::deny_challenge(conn, &Actor::cli(), &id, Within::Any, now())?;
            println!("pairing request {id} denied");
        }
        ChallengeCommand::Approve { id } => {
            pairing::approve_challenge(conn, &Actor::cli(), &id, Within::Any, now())?;
            println!("pairing request {id} approved: the app may redeem it with its code");
        }
    }
    Ok(())
}
