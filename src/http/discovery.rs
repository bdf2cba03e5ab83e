//! JWKS (RFC 7517) and authorization server metadata (RFC 8414).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::error::HttpError;
use crate::app::AppState;
use crate::crypto::signer::SigningAlgorithm;
use crate::db;
use crate::domain::GrantType;
use crate::oauth::{ClientAuthMethod, RESERVED_SCOPES};

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
    let mut body = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{}", super::TOKEN_PATH),
        "jwks_uri": format!("{issuer}{}", super::JWKS_PATH),
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
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
    let max_age = if scope_lists.is_some() {
        "public, max-age=60"
    } else {
        if let Some(members) = body.as_object_mut() {
            members.remove("scopes_supported");
        }
        "public, max-age=5"
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static(max_age)))
        .json(body))
}
