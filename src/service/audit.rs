//! The audit trail: who did what. Events name ids and settings, never a secret.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::timestamp;
use crate::db::models::{AuditRow, NewAuditRow};
use crate::db::{self, DbConn};

/// Who acted: `cli`, `admin:<client id>`, `account:<handle>`, `app:<app name>`, `system`.
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

/// One event to record.
#[derive(Debug, Default)]
pub struct Event<'a> {
    pub action: &'a str,
    pub account_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// The key, challenge or signing key the event is about.
    pub subject_id: Option<&'a str>,
    pub details: Option<Value>,
}

pub fn record(
    conn: &mut DbConn,
    actor: &Actor,
    event: Event<'_>,
    now: i64,
) -> diesel::QueryResult<()> {
    let details = event.details.unwrap_or(Value::Null).to_string();
    db::audit::insert(
        conn,
        &NewAuditRow {
            occurred_at: now,
            action: event.action,
            actor: actor.as_str(),
            account_id: event.account_id,
            client_id: event.client_id,
            subject_id: event.subject_id,
            details: &details,
        },
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    pub details: Value,
}

impl From<AuditRow> for AuditView {
    fn from(row: AuditRow) -> Self {
        Self {
            occurred_at: timestamp(row.occurred_at),
            action: row.action,
            actor: row.actor,
            account_id: row.account_id,
            client_id: row.client_id,
            subject_id: row.subject_id,
            details: serde_json::from_str(&row.details).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("no account with handle {0:?}")]
    UnknownAccount(String),
    #[error(transparent)]
    Store(#[from] db::DbError),
}

impl From<diesel::result::Error> for AuditError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Store(err.into())
    }
}

/// Newest first; filtered by account handle and/or client id; at most `limit` (1..=1000).
pub fn list(
    conn: &mut DbConn,
    account_handle: Option<&str>,
    client_id: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditView>, AuditError> {
    let account_id = match account_handle {
        Some(handle) => Some(
            db::accounts::by_handle(conn, handle)?
                .ok_or_else(|| AuditError::UnknownAccount(handle.to_owned()))?
                .id,
        ),
        None => None,
    };
    Ok(
        db::audit::list(conn, account_id.as_deref(), client_id, limit.clamp(1, 1000))?
            .into_iter()
            .map(AuditView::from)
            .collect(),
    )
}
