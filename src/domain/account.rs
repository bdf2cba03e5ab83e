//! Accounts and their API keys.

use crate::oauth::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    /// What the account's keys may be given.
    pub scopes: Scope,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// May use the operators' pages of the console.
    pub is_operator: bool,
}

impl Account {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// An API key as stored: never the key itself; its digest stays in `db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart (not secret).
    pub prefix: String,
    pub scopes: Scope,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Whether a key works at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyStatus {
    Active,
    Revoked,
    Expired,
}

impl ApiKeyStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl ApiKey {
    pub fn status(&self, now: i64) -> ApiKeyStatus {
        if self.revoked_at.is_some() {
            ApiKeyStatus::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            ApiKeyStatus::Expired
        } else {
            ApiKeyStatus::Active
        }
    }

    /// The key's scopes that its account still holds (the account's may have shrunk).
    pub fn effective_scopes(&self, account: &Account) -> Scope {
        self.scopes.intersection(&account.scopes)
    }
}
