//! Queries on `audit_events`.

use diesel::prelude::*;

use super::DbConn;
use super::models::{AuditRow, NewAuditRow};
use super::schema::audit_events;

pub fn insert(conn: &mut DbConn, row: &NewAuditRow<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Newest first, optionally for one account or one client.
pub fn list(
    conn: &mut DbConn,
    account_id: Option<&str>,
    client_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .order(audit_events::seq.desc())
        .limit(limit)
        .into_boxed();
    if let Some(account_id) = account_id {
        query = query.filter(audit_events::account_id.eq(account_id.to_owned()));
    }
    if let Some(client_id) = client_id {
        query = query.filter(audit_events::client_id.eq(client_id.to_owned()));
    }
    query.load(conn)
}
