//! The token endpoint (RFC 6749 §4.4, RFC 8693, RFC 9068): authenticate the client,
//! dispatch on the grant (one file per grant), sign.

pub mod client_credentials;
pub mod token_exchange;

use serde::Serialize;

use super::ProtocolError;
use super::access_tokens::{Audience, TokenClaims};
use super::api_keys::UsageTracker;
use super::client_auth;
use crate::cache::Lookup;
use crate::crypto::signer::KeyRing;
use crate::domain::{Client, GrantType};
use crate::oauth::{ADMIN_SCOPE, ErrorCode, Grant, OAuthError, Scope, TokenPolicy, TokenRequest};

/// A successful token response (RFC 6749 §5.1; RFC 8693 §2.2.1 adds `issued_token_type`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedToken {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

impl IssuedToken {
    /// The body serde would write (`serde_json::to_vec(self)`), in one pass into a buffer
    /// of the right size. The access token is most of it and a JWS compact serialization
    /// (base64url and dots) holds nothing JSON escapes, so it is copied as it is instead
    /// of being scanned for escapes byte by byte.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.access_token.len() + self.scope.len() + 192);
        out.extend_from_slice(br#"{"access_token":"#);
        write_json_string(&mut out, &self.access_token);
        if let Some(issued_token_type) = self.issued_token_type {
            out.extend_from_slice(br#","issued_token_type":"#);
            write_json_string(&mut out, issued_token_type);
        }
        out.extend_from_slice(br#","token_type":"#);
        write_json_string(&mut out, self.token_type);
        out.extend_from_slice(br#","expires_in":"#);
        out.extend_from_slice(itoa::Buffer::new().format(self.expires_in).as_bytes());
        out.extend_from_slice(br#","scope":"#);
        write_json_string(&mut out, &self.scope);
        out.push(b'}');
        out
    }
}

/// `text` as a JSON string: as it is when nothing in it needs escaping (base64url, dots,
/// scope tokens without `"` or `\`), through serde_json otherwise.
fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // A fold, not `all`: without the early exit the check runs on whole vectors.
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, text).is_err() {
        // Writing a string into a Vec cannot fail; an empty string keeps the JSON whole.
        out.extend_from_slice(b"\"\"");
    }
}

/// What a grant needs besides the connection.
pub struct Issuer<'a> {
    pub keys: &'a KeyRing,
    pub policy: &'a TokenPolicy,
    pub usage: &'a UsageTracker,
    pub now: i64,
}

/// Handles a parsed token request end to end: authenticate, authorize, sign.
pub fn issue(
    lookup: &mut dyn Lookup,
    issuer: &Issuer<'_>,
    request: &TokenRequest,
) -> Result<IssuedToken, ProtocolError> {
    let client = match &request.credentials {
        Some(credentials) => Some(client_auth::authenticate(lookup, credentials, issuer.now)?),
        None => None,
    };
    match &request.grant {
        Grant::ClientCredentials { scope, audiences } => {
            let client = client
                .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
            client_credentials::issue(issuer, &client, scope.as_ref(), audiences)
        }
        Grant::TokenExchange {
            subject_token,
            scope,
            audiences,
        } => token_exchange::issue(
            lookup,
            issuer,
            client.as_deref(),
            &subject_token.0,
            scope.as_ref(),
            audiences,
        ),
    }
}

fn require_grant(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.may_use(grant) {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client may not use the {grant} grant"),
        ))
    }
}

/// A bulk revocation at second `T` sets `tokens_not_before = T + 1`: tokens issued earlier
/// in that second are revoked, and tokens issued after it (still in second `T`) carry
/// `iat = T + 1` so they are not. `iat` is then ahead of the clock by under a second.
fn issued_at(tokens_not_before: Option<i64>, now: i64) -> i64 {
    tokens_not_before.map_or(now, |not_before| not_before.max(now))
}

