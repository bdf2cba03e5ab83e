//! `/admin/clients`: OAuth clients.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::{Admin, private_json};
use crate::app::AppState;
use crate::http::error::HttpError;
use crate::http::extract::{ScopeInput, json_body};
use crate::service::clients::{self, ClientSpec, ClientUpdate};
use crate::service::with_secret_once;

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
    .service(
        web::resource("/clients/{id}/rotate-secret").route(web::post().to(post_rotate_secret)),
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateClientBody {
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
struct UpdateClientBody {
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
struct RotateSecretBody {
    #[serde(default)]
    grace_seconds: i64,
}

async fn post_client(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateClientBody>,
) -> Result<HttpResponse, HttpError> {
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
    let (actor, now) = (admin.actor(), state.now());
    let (view, secret) = state
        .db
        .run(move |conn| clients::create(conn, &actor, &spec, now))
        .await?;
    Ok(private_json(
        StatusCode::CREATED,
        with_secret_once(&view, "client_secret", secret.expose()),
    ))
}

async fn list_clients(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let list = state.db.run(move |conn| clients::list(conn, now)).await?;
    Ok(private_json(StatusCode::OK, json!({ "clients": list })))
}

async fn get_client(
    _admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let client = state
        .db
        .run(move |conn| clients::get(conn, &id, now))
        .await?;
    Ok(private_json(StatusCode::OK, client))
}

async fn patch_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateClientBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let update = ClientUpdate {
        name: body.name,
        scopes: body.scopes.as_ref().map(ScopeInput::parse).transpose()?,
        audiences: body.audiences,
        token_ttl: body.token_ttl,
        grant_types: body.grant_types,
    };
    let (actor, now) = (admin.actor(), state.now());
    let client = state
        .db
        .run(move |conn| clients::update(conn, &actor, &id, &update, now))
        .await?;
    Ok(private_json(StatusCode::OK, client))
}

async fn set_disabled(
    admin: Admin,
    state: web::Data<AppState>,
    id: String,
    disabled: bool,
) -> Result<HttpResponse, HttpError> {
    let (actor, now) = (admin.actor(), state.now());
    let client = state
        .db
        .run(move |conn| clients::set_disabled(conn, &actor, &id, disabled, now))
        .await?;
    Ok(private_json(StatusCode::OK, client))
}

async fn post_disable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    set_disabled(admin, state, id.into_inner(), true).await
}

async fn post_enable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    set_disabled(admin, state, id.into_inner(), false).await
}

async fn post_revoke_tokens(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let (actor, now) = (admin.actor(), state.now());
    let client = state
        .db
        .run(move |conn| clients::revoke_tokens(conn, &actor, &id, now))
        .await?;
    Ok(private_json(StatusCode::OK, client))
}

async fn delete_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let (actor, now) = (admin.actor(), state.now());
    state
        .db
        .run(move |conn| clients::delete(conn, &actor, &id, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn post_rotate_secret(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    // No body means no grace; a body that does not parse is an error, not a silent 0
    // (which would cut off every holder of the old secret at once).
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        0
    } else {
        json_body::<RotateSecretBody>(&body)?.grace_seconds
    };
    let (actor, now) = (admin.actor(), state.now());
    let (view, secret) = state
        .db
        .run(move |conn| clients::rotate_secret(conn, &actor, &id, grace, now))
        .await?;
    Ok(private_json(
        StatusCode::OK,
        with_secret_once(&view, "client_secret", secret.expose()),
    ))
}
