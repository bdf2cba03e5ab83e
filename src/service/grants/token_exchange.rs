//! RFC 8693: token exchange, an API key (the subject token) for a short-lived access token.

use std::borrow::Cow;

use super::{IssuedToken, Issuer, grant_audience, issued_at, narrow_scope, require_grant, sign};
use crate::cache::Lookup;
use crate::crypto::secrets::token_id;
use crate::domain::{Client, GrantType};
use crate::oauth::{OAuthError, Scope, TOKEN_TYPE_ACCESS_TOKEN, TokenPolicy};
use crate::service::ProtocolError;
use crate::service::access_tokens::{Audience, TokenClaims};
use crate::service::api_keys;

/// Exchanges `subject_token` (an API key) for an access token. With a client, the client
/// must be allowed the grant and picks the audience; without, only the default audience.
pub fn issue(
    lookup: &mut dyn Lookup,
    issuer: &Issuer<'_>,
    client: Option<&Client>,
    subject_token: &str,
    scope: Option<&Scope>,
    audiences: &[String],
) -> Result<IssuedToken, ProtocolError> {
    if let Some(client) = client {
        require_grant(client, GrantType::TokenExchange)?;
    }
    let now = issuer.now;
    // RFC 8693 §2.2.2: an unusable subject token is `invalid_request`; the reason is not
    // told (a disabled account would reveal a valid key).
    let holder =
        api_keys::authenticate(lookup, issuer.usage, subject_token, now)?.map_err(|_| {
            OAuthError::invalid_request("the subject_token is not a valid, active API key")
        })?;
    let scope = narrow_scope(&holder.scopes(), scope, "the API key")?;
    let audience = match client {
        Some(client) => grant_audience(client, issuer.policy, audiences)?,
        None => default_audience_only(issuer.policy, audiences)?,
    };
    let ttl = holder
        .key()
        .expires_at
        .map_or(issuer.policy.exchange_ttl, |expires| {
            issuer.policy.exchange_ttl.min(expires - now)
        })
        .max(1);
    let claims = TokenClaims {
        iss: Cow::Borrowed(&issuer.policy.issuer),
        sub: Cow::Borrowed(&holder.account.id),
        aud: audience,
        exp: now + ttl,
        iat: client.map_or(now, |c| issued_at(c.tokens_not_before, now)),
        nbf: now,
        jti: Cow::Owned(token_id()),
        client_id: Cow::Borrowed(client.map_or(&holder.key().id, |c| &c.id)),
        scope: Cow::Owned(scope),
        api_key_id: Some(Cow::Borrowed(&holder.key().id)),
    };
    sign(issuer.keys, claims, ttl, Some(TOKEN_TYPE_ACCESS_TOKEN))
}

/// Without a client, an exchanged token is for the server's default audience only.
fn default_audience_only(
    policy: &TokenPolicy,
    requested: &[String],
) -> Result<Audience, OAuthError> {
    match requested {
        [] => Ok(Audience::One(policy.default_audience.clone())),
        [one] if *one == policy.default_audience => Ok(Audience::One(one.clone())),
        _ => Err(OAuthError::invalid_target(
            "without client authentication, tokens are only issued for the default audience",
        )),
    }
}
