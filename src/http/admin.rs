//! Admin API: `/admin/clients` and `/admin/keys`, protected by Tollgate's own access tokens
//! carrying the `admin` scope (RFC 6750 bearer).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::error::{ApiError, BearerError};
use super::extract::header_str;
use crate::db;
use crate::oauth::Scope;
use crate::service::audit::Actor;
use crate::service::clients::{ClientSpec, ClientUpdate, ClientView};
use crate::service::keys::KeyServiceError;
use crate::service::tokens::AccessTokenClaims;
use crate::service::{self};
use crate::startup::{AppState, reload_keys_if_changed};

pub use crate::service::tokens::ADMIN_SCOPE;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/clients")
            .route(web::get().to(list_clients))
            .route(web::post().to(post_client)),
    )
    .service(
        web::resource("/clients/{id}")
            .route(web::get().to(get_client))
            .route(web::patch().to(patch_client))
            .route(web::delete().to(delete_client)),
    )
    .service(web::resource("/clients/{id}/disable").route(web::post().to(post_disable_client)))
    .service(web::resource("/clients/{id}/enable").route(web::post().to(post_enable_client)))
    .service(web::resource("/clients/{id}/revoke-tokens").route(web::post().to(post_revoke_tokens)))
    .service(web::resource("/clients/{id}/rotate-secret").route(web::post().to(post_rotate_secret)))
    .service(web::resource("/keys").route(web::get().to(list_keys)))
    .service(web::resource("/keys/rotate").route(web::post().to(post_rotate_key)))
    .configure(super::admin_accounts::routes);
}

/// An authenticated operator: a valid Tollgate access token with the `admin` scope, for
/// the admin audience, whose client still exists and is enabled.
pub struct Admin {
    pub claims: AccessTokenClaims,
}

impl Admin {
    /// The audit trail names the operator's client.
    pub fn actor(&self) -> Actor {
        Actor::admin(&self.claims.client_id)
    }
}

impl FromRequest for Admin {
    type Error = BearerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, BearerError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                BearerError::Unavailable(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal server error",
                ))
            })?;
            let token = token?;
            let now = state.now();
            let claims = service::tokens::verify_access_token(
                &state.keys.current(),
                &state.policy,
                &token,
                Some(&state.policy.admin_audience),
                now,
            )
            .map_err(|e| BearerError::InvalidToken(e.to_string()))?;
            if !Scope::parse(&claims.scope)
                .unwrap_or_default()
                .contains(ADMIN_SCOPE)
            {
                return Err(BearerError::InsufficientScope(ADMIN_SCOPE));
            }
            let (client_id, jti) = (claims.client_id.clone(), claims.jti.clone());
            let found = state
                .db
                .run(move |conn| {
                    db::revocations::client_and_revocation(conn, &client_id, &jti)
                        .map_err(db::DbError::from)
                })
                .await
                .map_err(|e| BearerError::Unavailable(e.into()))?;
            match found {
                Some((client, None)) if service::tokens::operator_token_holds(&client, &claims) => {
                    Ok(Admin { claims })
                }
                _ => Err(BearerError::InvalidToken(
                    "the token was revoked, or its client is disabled or deleted".into(),
                )),
            }
        })
    }
}

/// RFC 6750 §2.1: `Authorization: Bearer <token>`.
fn bearer_token(req: &HttpRequest) -> Result<String, BearerError> {
    let value = header_str(req, header::AUTHORIZATION).ok_or(BearerError::Missing)?;
    match value.trim().split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(BearerError::Missing),
    }
}

/// A scope list given as `"a b"` or `["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ScopeInput {
    Text(String),
    List(Vec<String>),
}

