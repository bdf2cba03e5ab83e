//! RFC 7009: token revocation by the client the token was issued to.

use super::ProtocolError;
use super::{access_tokens, client_auth};
use crate::crypto::signer::KeyRing;
use crate::db::{self, DbConn};
use crate::oauth::{RevocationRequest, TokenPolicy};

/// RFC 7009 §2: revokes `token` if it is a valid token of this server issued to the
/// authenticated client. Anything else (expired, malformed, foreign) changes nothing and
/// is not an error (§2.2).
pub fn revoke(
    conn: &mut DbConn,
    keys: &KeyRing,
    policy: &TokenPolicy,
    request: &RevocationRequest,
    now: i64,
) -> Result<(), ProtocolError> {
    let client = client_auth::authenticate(conn, &request.credentials, now)?;
    let Ok(claims) = access_tokens::verify(keys, policy, &request.token, None, now) else {
        return Ok(());
    };
    if claims.client_id != client.id {
        return Ok(());
    }
    db::revocations::insert(conn, &claims.jti, &claims.client_id, claims.exp, now)?;
    Ok(())
}
