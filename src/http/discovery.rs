//! JWKS (RFC 7517) and authorization server metadata (RFC 8414).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::error::HttpError;
use super::openapi::ServerErrors;
use crate::app::AppState;
use crate::crypto::signer::SigningAlgorithm;
use crate::db;
use crate::domain::GrantType;
use crate::oauth::{ClientAuthMethod, RESERVED_SCOPES};

// Describes what `crypto::signer::KeyRing` renders, for the OpenAPI document.
/// RFC 7517 §5 JWK Set.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes the pre-rendered JWKS for the OpenAPI document"
)]
pub struct Jwks {
    /// Every published key: the next one, the active one and the retired ones.
    keys: Vec<Jwk>,
}

/// A public signing key (RFC 7517 §4; members by key type per RFC 7518 §6 and RFC 8037).
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "describes the pre-rendered JWKS for the OpenAPI document"
)]
struct Jwk {
    /// `EC` (ES256), `OKP` (EdDSA) or `RSA` (RS256).
    kty: String,
    /// The RFC 7638 thumbprint of the public key.
    kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    alg: String,
    /// Always `sig`.
    #[schema(rename = "use")]
    use_: String,
    /// `P-256` (EC) or `Ed25519` (OKP).
    crv: Option<String>,
    x: Option<String>,
    /// EC only.
    y: Option<String>,
    /// RSA only: the modulus.
    n: Option<String>,
    /// RSA only: the exponent.
    e: Option<String>,
}

/// RFC 8414 §2: the authorization server metadata Tollgate publishes.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Metadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub grant_types_supported: Vec<&'static str>,
    /// Empty: there is no authorization endpoint (RFC 8414 §2 still wants the member).
    pub response_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The scopes of enabled clients (the operator scopes excepted). RECOMMENDED only:
    /// absent while the database cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    pub access_token_signing_alg_values_supported: Vec<&'static str>,
}

/// `GET /.well-known/jwks.json`: every published public key (next, active, retired),
/// pre-rendered. The cache lifetime follows the rotation schedule (`Settings::jwks_max_age`);
/// resource servers also refetch when they meet an unknown `kid`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    summary = "The signing keys (JWKS)",
    responses(
        (status = 200, description = "RFC 7517 §5: the public keys that verify access tokens.",
            body = Jwks,
            headers(("Cache-Control" = String, description = "`public, max-age=…`, following the key rotation schedule"))),
    ),
)]
pub async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.settings.jwks_max_age()),
        ))
        .content_type("application/json")
        .body(state.keys.current().jwks_json().to_string())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3.2).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "discovery",
    summary = "Authorization server metadata",
    responses(
        (status = 200, description = "RFC 8414 §3.2.", body = Metadata,
            headers(("Cache-Control" = String, description = "`public, max-age=60`; `max-age=5` without `scopes_supported`"))),
        ServerErrors,
    ),
)]
pub async fn get_metadata(state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let scope_lists = match state.db.run(db::clients::enabled_scopes).await {
        Ok(lists) => Some(lists),
        // Everything but `scopes_supported` (RECOMMENDED only) is known without the
        // database: answer with the rest, briefly cacheable, rather than 503.
        Err(err) if err.is_unavailable() => None,
        Err(err) => return Err(err.into()),
    };
    let mut scopes: Vec<String> = Vec::new();
    for list in scope_lists.iter().flatten() {
        for token in list.tokens() {
            // Operator scopes are nobody else's business.
            if !scopes.contains(token) && !RESERVED_SCOPES.contains(&token.as_str()) {
                scopes.push(token.clone());
            }
        }
    }
    scopes.sort();
    let issuer = &state.policy.issuer;
    let algorithms: Vec<&str> = SigningAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    let auth_methods = [
        ClientAuthMethod::ClientSecretBasic.as_str(),
        ClientAuthMethod::ClientSecretPost.as_str(),
    ];
    let available = scope_lists.is_some();
    let body = Metadata {
        issuer: issuer.clone(),
        token_endpoint: format!("{issuer}{}", super::TOKEN_PATH),
        jwks_uri: format!("{issuer}{}", super::JWKS_PATH),
        grant_types_supported: GrantType::ALL.map(GrantType::as_str).to_vec(),
        response_types_supported: Vec::new(),
        token_endpoint_auth_methods_supported: auth_methods.to_vec(),
        revocation_endpoint: format!("{issuer}{}", super::REVOKE_PATH),
        revocation_endpoint_auth_methods_supported: auth_methods.to_vec(),
        introspection_endpoint: format!("{issuer}{}", super::INTROSPECT_PATH),
        introspection_endpoint_auth_methods_supported: auth_methods.to_vec(),
        scopes_supported: available.then_some(scopes),
        access_token_signing_alg_values_supported: algorithms,
    };
    let max_age = if available {
        "public, max-age=60"
    } else {
        "public, max-age=5"
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static(max_age)))
        .json(body))
}
