//! RFC 6749 §4.4: the client credentials grant.

use std::borrow::Cow;

use super::{IssuedToken, Issuer, grant_audience, issued_at, narrow_scope, require_grant, sign};
use crate::crypto::secrets::token_id;
use crate::domain::{Client, GrantType};
use crate::oauth::Scope;
use crate::service::ProtocolError;
use crate::service::access_tokens::TokenClaims;

/// A token for the authenticated `client` itself.
pub fn issue(
    issuer: &Issuer<'_>,
    client: &Client,
    scope: Option<&Scope>,
    audiences: &[String],
) -> Result<IssuedToken, ProtocolError> {
    require_grant(client, GrantType::ClientCredentials)?;
    let scope = narrow_scope(&client.scopes, scope, "the client")?;
    let audience = grant_audience(client, issuer.policy, audiences)?;
    let ttl = issuer.policy.ttl_for(client.token_ttl);
    let now = issuer.now;
    let claims = TokenClaims {
        iss: Cow::Borrowed(&issuer.policy.issuer),
        sub: Cow::Borrowed(&client.id),
        aud: audience,
        exp: now + ttl,
        iat: issued_at(client.tokens_not_before, now),
        nbf: now,
        jti: Cow::Owned(token_id()),
        client_id: Cow::Borrowed(&client.id),
        scope: Cow::Owned(scope),
        api_key_id: None,
    };
    sign(issuer.keys, claims, ttl, None)
}
