//! Queries on `audit_events`.

use diesel::prelude::*;

use super::models::{AuditRow, NewAuditRow};
use super::schema::audit_events;
use super::{DbConn, DbError};
use crate::domain::{AuditEvent, NewAuditEvent};

pub fn insert(
    conn: &mut DbConn,
    actor: &str,
    event: &NewAuditEvent<'_>,
    now: i64,
) -> Result<(), DbError> {
    let details = event
        .details
        .as_ref()
        .unwrap_or(&serde_json::Value::Null)
        .to_string();
    diesel::insert_into(audit_events::table)
        .values(NewAuditRow {
            occurred_at: now,
            action: event.action,
            actor,
            account_id: event.account_id,
            client_id: event.client_id,
            subject_id: event.subject_id,
            details,
        })
        .execute(conn)?;
    Ok(())
}

/// Which events to list; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    /// Exactly this action, e.g. `client.created`.
    pub action: Option<String>,
    /// Occurred at or after this Unix time.
    pub since: Option<i64>,
    /// Occurred before this Unix time.
    pub until: Option<i64>,
    /// Keyset paging: only events older than this `seq` (the last one of the page before).
    pub before_seq: Option<i64>,
}

/// Newest first.
pub fn list(
    conn: &mut DbConn,
    filter: &AuditFilter,
    limit: i64,
) -> Result<Vec<AuditEvent>, DbError> {
    let wanted = [&filter.account_id, &filter.client_id, &filter.action];
    if wanted
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| !super::storable(v)))
    {
        // No stored id holds a NUL byte (PostgreSQL would refuse the parameter).
        return Ok(Vec::new());
    }
    let mut query = audit_events::table
        .select(AuditRow::as_select())
        .order(audit_events::seq.desc())
        .limit(limit)
        .into_boxed();
    if let Some(account_id) = &filter.account_id {
        query = query.filter(audit_events::account_id.eq(account_id.clone()));
    }
    if let Some(client_id) = &filter.client_id {
        query = query.filter(audit_events::client_id.eq(client_id.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_events::action.eq(action.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::occurred_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::occurred_at.lt(until));
    }
    if let Some(before) = filter.before_seq {
        query = query.filter(audit_events::seq.lt(before));
    }
    super::convert(query.load(conn)?)
}
