//! JWKS (RFC 7517) and authorization server metadata (RFC 8414).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::error::ApiError;
use crate::crypto::signer::SigningAlgorithm;
use crate::db;
use crate::oauth::{ClientAuthMethod, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, Scope};
use crate::service::accounts::RESERVED_SCOPES;
use crate::startup::AppState;

/// `GET /.well-known/jwks.json`: every published public key (next, active, retired),
/// pre-rendered. The cache lifetime follows the rotation schedule (`Settings::jwks_max_age`);
/// resource servers also refetch when they meet an unknown `kid`.
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
pub async fn get_metadata(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let scope_lists = state
        .db
        .run(|conn| db::clients::enabled_scope_lists(conn).map_err(db::DbError::from))
        .await?;
    let mut scopes: Vec<String> = Vec::new();
    for list in &scope_lists {
        for token in Scope::parse(list).unwrap_or_default().tokens() {
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
    let body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{}", super::TOKEN_PATH),
        "jwks_uri": format!("{issuer}{}", super::JWKS_PATH),
        "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
        // No authorization endpoint: no response types (RFC 8414 §2 still wants the member).
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint": format!("{issuer}{}", super::REVOKE_PATH),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": format!("{issuer}{}", super::INTROSPECT_PATH),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": scopes,
        "access_token_signing_alg_values_supported": algorithms,
    });
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        ))
        .json(body))
}
