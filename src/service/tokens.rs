//! Issuing access tokens (RFC 6749 §4.4, RFC 9068) and verifying our own.

use serde::{Deserialize, Serialize};

use super::accounts::{self, UsageTracker};
use super::{TokenPolicy, split_list};
use crate::crypto::secrets::{ApiKeySecret, SecretDigest, random_id};
use crate::crypto::signer::KeyRing;
use crate::db::models::{ClientRow, NewRevokedToken};
use crate::db::{self, DbConn};
use crate::oauth::{
    ClientCredentials, ErrorCode, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, Grant,
    IntrospectionCaller, IntrospectionRequest, OAuthError, RevocationRequest, Scope,
    TOKEN_TYPE_ACCESS_TOKEN, TokenRequest,
};

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "admin";

/// RFC 7519 `aud`: one string, or an array when there are several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn from_list(mut list: Vec<String>) -> Self {
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

/// The claims of a Tollgate access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// Set on tokens obtained by exchanging an API key (RFC 8693): the key they stand for,
    /// so that revoking the key ends them too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
}

/// A successful token response (RFC 6749 §5.1; RFC 8693 §2.2.1 adds `issued_token_type`).
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// Compared against when the client id is unknown, so that an unknown id and a wrong
/// secret take the same time.
const DUMMY_DIGEST: [u8; 32] = [0x5a; 32];

/// Checks the presented secret against the stored digest(s). One indexed read.
pub fn authenticate_client(
    conn: &mut DbConn,
    credentials: &ClientCredentials,
    now: i64,
) -> Result<ClientRow, OAuthError> {
    let row = db::clients::find(conn, &credentials.client_id)?;
    check_client_secret(row.as_ref(), credentials, now)?;
    row.ok_or_else(bad_credentials)
}

/// Compares the presented secret with the row's current and (within its grace period)
/// previous digest, in constant time, and refuses disabled clients.
pub fn check_client_secret(
    row: Option<&ClientRow>,
    credentials: &ClientCredentials,
    now: i64,
) -> Result<(), OAuthError> {
    let presented: SecretDigest = credentials.secret.digest();
    let Some(row) = row else {
        let _ = presented.matches(&DUMMY_DIGEST);
        return Err(bad_credentials());
    };
    let current = presented.matches(&row.secret_digest);
    let previous = match (&row.previous_secret_digest, row.previous_secret_expires_at) {
        (Some(digest), Some(until)) if now < until => presented.matches(digest),
        _ => presented.matches(&DUMMY_DIGEST),
    };
    if !(current | previous) {
        return Err(bad_credentials());
    }
    if row.disabled_at.is_some() {
        return Err(OAuthError::invalid_client("the client is disabled"));
    }
    Ok(())
}

fn bad_credentials() -> OAuthError {
    // Same answer for an unknown id and a wrong secret: no client enumeration.
    OAuthError::invalid_client("client authentication failed")
}