impl ScopeInput {
    pub fn parse(&self) -> Result<Scope, ApiError> {
        match self {
            Self::Text(text) => Scope::parse(text),
            Self::List(list) => Scope::from_tokens(list),
        }
        .map_err(|e| ApiError::bad_request(format!("invalid scopes: {}", e.0)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    name: String,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    token_ttl: Option<i64>,
    #[serde(default)]
    grant_types: Vec<String>,
}

/// `null` and absent differ: `"token_ttl": null` returns to the default lifetime.
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    token_ttl: Option<Option<i64>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    #[serde(default)]
    grace_seconds: i64,
}

fn with_secret(
    view: &ClientView,
    secret: &crate::crypto::secrets::ClientSecret,
) -> serde_json::Value {
    let mut body = serde_json::to_value(view).unwrap_or_else(|_| json!({}));
    if let Some(members) = body.as_object_mut() {
        members.insert("client_secret".into(), json!(secret.expose()));
    }
    body
}

/// Responses that carry a secret must never be cached.
fn secret_response(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

async fn post_client(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateClientBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let body = body.into_inner();
    let spec = ClientSpec {
        name: body.name,
        scopes: body
            .scopes
            .as_ref()
            .map(ScopeInput::parse)
            .transpose()?
            .unwrap_or_default(),
        audiences: body.audiences,
        token_ttl: body.token_ttl,
        grant_types: body.grant_types,
    };
    let now = state.now();
    let (view, secret) = state
        .db
        .run(move |conn| service::clients::create(conn, &actor, &spec, now))
        .await?;
    Ok(secret_response(
        StatusCode::CREATED,
        with_secret(&view, &secret),
    ))
}

async fn list_clients(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let clients = state
        .db
        .run(move |conn| service::clients::list(conn, now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "clients": clients })))
}

async fn get_client(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let client = state
        .db
        .run(move |conn| service::clients::get(conn, &id, now))
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

async fn patch_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateClientBody>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let body = body.into_inner();
    let update = ClientUpdate {
        name: body.name,
        scopes: body.scopes.as_ref().map(ScopeInput::parse).transpose()?,
        audiences: body.audiences,
        token_ttl: body.token_ttl,
        grant_types: body.grant_types,
    };
    let now = state.now();
    let client = state
        .db
        .run(move |conn| service::clients::update(conn, &actor, &id, &update, now))
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

async fn set_disabled(
    admin: Admin,
    state: web::Data<AppState>,
    id: String,
    disabled: bool,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let now = state.now();
    let client = state
        .db
        .run(move |conn| service::clients::set_disabled(conn, &actor, &id, disabled, now))
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

async fn post_disable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(admin, state, id.into_inner(), true).await
}

async fn post_enable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(admin, state, id.into_inner(), false).await
}

async fn post_revoke_tokens(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let now = state.now();
    let client = state
        .db
        .run(move |conn| service::clients::revoke_tokens(conn, &actor, &id, now))
        .await?;
    Ok(HttpResponse::Ok().json(client))
}

async fn delete_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (actor, now) = (admin.actor(), state.now());
    state
        .db
        .run(move |conn| service::clients::delete(conn, &actor, &id, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_rotate_secret(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    // No body means no grace; a body that does not parse is an error, not a silent 0
    // (which would cut off every holder of the old secret at once).
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        0
    } else {
        serde_json::from_slice::<RotateSecretBody>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
            .grace_seconds
    };
    let now = state.now();
    let (view, secret) = state
        .db
        .run(move |conn| service::clients::rotate_secret(conn, &actor, &id, grace, now))
        .await?;
    Ok(secret_response(StatusCode::OK, with_secret(&view, &secret)))
}

async fn list_keys(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| service::keys::list(conn, now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

async fn post_rotate_key(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (master, algorithm, grace, now) = (
        state.master_key.clone(),
        state.settings.signing_algorithm,
        state.policy.retired_key_grace(),
        state.now(),
    );
    let key = state
        .db
        .run(move |conn| service::keys::rotate(conn, &master, algorithm, grace, now))
        .await?;
    // This instance signs with the new key at once; others follow within a refresh interval.
    reload_keys_if_changed(&state)
        .await
        .map_err(|e: KeyServiceError| ApiError::from(e))?;
    Ok(HttpResponse::Created().json(key))
}
