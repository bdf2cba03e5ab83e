//! What the web console keeps about people: how they sign in, their sessions, invite links
//! and the apps they authorize in the browser.

use crate::oauth::Scope;

/// How a person proves who they are. The password is an argon2id PHC string; the TOTP
/// secret stays sealed under the master key until a code is checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account_id: String,
    pub password_hash: String,
    pub password_changed_at: i64,
    pub sealed_totp_secret: Option<Vec<u8>>,
    /// The second factor counts only once confirmed with a first code.
    pub totp_enabled_at: Option<i64>,
    /// The last TOTP time step accepted: a code is good once.
    pub totp_last_step: Option<i64>,
    pub failed_sign_ins: i32,
    pub sign_in_blocked_until: Option<i64>,
}

impl Credentials {
    pub fn has_second_factor(&self) -> bool {
        self.totp_enabled_at.is_some() && self.sealed_totp_secret.is_some()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account_id", &self.account_id)
            .field("password_changed_at", &self.password_changed_at)
            .field("totp_enabled_at", &self.totp_enabled_at)
            .field("failed_sign_ins", &self.failed_sign_ins)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser. The cookie's token is never stored, only its digest; `id` is the
/// public name of the session in the person's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id: String,
    pub account_id: String,
    /// The synchronizer token every state-changing form of this session carries.
    pub csrf_token: String,
    /// Signed in with a password but not yet with the second factor: only the second-factor
    /// page is open to it.
    pub second_factor_pending: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The absolute end, whatever the activity.
    pub expires_at: i64,
    pub user_agent: String,
    pub address: String,
}

/// A one-time link that lets a person set their password (first time or reset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub id: String,
    pub account_id: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// Where a browser app authorization is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAuthorizationStatus {
    /// Seen by a signed-in person, not decided yet.
    Pending,
    /// Approved; the app has not collected its key yet.
    Approved,
    Denied,
    /// The app collected its key: the session id is spent.
    Claimed,
}

impl AppAuthorizationStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Approved, Self::Denied, Self::Claimed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Claimed => "claimed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// An app asking, through a person's browser, for a key to their account (MiAuth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAuthorization {
    pub session_id: String,
    pub account_id: Option<String>,
    pub app_name: String,
    pub scopes: Scope,
    pub callback: Option<String>,
    pub status: AppAuthorizationStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub resolved_at: Option<i64>,
    pub api_key_id: Option<String>,
}
