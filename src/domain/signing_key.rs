//! Signing keys as stored: sealed private key, public JWK, lifecycle state.

use crate::crypto::signer::SigningAlgorithm;

/// `next` (published, not yet signing) → `active` (signing; at most one) → `retired`
/// (published until `publish_until`, when every token it signed has expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Active,
    Retired,
}

impl KeyState {
    pub const ALL: [KeyState; 3] = [Self::Next, Self::Active, Self::Retired];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Clone, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub state: KeyState,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SigningKeyRecord {
    /// Whether the JWKS lists it at `now`.
    pub fn is_published(&self, now: i64) -> bool {
        match self.state {
            KeyState::Next | KeyState::Active => true,
            KeyState::Retired => self.publish_until.is_some_and(|t| t > now),
        }
    }
}
