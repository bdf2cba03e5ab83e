//! The audit trail: who did what. Events name ids and settings, never a secret.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::db::audit::AuditFilter;
use crate::db::{self, DbConn, DbError};
use crate::domain::{AuditEvent, timestamp};

pub use crate::domain::NewAuditEvent as Event;

/// Who acted: `cli`, `admin:<client id>`, `account:<handle>`, `console:<handle>`,
/// `app:<app name>`, `system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn cli() -> Self {
        Self("cli".into())
    }

    pub fn admin(client_id: &str) -> Self {
        Self(format!("admin:{client_id}"))
    }

    pub fn account(handle: &str) -> Self {
        Self(format!("account:{handle}"))
    }

    /// A person acting in the web console.
    pub fn console(handle: &str) -> Self {
        Self(format!("console:{handle}"))
    }

    pub fn app(name: &str) -> Self {
        Self(format!("app:{name}"))
    }

    pub fn system() -> Self {
        Self("system".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes one event; call it inside the use case's transaction.
pub fn record(conn: &mut DbConn, actor: &Actor, event: Event<'_>, now: i64) -> Result<(), DbError> {
    db::audit::insert(conn, actor.as_str(), &event, now)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    /// The event's place in the trail; pass it as `before_seq` for the next older page.
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    pub details: Value,
}

impl From<AuditEvent> for AuditView {
    fn from(event: AuditEvent) -> Self {
        Self {
            seq: event.seq,
            occurred_at: timestamp(event.occurred_at),
            action: event.action,
            actor: event.actor,
            account_id: event.account_id,
            client_id: event.client_id,
            subject_id: event.subject_id,
            details: event.details,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no account with handle {}", crate::oauth::error::echo(.0))]
    UnknownAccount(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// The most events one listing returns.
pub const MAX_LIMIT: i64 = 1000;

/// Which events a listing wants: every field narrows it, `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// The account's handle (any case).
    pub account_handle: Option<String>,
    pub client_id: Option<String>,
    pub action: Option<String>,
    /// Occurred at or after this Unix time.
    pub since: Option<i64>,
    /// Occurred before this Unix time.
    pub until: Option<i64>,
    /// Only events older than this one (keyset paging: the last `seq` of the page before).
    pub before_seq: Option<i64>,
}

/// Newest first; filtered by account handle and/or client id; at most `limit`
/// (clamped to 1..=[`MAX_LIMIT`]).
pub fn list(
    conn: &mut DbConn,
    account_handle: Option<&str>,
    client_id: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditView>, AuditError> {
    let query = AuditQuery {
        account_handle: account_handle.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        ..AuditQuery::default()
    };
    search(conn, &query, limit)
}

/// Newest first, every filter of `query` applied; at most `limit` (clamped to
/// 1..=[`MAX_LIMIT`]).
pub fn search(
    conn: &mut DbConn,
    query: &AuditQuery,
    limit: i64,
) -> Result<Vec<AuditView>, AuditError> {
    let account_id = match query.account_handle.as_deref() {
        Some(handle) => Some(
            db::accounts::by_handle(conn, &handle.trim().to_ascii_lowercase())?
                .ok_or_else(|| AuditError::UnknownAccount(handle.to_owned()))?
                .id,
        ),
        None => None,
    };
    let filter = AuditFilter {
        account_id,
        client_id: query.client_id.clone(),
        action: query.action.clone(),
        since: query.since,
        until: query.until,
        before_seq: query.before_seq,
    };
    Ok(db::audit::list(conn, &filter, limit.clamp(1, MAX_LIMIT))?
        .into_iter()
        .map(AuditView::from)
        .collect())
}
