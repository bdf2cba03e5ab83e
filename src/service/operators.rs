//! The one operator check: does a bearer token speak for an operator? Used by the admin
//! API and by introspection callers that present a bearer token.

use super::BearerRejection;
use super::access_tokens::{self, AccessTokenClaims};
use crate::crypto::signer::KeyRing;
use crate::domain::Client;
use crate::oauth::{ADMIN_SCOPE, TokenPolicy};

/// The part that needs no database: a valid token of ours, for the admin audience, with
/// the `admin` scope.
pub fn verify_token(
    keys: &KeyRing,
    policy: &TokenPolicy,
    token: &str,
    now: i64,
) -> Result<AccessTokenClaims, BearerRejection> {
    let claims = access_tokens::verify(keys, policy, token, Some(&policy.admin_audience), now)
        .map_err(|e| BearerRejection::InvalidToken(e.to_string()))?;
    if !claims.has_scope(ADMIN_SCOPE) {
        return Err(BearerRejection::InsufficientScope(ADMIN_SCOPE));
    }
    Ok(claims)
}

/// The part that reads the token's client (`None`: deleted) and its revocation: the
/// client is enabled, still holds the `admin` scope (so taking the scope away ends its
/// tokens), has not revoked the token singly or in bulk, and the token is not one
/// exchanged for an API key.
pub fn check_still_valid(
    client: Option<&Client>,
    token_revoked: bool,
    claims: &AccessTokenClaims,
) -> Result<(), BearerRejection> {
    let holds = client.is_some_and(|client| {
        !client.is_disabled()
            && !token_revoked
            && claims.api_key_id.is_none()
            && client.scopes.contains(ADMIN_SCOPE)
            && client.token_survives(claims.iat)
    });
    if holds {
        Ok(())
    } else {
        Err(BearerRejection::InvalidToken(
            "the token was revoked, or its client is disabled or deleted".into(),
        ))
    }
}
