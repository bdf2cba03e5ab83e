//! OAuth clients (RFC 6749 §2).

use crate::oauth::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, Scope};

/// A grant type a client may be allowed to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 8693.
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 2] = [GrantType::ClientCredentials, GrantType::TokenExchange];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => GRANT_CLIENT_CREDENTIALS,
            Self::TokenExchange => GRANT_TOKEN_EXCHANGE,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client as stored, with its secret digests (never the secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub secret_digest: Vec<u8>,
    /// A rotated-out secret and when it stops working.
    pub previous_secret: Option<(Vec<u8>, i64)>,
    pub scopes: Scope,
    /// Audiences the client may ask for; empty means the server's default audience.
    pub audiences: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub token_ttl: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Tokens issued before this second are revoked (bulk revocation).
    pub tokens_not_before: Option<i64>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether a token issued at `iat` survived the client's bulk revocations.
    pub fn token_survives(&self, iat: i64) -> bool {
        survives_bulk_revocation(iat, self.tokens_not_before)
    }
}

/// Whether a token issued at `iat` survived bulk revocations up to `tokens_not_before`.
pub fn survives_bulk_revocation(iat: i64, tokens_not_before: Option<i64>) -> bool {
    tokens_not_before.is_none_or(|not_before| iat >= not_before)
}
