//! RFC 7009: token revocation by the client the token was issued to.

use super::ProtocolError;
use super::{access_tokens, client_auth};
use crate::cache::HotCache;
use crate::crypto::secrets::ApiKeySecret;
use crate::crypto::signer::KeyRing;
use crate::db::{self, DbConn};
use crate::oauth::{ErrorCode, OAuthError, RevocationRequest, TokenPolicy};

/// RFC 7009 §2: revokes `token` if it is a valid token of this server issued to the
/// authenticated client. Anything else (expired, malformed, foreign) changes nothing and
/// is not an error (§2.2), except an API key: it belongs to an account, not to any client,
/// so no client may revoke it here, and saying 200 would let the caller believe it gone.
/// It gets `unsupported_token_type` (§2.2.1), recognised by its format alone (prefix and
/// checksum, no lookup: the answer says nothing about whether the key exists); the owner
/// revokes it with `POST /api/v1/keys/{id}/revoke`, an operator with the CLI or admin API.
pub fn revoke(
    conn: &mut DbConn,
    cache: &HotCache,
    keys: &KeyRing,
    policy: &TokenPolicy,
    request: &RevocationRequest,
    now: i64,
) -> Result<(), ProtocolError> {
    let client = client_auth::authenticate(&mut cache.backed(conn), &request.credentials, now)?;
    if ApiKeySecret::parse(&request.token).is_ok() {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedTokenType,
            "API keys are revoked by their account (POST /api/v1/keys/{id}/revoke) or an operator, not at this endpoint",
        )
        .into());
    }
    let Ok(claims) = access_tokens::verify(keys, policy, &request.token, None, now) else {
        return Ok(());
    };
    if claims.client_id != client.id {
        return Ok(());
    }
    db::revocations::insert(conn, &claims.jti, &claims.client_id, claims.exp, now)?;
    Ok(())
}
