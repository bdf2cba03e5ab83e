//! Tollgate's access tokens (RFC 9068): their claims, and verifying our own.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::crypto::signer::KeyRing;
use crate::oauth::TokenPolicy;

/// RFC 7519 `aud`: one string, or an array when there are several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Self::One(list.remove(0))
        } else {
            Self::Many(list)
        }
    }

    pub fn contains(&self, value: &str) -> bool {
        match self {
            Self::One(one) => one == value,
            Self::Many(many) => many.iter().any(|a| a == value),
        }
    }
}

/// The claims of a Tollgate access token (RFC 9068 §2.2), as read from a token.
pub type AccessTokenClaims = TokenClaims<'static>;

/// The claims of a Tollgate access token (RFC 9068 §2.2). Issuing borrows what the client,
/// key and policy already hold (no copies on the token endpoint); a token read back owns
/// its claims ([`AccessTokenClaims`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenClaims<'a> {
    pub iss: Cow<'a, str>,
    pub sub: Cow<'a, str>,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: Cow<'a, str>,
    pub client_id: Cow<'a, str>,
    pub scope: Cow<'a, str>,
    /// Set on tokens obtained by exchanging an API key (RFC 8693): the key they stand for,
    /// so that revoking the key ends them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Cow<'a, str>>,
}

impl TokenClaims<'_> {
    /// Whether the space-separated `scope` claim holds `wanted`.
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }
}

/// Why one of our own tokens was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was not signed by a key of this server")]
    UnknownKey,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token is not meant for this audience")]
    WrongAudience,
}

/// Verifies a token this server issued: signature with a published key, `typ`, `iss`,
/// `exp`/`nbf` (required), and `aud` when given.
pub fn verify(
    keys: &KeyRing,
    policy: &TokenPolicy,
    token: &str,
    audience: Option<&str>,
    now: i64,
) -> Result<AccessTokenClaims, TokenRejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
    if !header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return Err(TokenRejection::WrongType);
    }
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood, and we understand
    // none (an empty list is invalid too).
    if header.crit.is_some() {
        return Err(TokenRejection::Invalid(
            "the token has critical header extensions (crit) this server does not understand"
                .into(),
        ));
    }
    let kid = header.kid.as_deref().ok_or(TokenRejection::UnknownKey)?;
    let key = keys.verifying_key(kid).ok_or(TokenRejection::UnknownKey)?;
    if header.alg != key.algorithm.jwt_algorithm() {
        return Err(TokenRejection::Invalid(
            "algorithm does not match the key".into(),
        ));
    }
    let mut validation = jsonwebtoken::Validation::new(key.algorithm.jwt_algorithm());
    validation.set_issuer(&[&policy.issuer]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "sub", "aud"]);
    // Time is checked below against `now`, the application's clock, and only there:
    // jsonwebtoken would read the system clock. The claims are integers in our struct, so a
    // string-typed `exp`/`nbf` fails to decode rather than skipping the check.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key.key, &validation)
        // The library's message may quote the token's content: keep it in the RFC 6750
        // character set, since it reaches `error_description` and the challenge.
        .map_err(|e| TokenRejection::Invalid(crate::oauth::error::rfc_text(&e.to_string())))?;
    let claims = data.claims;
    if claims.exp <= now || claims.nbf > now {
        return Err(TokenRejection::Invalid(
            "the token is expired or not yet valid".into(),
        ));
    }
    if let Some(audience) = audience
        && !claims.aud.contains(audience)
    {
        return Err(TokenRejection::WrongAudience);
    }
    Ok(claims)
}

/// A key ring and a policy for unit tests of token handling.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use crate::crypto::signer::{KeyRing, SigningAlgorithm, SigningKey};
    use crate::oauth::TokenPolicy;

    pub(crate) fn ring() -> KeyRing {
        tollgate_verify::jwt_provider::install();
        let (key, _) = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        let jwk = key.public_jwk().clone();
        KeyRing::new(Arc::new(key), &[jwk], vec![])
    }

    pub(crate) fn policy() -> TokenPolicy {
        TokenPolicy {
            issuer: "https://auth.example".into(),
            default_audience: "https://api.example".into(),
            default_ttl: 60,
            max_ttl: 600,
            admin_audience: "https://auth.example/admin".into(),
            exchange_ttl: 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::secrets::random_id;

    pub(crate) use super::test_support::{policy, ring};

    fn token(ring: &KeyRing, edit: impl FnOnce(&mut AccessTokenClaims)) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = AccessTokenClaims {
            iss: "https://auth.example".into(),
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
        edit(&mut claims);
        ring.active().sign_jwt(&claims).unwrap()
    }

    #[test]
    fn own_tokens_verify_only_when_valid_now_from_us_and_for_the_audience() {
        let (ring, policy) = (ring(), policy());
        let now = chrono::Utc::now().timestamp();
        let check = |t: &str, aud: Option<&str>| verify(&ring, &policy, t, aud, now);
        let claims = check(&token(&ring, |_| {}), Some("https://api.example")).unwrap();
        assert_eq!(claims.client_id, "c");
        assert!(claims.has_scope("read") && !claims.has_scope("rea"));
        assert!(matches!(
            check(&token(&ring, |c| c.nbf = now + 120), None),
            Err(TokenRejection::Invalid(_))
        ));
        assert!(matches!(
            check(&token(&ring, |c| c.exp = now - 1), None),
            Err(TokenRejection::Invalid(_))
        ));
        assert!(matches!(
            check(
                &token(&ring, |c| c.iss = "https://evil.example".into()),
                None
            ),
            Err(TokenRejection::Invalid(_))
        ));
        assert_eq!(
            check(&token(&ring, |_| {}), Some("https://other.example")).err(),
            Some(TokenRejection::WrongAudience)
        );
        assert_eq!(
            check(&token(&super::tests::ring(), |_| {}), None).err(),
            Some(TokenRejection::UnknownKey)
        );
        assert_eq!(
            check("not a jwt", None).err(),
            Some(TokenRejection::Malformed)
        );
    }

    #[test]
    fn time_comes_from_our_clock_and_string_times_are_refused() {
        let (ring, policy) = (ring(), policy());
        let now = chrono::Utc::now().timestamp();
        let token = token(&ring, |_| {});
        // An hour from now (the application's clock moved), the token has expired.
        assert!(matches!(
            verify(&ring, &policy, &token, None, now + 3600),
            Err(TokenRejection::Invalid(_))
        ));
        // CVE-2026-25537: a string `exp` must not skip the time check.
        let claims = serde_json::json!({
            "iss": "https://auth.example", "sub": "c", "aud": "https://api.example",
            "exp": "99999999999", "iat": now, "nbf": now, "jti": "j", "client_id": "c",
            "scope": "read",
        });
        let forged = ring.active().sign_jwt(&claims).unwrap();
        assert!(matches!(
            verify(&ring, &policy, &forged, None, now),
            Err(TokenRejection::Invalid(_))
        ));
    }
}
