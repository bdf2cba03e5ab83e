//! Use cases, as synchronous functions over a database connection. HTTP handlers (through
//! `Db::run`) and the CLI call the same functions. Time is always a parameter.

pub mod accounts;
pub mod audit;
pub mod clients;
pub mod keys;
pub mod tokens;

use crate::db::DbError;
use crate::oauth::{ErrorCode, OAuthError};

/// What every issued token must satisfy, from the configuration.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// `iss` of every token, and the base of the metadata's URLs.
    pub issuer: String,
    /// `aud` for clients that have no allowed audience of their own.
    pub default_audience: String,
    pub default_ttl: i64,
    pub max_ttl: i64,
    /// The audience the admin API requires in a bearer token.
    pub admin_audience: String,
    /// Lifetime of tokens obtained by exchanging an API key (never past the key's expiry).
    pub exchange_ttl: i64,
}

impl TokenPolicy {
    /// A client's lifetime, or the default, never above the maximum.
    pub fn ttl_for(&self, client_ttl: Option<i64>) -> i64 {
        client_ttl
            .unwrap_or(self.default_ttl)
            .clamp(1, self.max_ttl.max(1))
    }

    /// How long after a key stops signing its tokens may still be presented.
    pub fn retired_key_grace(&self) -> i64 {
        self.max_ttl + CLOCK_SKEW_SECONDS
    }
}

/// Allowance for resource servers whose clocks run behind ours.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

impl From<DbError> for OAuthError {
    fn from(err: DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the server is temporarily unavailable, try again",
            )
        } else {
            tracing::error!(error = %err, "database error");
            Self::new(ErrorCode::ServerError, "internal server error")
        }
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::Query(err).into()
    }
}

/// Splits a stored space-separated list.
pub(crate) fn split_list(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

/// Unix seconds as an RFC 3339 time for API output.
pub(crate) fn timestamp(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}