/// Handles a parsed token request end to end: authenticate, authorize, sign.
pub fn issue(
    conn: &mut DbConn,
    keys: &KeyRing,
    policy: &TokenPolicy,
    usage: &UsageTracker,
    request: &TokenRequest,
    now: i64,
) -> Result<IssuedToken, OAuthError> {
    let client = match &request.credentials {
        Some(credentials) => Some(authenticate_client(conn, credentials, now)?),
        None => None,
    };
    match &request.grant {
        Grant::ClientCredentials { scope, audiences } => {
            let client = client
                .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
            require_grant(&client, GRANT_CLIENT_CREDENTIALS)?;
            let scope = grant_scope(&client, scope.as_ref())?;
            let audience = grant_audience(&client, policy, audiences)?;
            let ttl = policy.ttl_for(client.token_ttl);
            let claims = AccessTokenClaims {
                iss: policy.issuer.clone(),
                sub: client.id.clone(),
                aud: audience,
                exp: now + ttl,
                iat: issued_at(client.tokens_not_before, now),
                nbf: now,
                jti: random_id(),
                client_id: client.id,
                scope: scope.to_string(),
                api_key_id: None,
            };
            sign(keys, claims, ttl, None)
        }
        Grant::TokenExchange {
            subject_token,
            scope,
            audiences,
        } => {
            if let Some(client) = &client {
                require_grant(client, GRANT_TOKEN_EXCHANGE)?;
            }
            // RFC 8693 §2.2.2: an unusable subject token is `invalid_request`; the reason is
            // not told (a disabled account would reveal a valid key).
            let (key, account) = accounts::authenticate_key(conn, usage, &subject_token.0, now)?
                .map_err(|_| {
                    OAuthError::invalid_request("the subject_token is not a valid, active API key")
                })?;
            // The key's scopes, still within the account's (which may have shrunk since).
            let account_scopes = Scope::parse(&account.scopes).unwrap_or_default();
            let key_scopes = Scope::from_tokens(
                Scope::parse(&key.scopes)
                    .unwrap_or_default()
                    .tokens()
                    .iter()
                    .filter(|t| account_scopes.contains(t)),
            )
            .unwrap_or_default();
            let scope = narrow_scope(&key_scopes, scope.as_ref(), "the API key")?;
            let audience = match &client {
                Some(client) => grant_audience(client, policy, audiences)?,
                None => default_audience_only(policy, audiences)?,
            };
            let ttl = key
                .expires_at
                .map_or(policy.exchange_ttl, |expires| {
                    policy.exchange_ttl.min(expires - now)
                })
                .max(1);
            let claims = AccessTokenClaims {
                iss: policy.issuer.clone(),
                sub: account.id.clone(),
                aud: audience,
                exp: now + ttl,
                iat: client
                    .as_ref()
                    .map_or(now, |c| issued_at(c.tokens_not_before, now)),
                nbf: now,
                jti: random_id(),
                client_id: client.map_or_else(|| key.id.clone(), |c| c.id),
                scope: scope.to_string(),
                api_key_id: Some(key.id),
            };
            sign(keys, claims, ttl, Some(TOKEN_TYPE_ACCESS_TOKEN))
        }
    }
}

fn require_grant(client: &ClientRow, grant_type: &str) -> Result<(), OAuthError> {
    if split_list(&client.grant_types)
        .iter()
        .any(|g| g == grant_type)
    {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client may not use the {grant_type} grant"),
        ))
    }
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

/// A bulk revocation at second `T` sets `tokens_not_before = T + 1`: tokens issued earlier
/// in that second are revoked, and tokens issued after it (still in second `T`) carry
/// `iat = T + 1` so they are not. `iat` is then ahead of the clock by under a second.
fn issued_at(tokens_not_before: Option<i64>, now: i64) -> i64 {
    tokens_not_before.map_or(now, |not_before| not_before.max(now))
}

/// Whether an admin token (already verified, with the admin scope and audience) still
/// speaks for an operator: its client exists, is enabled, still holds the `admin` scope (so
/// taking the scope away ends its tokens), has not revoked it in bulk, and the token is not
/// one exchanged for an API key.
pub fn operator_token_holds(client: &ClientRow, claims: &AccessTokenClaims) -> bool {
    client.disabled_at.is_none()
        && claims.api_key_id.is_none()
        && Scope::parse(&client.scopes)
            .unwrap_or_default()
            .contains(ADMIN_SCOPE)
        && survives_bulk_revocation(claims.iat, client.tokens_not_before)
}

/// Whether a token issued at `iat` survived the client's bulk revocations.
pub fn survives_bulk_revocation(iat: i64, tokens_not_before: Option<i64>) -> bool {
    tokens_not_before.is_none_or(|not_before| iat >= not_before)
}

fn sign(
    keys: &KeyRing,
    claims: AccessTokenClaims,
    ttl: i64,
    issued_token_type: Option<&'static str>,
) -> Result<IssuedToken, OAuthError> {
    let access_token = keys.active().sign_jwt(&claims).map_err(|err| {
        tracing::error!(error = %err, "token signing failed");
        OAuthError::new(ErrorCode::ServerError, "internal server error")
    })?;
    Ok(IssuedToken {
        access_token,
        issued_token_type,
        token_type: "Bearer",
        expires_in: ttl,
        scope: claims.scope,
    })
}

