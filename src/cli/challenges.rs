//! `tollgate challenge …`: pending app pairing requests.

use clap::Subcommand;

use super::{now, print_json};
use crate::db::DbConn;
use crate::service::audit::Actor;
use crate::service::pairing;

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

pub fn run(conn: &mut DbConn, command: ChallengeCommand) -> anyhow::Result<()> {
    match command {
        ChallengeCommand::List { account, json } => {
            let pending = pairing::pending_challenges_for(conn, &account, now())?;
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
            pairing::deny_challenge(conn, &Actor::cli(), &id, None, now())?;
            println!("pairing request {id} denied");
        }
    }
    Ok(())
}
