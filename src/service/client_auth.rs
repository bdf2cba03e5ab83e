//! Client authentication (RFC 6749 §2.3.1) against the stored secret digests.

use std::sync::Arc;

use crate::cache::Lookup;
use crate::crypto::secrets::SecretDigest;
use crate::domain::Client;
use crate::oauth::{ClientCredentials, OAuthError};

use super::ProtocolError;

/// Compared against when the client id is unknown, so that an unknown id and a wrong
/// secret take the same time.
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

/// Checks the presented secret against the stored digest(s): from memory once warm, else
/// one indexed read.
pub fn authenticate(
    lookup: &mut dyn Lookup,
    credentials: &ClientCredentials,
    now: i64,
) -> Result<Arc<Client>, ProtocolError> {
    let client = lookup.client(&credentials.client_id)?;
    check_secret(client.as_deref(), credentials, now)?;
    client.ok_or_else(|| bad_credentials().into())
}

/// Compares the presented secret with the client's current and (within its grace period)
/// previous digest, in constant time, and refuses disabled clients.
pub fn check_secret(
    client: Option<&Client>,
    credentials: &ClientCredentials,
    now: i64,
) -> Result<(), OAuthError> {
    let presented: SecretDigest = credentials.secret.digest();
    let Some(client) = client else {
        let _ = presented.matches(&DUMMY_DIGEST);
        return Err(bad_credentials());
    };
    let current = presented.matches(&client.secret_digest);
    let previous = match &client.previous_secret {
        Some((digest, until)) if now < *until => presented.matches(digest),
        _ => presented.matches(&DUMMY_DIGEST),
    };
    if !(current | previous) {
        return Err(bad_credentials());
    }
    if client.is_disabled() {
        return Err(OAuthError::invalid_client("the client is disabled"));
    }
    Ok(())
}

fn bad_credentials() -> OAuthError {
    // Same answer for an unknown id and a wrong secret: no client enumeration.
    OAuthError::invalid_client("client authentication failed")
}
