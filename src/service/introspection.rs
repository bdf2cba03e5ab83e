//! RFC 7662: token introspection, for JWTs of this server and for API keys.

use serde::Serialize;

use super::access_tokens::{self, AccessTokenClaims, Audience};
use super::api_keys::{self, UsageTracker};
use super::{ProtocolError, client_auth, operators};
use std::sync::Arc;

use crate::cache::Lookup;
use crate::cache::table::{Cached, Table};
use crate::crypto::secrets::ApiKeySecret;
use crate::crypto::secrets::SecretDigest;
use crate::crypto::signer::KeyRing;
use crate::domain::client::survives_bulk_revocation;
use crate::domain::{ApiKeyStatus, Client};
use crate::oauth::{
    ErrorCode, INTROSPECT_SCOPE, IntrospectionCaller, IntrospectionRequest, OAuthError, TokenPolicy,
};

/// `token_type` of an API key in introspection answers.
pub const API_KEY_TOKEN_TYPE_NAME: &str = "api_key";

/// RFC 7662 §2.2: the introspection answer. Inactive tokens say nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<ActiveToken>,
}

/// RFC 7662 §2.2 as a schema: `{"active": false}` alone, or `active: true` with the
/// token's members (derived from [`ActiveToken`]). Written by hand because the derive
/// cannot express a flattened `Option`.
impl utoipa::PartialSchema for Introspection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Type};
        let active = |value: bool| {
            ObjectBuilder::new()
                .property(
                    "active",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .enum_values(Some([value])),
                )
                .required("active")
        };
        OneOfBuilder::new()
            .description(Some(
                "RFC 7662 §2.2: an inactive token says nothing else; an active one carries its claims.",
            ))
            .item(active(false))
            .item(
                AllOfBuilder::new()
                    .item(active(true))
                    .item(utoipa::openapi::Ref::from_schema_name("ActiveToken")),
            )
            .into()
    }
}

impl utoipa::ToSchema for Introspection {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "ActiveToken".into(),
            <ActiveToken as utoipa::PartialSchema>::schema(),
        ));
        <ActiveToken as utoipa::ToSchema>::schemas(schemas);
    }
}