/// RFC 6749 §3.3: the requested scopes if all are allowed, the client's scopes if none
/// were requested, `invalid_scope` otherwise.
fn grant_scope(client: &ClientRow, requested: Option<&Scope>) -> Result<Scope, OAuthError> {
    narrow_scope(
        &Scope::parse(&client.scopes).unwrap_or_default(),
        requested,
        "the client",
    )
}

fn narrow_scope(
    allowed: &Scope,
    requested: Option<&Scope>,
    who: &str,
) -> Result<Scope, OAuthError> {
    match requested {
        None => Ok(allowed.clone()),
        Some(requested) if requested.is_subset_of(allowed) => Ok(requested.clone()),
        Some(requested) => Err(OAuthError::invalid_scope(format!(
            "{who} may not request: {}",
            requested.not_in(allowed).collect::<Vec<_>>().join(" ")
        ))),
    }
}

/// RFC 8707: every requested audience must be allowed to the client. With none requested,
/// the client's first allowed audience, or the server default for a client without any.
fn grant_audience(
    client: &ClientRow,
    policy: &TokenPolicy,
    requested: &[String],
) -> Result<Audience, OAuthError> {
    let mut allowed = split_list(&client.audiences);
    let configured = !allowed.is_empty();
    if !configured {
        allowed.push(policy.default_audience.clone());
    }
    // Operators' clients may also ask for the admin API's own audience, which no other
    // token carries, so a token sent to a resource server cannot be replayed on /admin.
    let operator = Scope::parse(&client.scopes)
        .unwrap_or_default()
        .contains(ADMIN_SCOPE);
    if operator {
        let position = if configured { allowed.len() } else { 0 };
        allowed.insert(position, policy.admin_audience.clone());
    }
    if requested.is_empty() {
        return Ok(Audience::One(allowed.swap_remove(0)));
    }
    if let Some(denied) = requested.iter().find(|r| !allowed.contains(r)) {
        return Err(OAuthError::invalid_target(format!(
            "the client may not request a token for {denied:?}"
        )));
    }
    Ok(Audience::from_list(requested.to_vec()))
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
pub fn verify_access_token(
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
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key.key, &validation)
        .map_err(|e| TokenRejection::Invalid(e.to_string()))?;
    let claims = data.claims;
    // jsonwebtoken checks against the system clock; also check our `now` (tests and
    // callers that pass time explicitly).
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

/// RFC 7009 §2: revokes `token` if it is a valid token of this server issued to the
/// authenticated client. Anything else (expired, malformed, foreign) changes nothing and
/// is not an error (§2.2).
pub fn revoke(
    conn: &mut DbConn,
    keys: &KeyRing,
    policy: &TokenPolicy,
    request: &RevocationRequest,
    now: i64,
) -> Result<(), OAuthError> {
    let client = authenticate_client(conn, &request.credentials, now)?;
    let Ok(claims) = verify_access_token(keys, policy, &request.token, None, now) else {
        return Ok(());
    };
    if claims.client_id != client.id {
        return Ok(());
    }
    db::revocations::insert(
        conn,
        &NewRevokedToken {
            jti: &claims.jti,
            client_id: &claims.client_id,
            expires_at: claims.exp,
            revoked_at: now,
        },
    )?;
    Ok(())
}

/// RFC 7662 §2.2: the introspection answer. Inactive tokens say nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub token: Option<ActiveToken>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self {
            active: false,
            token: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
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
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: claims.sub,
            aud: Some(claims.aud),
            iss: claims.iss,
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            jti: Some(claims.jti),
            token_type: "Bearer",
            username: None,
        }
    }
}

