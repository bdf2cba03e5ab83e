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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateClientBody {
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
pub(crate) struct UpdateClientBody {
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
pub(crate) struct RotateSecretBody {
    #[serde(default)]
    grace_seconds: i64,
}

pub(crate) async fn post_client(
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

pub(crate) async fn list_clients(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let list = state.db.run(move |conn| clients::list(conn, now)).await?;
    Ok(private_json(StatusCode::OK, json!({ "clients": list })))
}

pub(crate) async fn get_client(
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

pub(crate) async fn patch_client(
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

pub(crate) async fn post_disable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    set_disabled(admin, state, id.into_inner(), true).await
}

pub(crate) async fn post_enable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    set_disabled(admin, state, id.into_inner(), false).await
}

pub(crate) async fn post_revoke_tokens(
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

pub(crate) async fn delete_client(
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

pub(crate) async fn post_rotate_secret(
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