impl Introspection {
    pub fn inactive() -> Self {
        Self {
            active: false,
            token: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActiveToken {
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub token_type: &'static str,
    /// The account handle, for API keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl From<AccessTokenClaims> for ActiveToken {
    fn from(claims: AccessTokenClaims) -> Self {
        Self {
            scope: claims.scope.into_owned(),
            client_id: Some(claims.client_id.into_owned()),
            sub: claims.sub.into_owned(),
            aud: Some(claims.aud),
            iss: claims.iss.into_owned(),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            jti: Some(claims.jti.into_owned()),
            token_type: "Bearer",
            username: None,
        }
    }
}

/// RFC 7662 for an API key: active while it is neither revoked nor expired and its
/// account is enabled; `sub` is the account, `token_type` says it is an API key.
fn introspect_api_key(
    lookup: &mut dyn Lookup,
    usage: &UsageTracker,
    policy: &TokenPolicy,
    token: &str,
    now: i64,
) -> Result<Introspection, ProtocolError> {
    let Ok(holder) = api_keys::authenticate(lookup, usage, token, now)? else {
        return Ok(Introspection::inactive());
    };
    Ok(Introspection {
        active: true,
        token: Some(ActiveToken {
            scope: holder.scopes().to_string(),
            client_id: None,
            sub: holder.account.id.clone(),
            aud: None,
            iss: policy.issuer.clone(),
            exp: holder.key().expires_at,
            iat: Some(holder.key().created_at),
            nbf: None,
            jti: Some(holder.key().id.clone()),
            token_type: API_KEY_TOKEN_TYPE_NAME,
            username: Some(holder.account.handle.clone()),
        }),
    })
}

/// How many verified tokens an instance remembers (a few hundred bytes each).
const VERIFIED_TOKENS: usize = 10_000;

/// Access tokens whose signature this instance has already checked, by the SHA-256 of the
/// whole token. A resource server introspects the same token on every request it serves,
/// and verifying an ES256 signature costs more than making one. What is remembered is only
/// that these exact bytes carry a valid signature by key `kid` and these claims: each use
/// still checks the time window and that the key is still published, and looks up
/// revocation and the client's state like any other token.
pub struct VerifiedTokens(Table<[u8; 32], Arc<(String, AccessTokenClaims)>>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self(Table::new(VERIFIED_TOKENS, 1))
    }
}

impl VerifiedTokens {
    /// [`access_tokens::verify`] without an audience, remembering success.
    pub fn verify(
        &self,
        keys: &KeyRing,
        policy: &TokenPolicy,
        token: &str,
        now: i64,
    ) -> Option<AccessTokenClaims> {
        let digest = SecretDigest::of(token.as_bytes()).to_array();
        if let Cached::Value(entry) = self.0.get(&digest) {
            let (kid, claims) = &*entry;
            if keys.verifying_key(kid).is_some() {
                return (claims.exp > now && claims.nbf <= now).then(|| claims.clone());
            }
        }
        let claims = access_tokens::verify(keys, policy, token, None, now).ok()?;
        if let Some(kid) = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) {
            self.0.fill(
                digest,
                Some(Arc::new((kid, claims.clone()))),
                self.0.epoch(),
            );
        }
        Some(claims)
    }
}

/// RFC 7662: authenticates the caller and answers for the token, from memory once warm
/// (else a few primary-key reads), with no write.
pub fn introspect(
    lookup: &mut dyn Lookup,
    keys: &KeyRing,
    policy: &TokenPolicy,
    usage: &UsageTracker,
    verified: &VerifiedTokens,
    request: &IntrospectionRequest,
    now: i64,
) -> Result<Introspection, ProtocolError> {
    match &request.caller {
        IntrospectionCaller::Client(credentials) => {
            let caller = client_auth::authenticate(lookup, credentials, now)?;
            if !caller.scopes.contains(INTROSPECT_SCOPE) {
                return Err(OAuthError::new(
                    ErrorCode::UnauthorizedClient,
                    "the client needs the introspect scope to call this endpoint",
                )
                .with_status(403)
                .into());
            }
        }
        IntrospectionCaller::Bearer(token) => {
            let claims = operators::verify_token(keys, policy, token, now)?;
            let client = lookup.client(&claims.client_id)?;
            let revoked = lookup.is_revoked(&claims.jti)?;
            operators::check_still_valid(client.as_deref(), revoked, &claims)?;
        }
    }
    if ApiKeySecret::looks_like_api_key(&request.token) {
        return introspect_api_key(lookup, usage, policy, &request.token, now);
    }
    let Some(claims) = verified.verify(keys, policy, &request.token, now) else {
        return Ok(Introspection::inactive());
    };
    let active = !lookup.is_revoked(&claims.jti)?
        && match &claims.api_key_id {
            // A token exchanged for an API key lives only while the key does (and, when a
            // client asked for it, while that client does).
            Some(key_id) => {
                let key_ok = matches!(
                    lookup.api_key_by_id(key_id)?,
                    Some((entry, account)) if entry.key.status(now) == ApiKeyStatus::Active
                        && !account.is_disabled()
                );
                key_ok
                    && (claims.client_id == *key_id
                        || client_ok(lookup.client(&claims.client_id)?.as_deref(), claims.iat))
            }
            None => client_ok(lookup.client(&claims.client_id)?.as_deref(), claims.iat),
        };
    Ok(if active {
        Introspection {
            active: true,
            token: Some(claims.into()),
        }
    } else {
        Introspection::inactive()
    })
}

/// The introspected token's client exists, is enabled, and has not revoked it in bulk.
fn client_ok(client: Option<&Client>, iat: i64) -> bool {
    client.is_some_and(|client| {
        client.disabled_at.is_none() && survives_bulk_revocation(iat, client.tokens_not_before)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::secrets::random_id;
    use crate::service::access_tokens::test_support::{policy, ring};

    #[test]
    fn a_remembered_token_still_expires_and_needs_its_key_published() {
        let (ring, other_ring, policy, now) = (ring(), ring(), policy(), 1_000);
        let claims = AccessTokenClaims {
            iss: policy.issuer.clone().into(),
            sub: "c".into(),
            aud: Audience::One("https://api.example".into()),
            exp: now + 60,
            iat: now,
            nbf: now,
            jti: random_id().into(),
            client_id: "c".into(),
            scope: "read".into(),
            api_key_id: None,
        };
        let token = ring.active().sign_jwt(&claims).unwrap();
        let verified = VerifiedTokens::default();
        assert!(verified.verify(&ring, &policy, &token, now).is_some());
        // Remembered: still valid within its window, not before or after it.
        assert_eq!(verified.0.len().0, 1);
        assert!(verified.verify(&ring, &policy, &token, now + 59).is_some());
        assert!(verified.verify(&ring, &policy, &token, now + 60).is_none());
        assert!(verified.verify(&ring, &policy, &token, now - 1).is_none());
        // A key ring without its key: verified again, and refused.
        assert!(verified.verify(&other_ring, &policy, &token, now).is_none());
        // Another token's bytes are never taken for it.
        let mut forged = token.clone();
        forged.pop();
        assert!(verified.verify(&ring, &policy, &forged, now).is_none());
    }
}
