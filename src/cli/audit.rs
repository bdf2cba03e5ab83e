//! `tollgate audit`: the audit trail.

use clap::Args;

use super::print_json;
use crate::db::DbConn;
use crate::service::audit;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events of this account (its handle).
    #[arg(long, value_name = "HANDLE")]
    account: Option<String>,
    /// Only events of this client (its id).
    #[arg(long, value_name = "CLIENT_ID")]
    client: Option<String>,
    /// How many events to print, the newest: 1 to 1000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        value_parser = clap::value_parser!(i64).range(1..=audit::MAX_LIMIT)
    )]
    limit: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(conn: &mut DbConn, args: AuditArgs) -> anyhow::Result<()> {
    let events = audit::list(
        conn,
        args.account.as_deref(),
        args.client.as_deref(),
        args.limit,
    )?;
    if args.json {
        return print_json(&events);
    }
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
    Ok(())
}
