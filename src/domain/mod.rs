//! The values Tollgate works with, as types: what `db` returns and `service` reasons about.
//! Rows stay private to `db`; a row that cannot become one of these is a [`CorruptRow`],
//! never a silently empty value.
//!
//! Times are Unix seconds (`i64`), as stored and as JWT claims carry them; views convert
//! them for output.

pub mod account;
pub mod audit;
pub mod client;
pub mod console;
pub mod pairing;
pub mod signing_key;

pub use account::{Account, ApiKey, ApiKeyStatus};
pub use audit::{AuditEvent, NewAuditEvent};
pub use client::{Client, GrantType};
pub use console::{AppAuthorization, AppAuthorizationStatus, ConsoleSession, Credentials, Invite};
pub use pairing::{Challenge, ChallengeStatus, PairingRefusal};
pub use signing_key::{KeyState, SigningKeyRecord};

/// A stored value that does not parse as the type it should be: damage or a bug, answered
/// with a 500-class error and logged, never read as a default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} row {id:?}: {reason}")]
pub struct CorruptRow {
    pub table: &'static str,
    pub id: String,
    pub reason: String,
}

impl CorruptRow {
    pub fn new(table: &'static str, id: &str, reason: impl Into<String>) -> Self {
        Self {
            table,
            id: id.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses a stored scope list, naming the row when it is damaged.
pub(crate) fn stored_scope(
    table: &'static str,
    id: &str,
    text: &str,
) -> Result<crate::oauth::Scope, CorruptRow> {
    crate::oauth::Scope::parse(text)
        .map_err(|e| CorruptRow::new(table, id, format!("scopes: {}", e.0)))
}

/// Unix seconds as an RFC 3339 time for output.
pub fn timestamp(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}
