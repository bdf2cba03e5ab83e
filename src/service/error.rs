//! Errors of the OAuth endpoints (token, revocation, introspection) and of bearer-token
//! callers, as data. `http::error` renders them.

use crate::crypto::signer::KeyError;
use crate::db::DbError;
use crate::oauth::OAuthError;

/// RFC 6750 §3.1: why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerRejection {
    /// No credentials at all: 401 with the realm only.
    #[error("a bearer token is required")]
    Missing,
    /// `invalid_token`: 401.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// `insufficient_scope`: 403, naming the scope needed.
    #[error("the token needs scope {0}")]
    InsufficientScope(&'static str),
}

/// What can go wrong at an OAuth endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// An RFC 6749 §5.2 error answer.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// A bearer-authenticated caller (introspection by an operator token) was refused.
    #[error(transparent)]
    Bearer(#[from] BearerRejection),
    #[error(transparent)]
    Store(#[from] DbError),
    #[error("token signing failed: {0}")]
    Signing(#[from] KeyError),
}