fn sign(
    keys: &KeyRing,
    claims: TokenClaims<'_>,
    ttl: i64,
    issued_token_type: Option<&'static str>,
) -> Result<IssuedToken, ProtocolError> {
    let access_token = keys.active().sign_jwt(&claims)?;
    Ok(IssuedToken {
        access_token,
        issued_token_type,
        token_type: "Bearer",
        expires_in: ttl,
        scope: claims.scope.into_owned(),
    })
}

/// RFC 6749 §3.3: the requested scopes if all are allowed, all allowed scopes if none
/// were requested, `invalid_scope` otherwise; as the token's `scope` claim.
fn narrow_scope(
    allowed: &Scope,
    requested: Option<&Scope>,
    who: &str,
) -> Result<String, OAuthError> {
    match requested {
        None => Ok(allowed.joined()),
        Some(requested) if requested.is_subset_of(allowed) => Ok(requested.joined()),
        Some(requested) => Err(OAuthError::invalid_scope(format!(
            "{who} may not request: {}",
            requested.not_in(allowed).collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// RFC 8707: every requested audience must be allowed to the client. With none requested,
/// the client's first allowed audience, or the server default for a client without any.
/// Operators' clients may also ask for the admin API's own audience, which no other token
/// carries, so a token sent to a resource server cannot be replayed on /admin; a client
/// without audiences of its own gets that one by default.
fn grant_audience(
    client: &Client,
    policy: &TokenPolicy,
    requested: &[String],
) -> Result<Audience, OAuthError> {
    let configured = !client.audiences.is_empty();
    let admin = client.scopes.contains(ADMIN_SCOPE);
    if requested.is_empty() {
        let first = match client.audiences.first() {
            Some(first) => first,
            None if admin => &policy.admin_audience,
            None => &policy.default_audience,
        };
        return Ok(Audience::One(first.clone()));
    }
    let allowed = |audience: &String| {
        client.audiences.contains(audience)
            || (!configured && *audience == policy.default_audience)
            || (admin && *audience == policy.admin_audience)
    };
    if let Some(denied) = requested.iter().find(|r| !allowed(r)) {
        return Err(OAuthError::invalid_target(format!(
            "the client may not request a token for {}",
            crate::oauth::error::echo(denied)
        )));
    }
    Ok(Audience::from_list(requested.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::client::survives_bulk_revocation;

    #[test]
    fn token_json_is_what_serde_writes() {
        let token = |access_token: &str, scope: &str, issued_token_type, expires_in| IssuedToken {
            access_token: access_token.to_owned(),
            issued_token_type,
            token_type: "Bearer",
            expires_in,
            scope: scope.to_owned(),
        };
        for issued in [
            token("eyJh.eyJp-_0.c2ln", "read write", None, 3600),
            token("a.b.c", "", Some(crate::oauth::TOKEN_TYPE_ACCESS_TOKEN), 1),
            token("x", "api:read!#[]~", None, -5),
            token(
                "quote\"back\\slash",
                "tab\tnew\nline\u{7f}é",
                None,
                i64::MAX,
            ),
            token("", "\u{1}", Some("x\"y"), i64::MIN),
        ] {
            let expected = serde_json::to_vec(&issued).unwrap();
            assert_eq!(
                String::from_utf8(issued.to_json()).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn bulk_revocation_bound_lets_later_tokens_through() {
        assert!(survives_bulk_revocation(100, None));
        assert!(!survives_bulk_revocation(100, Some(101)));
        assert!(survives_bulk_revocation(
            issued_at(Some(101), 100),
            Some(101)
        ));
        assert_eq!(issued_at(Some(90), 100), 100);
    }

    #[test]
    fn scopes_narrow_only_within_what_is_allowed() {
        let allowed = Scope::parse("read write").unwrap();
        assert_eq!(narrow_scope(&allowed, None, "x").unwrap(), "read write");
        let read = Scope::parse("read").unwrap();
        assert_eq!(narrow_scope(&allowed, Some(&read), "x").unwrap(), "read");
        let err = narrow_scope(
            &allowed,
            Some(&Scope::parse("read admin").unwrap()),
            "the client",
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        assert_eq!(err.description, "the client may not request: admin");
    }
}
