//! Recorded audit events.

/// One event of the audit trail. Events name ids and settings, never a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub seq: i64,
    pub occurred_at: i64,
    pub action: String,
    pub actor: String,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub subject_id: Option<String>,
    pub details: serde_json::Value,
}

/// An event to record; the actor and time are added when it is written.
#[derive(Debug, Default)]
pub struct NewAuditEvent<'a> {
    pub action: &'a str,
    pub account_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// The key, challenge or signing key the event is about.
    pub subject_id: Option<&'a str>,
    pub details: Option<serde_json::Value>,
}