/// RFC 7662 for an API key: active while it is neither revoked nor expired and its
/// account is enabled; `sub` is the account, `token_type` says it is an API key.
fn introspect_api_key(
    conn: &mut DbConn,
    usage: &UsageTracker,
    policy: &TokenPolicy,
    token: &str,
    now: i64,
) -> Result<Introspection, IntrospectionError> {
    let found = accounts::authenticate_key(conn, usage, token, now)
        .map_err(|e| IntrospectionError::Server(e.into()))?;
    let Ok((key, account)) = found else {
        return Ok(Introspection::inactive());
    };
    Ok(Introspection {
        active: true,
        token: Some(ActiveToken {
            scope: key.scopes,
            client_id: None,
            sub: account.id,
            aud: None,
            iss: policy.issuer.clone(),
            exp: key.expires_at,
            iat: Some(key.created_at),
            nbf: None,
            jti: Some(key.id),
            token_type: API_KEY_TOKEN_TYPE_NAME,
            username: Some(account.handle),
        }),
    })
}

/// `token_type` of an API key in introspection answers.
pub const API_KEY_TOKEN_TYPE_NAME: &str = "api_key";

/// The scope a client needs to call the introspection endpoint.
pub const INTROSPECT_SCOPE: &str = "introspect";

/// Why an introspection caller was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerRejection {
    /// Bad client credentials (401, `invalid_client`).
    InvalidClient(String),
    /// The client may not introspect (403).
    NotAllowed,
    /// A bearer caller's token is not a valid admin token (401, `invalid_token`).
    InvalidToken(String),
    /// A bearer caller's token lacks the admin scope (403, `insufficient_scope`).
    InsufficientScope,
}

#[derive(Debug)]
pub enum IntrospectionError {
    Caller(CallerRejection),
    Server(OAuthError),
}

impl From<OAuthError> for IntrospectionError {
    fn from(err: OAuthError) -> Self {
        Self::Server(err)
    }
}

impl From<diesel::result::Error> for IntrospectionError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Server(err.into())
    }
}

