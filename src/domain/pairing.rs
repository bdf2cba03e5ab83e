//! App pairing challenges: an app asks an account for a key; the owner gives it a code.

use crate::oauth::Scope;

/// Where a challenge is in its life. Only `Pending` can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeStatus {
    Pending,
    /// Redeemed for a key.
    Approved,
    /// Refused by the owner.
    Denied,
    /// Closed after too many wrong codes.
    Failed,
    Expired,
}

impl ChallengeStatus {
    pub const ALL: [ChallengeStatus; 5] = [
        Self::Pending,
        Self::Approved,
        Self::Denied,
        Self::Failed,
        Self::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    /// Always set for challenges made since 2026-12-02 (requests naming no usable account
    /// are no longer stored).
    pub account_id: Option<String>,
    pub app_name: String,
    pub scopes: Scope,
    pub failed_attempts: i32,
    pub status: ChallengeStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub resolved_at: Option<i64>,
    pub api_key_id: Option<String>,
    /// When the owner (or an operator) approved it: then it may be redeemed even past the
    /// account's daily guessing budget.
    pub owner_approved_at: Option<i64>,
}

/// Why a code exchange was refused. None says whether the account exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingRefusal {
    #[error("no such pairing challenge")]
    UnknownChallenge,
    #[error("the code is wrong; {remaining} attempt(s) left")]
    WrongCode { remaining: i32 },
    #[error("too many wrong codes: the challenge is closed, start a new one")]
    TooManyAttempts,
    #[error("the challenge has expired, start a new one")]
    Expired,
    #[error("the challenge was already used")]
    AlreadyUsed,
    #[error("the account owner denied the request")]
    Denied,
}
