//! `/admin/clients`: OAuth clients.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Deserializer};

use super::{Admin, ClientList, ClientWithSecret, private_json};
use crate::app::AppState;
use crate::http::error::HttpError;
use crate::http::extract::{Object, ScopeInput, json_body};
use crate::http::openapi::{BearerErrors, BodyErrors, NotFound, StoreErrors};
use crate::service::clients::ClientView;
use crate::service::clients::{self, ClientSpec, ClientUpdate};

/// A new client.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateClientBody {
    /// 1 to 200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// The scopes the client may request (`scope` is accepted too); default none.
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    /// Audiences (resource URIs or names) the client may request; the first is the
    /// default `aud`. At most 32.
    #[serde(default)]
    audiences: Vec<String>,
    /// Token lifetime in seconds; default `tokens.default_ttl_seconds`.
    #[serde(default)]
    token_ttl: Option<i64>,
    /// `client_credentials` (the default) and/or
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
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

/// A partial update: absent members keep their value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateClientBody {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    /// `null` returns to the server's default lifetime.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    token_ttl: Option<Option<i64>>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
}

/// How long the old secret keeps working.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateSecretBody {
    /// Seconds the old secret stays valid beside the new one; default 0 (cut off at once).
    #[serde(default)]
    grace_seconds: i64,
}

#[utoipa::path(
    post,
    path = "/admin/clients",
    tag = "admin",
    summary = "Create a client",
    request_body = CreateClientBody,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The client, with its secret (shown once).", body = ClientWithSecret),
        BearerErrors, BodyErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_client(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<Object<CreateClientBody>>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner().into_inner();
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
        ClientWithSecret {
            client: view,
            client_secret: secret.expose(),
        },
    ))
}

#[utoipa::path(
    get,
    path = "/admin/clients",
    tag = "admin",
    summary = "List clients",
    security(("admin_token" = [])),
    responses((status = 200, description = "Every client.", body = ClientList), BearerErrors, StoreErrors),
)]
pub(crate) async fn list_clients(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let list = state.db.run(move |conn| clients::list(conn, now)).await?;
    Ok(private_json(StatusCode::OK, ClientList { clients: list }))
}

#[utoipa::path(
    get,
    path = "/admin/clients/{id}",
    tag = "admin",
    summary = "Show a client",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The client.", body = ClientView), BearerErrors, NotFound, StoreErrors),
)]
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

#[utoipa::path(
    patch,
    path = "/admin/clients/{id}",
    tag = "admin",
    summary = "Change a client",
    params(("id" = String, Path, description = "The client id")),
    request_body = UpdateClientBody,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The changed client.", body = ClientView),
        BearerErrors, BodyErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn patch_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Object<UpdateClientBody>>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner().into_inner();
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

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/disable",
    tag = "admin",
    summary = "Disable a client",
    description = "The client can no longer get tokens, and its tokens stop being accepted.",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The client.", body = ClientView), BearerErrors, NotFound, StoreErrors),
)]
pub(crate) async fn post_disable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    set_disabled(admin, state, id.into_inner(), true).await
}

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/enable",
    tag = "admin",
    summary = "Enable a client",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The client.", body = ClientView), BearerErrors, NotFound, StoreErrors),
)]
pub(crate) async fn post_enable_client(
    admin: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    set_disabled(admin, state, id.into_inner(), false).await
}

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/revoke-tokens",
    tag = "admin",
    summary = "Revoke every token of a client",
    description = "Tokens issued to the client before now stop being accepted.",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The client.", body = ClientView), BearerErrors, NotFound, StoreErrors),
)]
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

#[utoipa::path(
    delete,
    path = "/admin/clients/{id}",
    tag = "admin",
    summary = "Delete a client",
    params(("id" = String, Path, description = "The client id")),
    security(("admin_token" = [])),
    responses((status = 204, description = "Deleted."), BearerErrors, NotFound, StoreErrors),
)]
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

#[utoipa::path(
    post,
    path = "/admin/clients/{id}/rotate-secret",
    tag = "admin",
    summary = "Give a client a new secret",
    description = "No body means no grace: the old secret stops working at once.",
    params(("id" = String, Path, description = "The client id")),
    request_body(content = Option<RotateSecretBody>, content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The client, with its new secret (shown once).", body = ClientWithSecret),
        BearerErrors, BodyErrors, NotFound, StoreErrors,
    ),
)]
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
        ClientWithSecret {
            client: view,
            client_secret: secret.expose(),
        },
    ))
}