/// RFC 7662: authenticates the caller and answers for the token, with one database query
/// (the caller's client, the token's client, and both revocation lists) and no write.
pub fn introspect(
    conn: &mut DbConn,
    keys: &KeyRing,
    policy: &TokenPolicy,
    usage: &UsageTracker,
    request: &IntrospectionRequest,
    now: i64,
) -> Result<Introspection, IntrospectionError> {
    let subject = verify_access_token(keys, policy, &request.token, None, now).ok();
    let (caller_id, caller_bearer) = match &request.caller {
        IntrospectionCaller::Client(credentials) => (credentials.client_id.clone(), None),
        IntrospectionCaller::Bearer(token) => {
            let claims =
                verify_access_token(keys, policy, token, Some(&policy.admin_audience), now)
                    .map_err(|e| {
                        IntrospectionError::Caller(CallerRejection::InvalidToken(e.to_string()))
                    })?;
            if !Scope::parse(&claims.scope)
                .unwrap_or_default()
                .contains(ADMIN_SCOPE)
            {
                return Err(IntrospectionError::Caller(
                    CallerRejection::InsufficientScope,
                ));
            }
            (claims.client_id.clone(), Some(claims))
        }
    };
    let rows = db::revocations::introspection_rows(
        conn,
        &caller_id,
        caller_bearer.as_ref().map_or("", |c| c.jti.as_str()),
        subject.as_ref().map_or("", |c| c.client_id.as_str()),
        subject.as_ref().map_or("", |c| c.jti.as_str()),
    )?;
    match (&request.caller, &caller_bearer) {
        (IntrospectionCaller::Client(credentials), _) => {
            check_client_secret(rows.as_ref().map(|r| &r.caller), credentials, now).map_err(
                |e| {
                    IntrospectionError::Caller(CallerRejection::InvalidClient(
                        e.description.into_owned(),
                    ))
                },
            )?;
            let allowed = rows.as_ref().is_some_and(|r| {
                Scope::parse(&r.caller.scopes)
                    .unwrap_or_default()
                    .contains(INTROSPECT_SCOPE)
            });
            if !allowed {
                return Err(IntrospectionError::Caller(CallerRejection::NotAllowed));
            }
        }
        (IntrospectionCaller::Bearer(_), Some(claims)) => {
            let valid = rows.as_ref().is_some_and(|r| {
                !r.caller_token_revoked && operator_token_holds(&r.caller, claims)
            });
            if !valid {
                return Err(IntrospectionError::Caller(CallerRejection::InvalidToken(
                    "the token was revoked or its client is disabled".into(),
                )));
            }
        }
        (IntrospectionCaller::Bearer(_), None) => {
            return Err(IntrospectionError::Caller(CallerRejection::InvalidToken(
                "invalid token".into(),
            )));
        }
    }
    if ApiKeySecret::looks_like_api_key(&request.token) {
        return introspect_api_key(conn, usage, policy, &request.token, now);
    }
    let (Some(claims), Some(rows)) = (subject, rows) else {
        return Ok(Introspection::inactive());
    };
    let client_ok = |rows: &db::revocations::IntrospectionRows| match rows.subject {
        Some((disabled_at, not_before)) => {
            disabled_at.is_none() && survives_bulk_revocation(claims.iat, not_before)
        }
        None => false,
    };
    let active = !rows.subject_token_revoked
        && match &claims.api_key_id {
            // A token exchanged for an API key lives only while the key does (and, when a
            // client asked for it, while that client does).
            Some(key_id) => {
                let key_ok = matches!(
                    db::accounts::key_by_id(conn, key_id)?,
                    Some((key, account)) if key.revoked_at.is_none()
                        && key.expires_at.is_none_or(|t| t > now)
                        && account.disabled_at.is_none()
                );
                key_ok && (claims.client_id == *key_id || client_ok(&rows))
            }
            None => client_ok(&rows),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crypto::signer::{SigningAlgorithm, SigningKey};

    fn ring() -> KeyRing {
        tollgate_verify::jwt_provider::install();
        let (key, _) =
            SigningKey::generate(SigningAlgorithm::ES256).unwrap_or_else(|e| panic!("{e}"));
        let jwk = key.public_jwk().clone();
        KeyRing::new(Arc::new(key), &[jwk], vec![])
    }

    fn policy() -> TokenPolicy {
        TokenPolicy {
            issuer: "https://auth.example".into(),
            default_audience: "https://api.example".into(),
            default_ttl: 60,
            max_ttl: 600,
            admin_audience: "https://auth.example".into(),
            exchange_ttl: 60,
        }
    }

    fn token(ring: &KeyRing, edit: impl FnOnce(&mut AccessTokenClaims)) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = AccessTokenClaims {
            iss: "https://auth.example".into(),
            sub: "c".into(),
            aud: Audience::One("https://api.example".into()),
            exp: now + 60,
            iat: now,
            nbf: now,
            jti: random_id(),
            client_id: "c".into(),
            scope: "read".into(),
            api_key_id: None,
        };
        edit(&mut claims);
        ring.active()
            .sign_jwt(&claims)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn own_tokens_verify_only_when_valid_now_from_us_and_for_the_audience() {
        let (ring, policy) = (ring(), policy());
        let now = chrono::Utc::now().timestamp();
        let check = |t: &str, aud: Option<&str>| verify_access_token(&ring, &policy, t, aud, now);
        assert!(check(&token(&ring, |_| {}), Some("https://api.example")).is_ok());
        assert!(
            check(&token(&ring, |c| c.nbf = now + 120), None).is_err(),
            "not yet valid"
        );
        assert!(
            check(&token(&ring, |c| c.exp = now - 1), None).is_err(),
            "expired"
        );
        assert!(
            check(
                &token(&ring, |c| c.iss = "https://evil.example".into()),
                None
            )
            .is_err()
        );
        assert_eq!(
            check(&token(&ring, |_| {}), Some("https://other.example")).err(),
            Some(TokenRejection::WrongAudience)
        );
        let other = super::tests::ring();
        assert_eq!(
            check(&token(&other, |_| {}), None).err(),
            Some(TokenRejection::UnknownKey)
        );
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
}
