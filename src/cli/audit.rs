//! `tollgate audit`: the audit trail.

use clap::Args;

use super::print_json;
use crate::db::DbConn;
use crate::service::audit;

#[derive(Debug, Args)]
pub struct AuditArgs {
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
