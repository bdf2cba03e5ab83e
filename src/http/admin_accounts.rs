//! Admin API for accounts, their API keys, and the audit trail.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::accounts::key_created;
use super::admin::{Admin, ScopeInput};
use super::error::ApiError;
use crate::service::accounts::{self, KeySpec};
use crate::service::audit;
use crate::startup::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/accounts")
            .route(web::get().to(list_accounts))
            .route(web::post().to(post_account)),
    )
    .service(
        web::resource("/accounts/{handle}")
            .route(web::get().to(get_account))
            .route(web::delete().to(delete_account)),
    )
    .service(web::resource("/accounts/{handle}/disable").route(web::post().to(post_disable)))
    .service(web::resource("/accounts/{handle}/enable").route(web::post().to(post_enable)))
    .service(
        web::resource("/accounts/{handle}/keys")
            .route(web::get().to(list_keys))
            .route(web::post().to(post_key)),
    )
    .service(web::resource("/accounts/{handle}/keys/{id}").route(web::delete().to(delete_key)))
    .service(
        web::resource("/accounts/{handle}/keys/{id}/revoke").route(web::post().to(post_revoke_key)),
    )
    .service(web::resource("/accounts/{handle}/challenges").route(web::get().to(list_challenges)))
    .service(web::resource("/audit").route(web::get().to(get_audit)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccountBody {
    handle: String,
    #[serde(default, alias = "name")]
    display_name: Option<String>,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
}

async fn post_account(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateAccountBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let scopes = body
        .scopes
        .as_ref()
        .map(ScopeInput::parse)
        .transpose()?
        .unwrap_or_default();
    let (actor, now) = (admin.actor(), state.now());
    let account = state
        .db
        .run(move |conn| {
            accounts::create_account(
                conn,
                &actor,
                &body.handle,
                body.display_name.as_deref(),
                &scopes,
                now,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(account))
}

async fn list_accounts(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let list = state.db.run(accounts::list_accounts).await?;
    Ok(HttpResponse::Ok().json(json!({ "accounts": list })))
}

async fn get_account(
    _admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let account = state
        .db
        .run(move |conn| accounts::get_account(conn, &handle))
        .await?;
    Ok(HttpResponse::Ok().json(account))
}

async fn set_disabled(
    admin: Admin,
    state: web::Data<AppState>,
    handle: String,
    disabled: bool,
) -> Result<HttpResponse, ApiError> {
    let (actor, now) = (admin.actor(), state.now());
    let account = state
        .db
        .run(move |conn| accounts::set_account_disabled(conn, &actor, &handle, disabled, now))
        .await?;
    Ok(HttpResponse::Ok().json(account))
}

async fn post_disable(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(admin, state, handle.into_inner(), true).await
}

async fn post_enable(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_disabled(admin, state, handle.into_inner(), false).await
}

async fn delete_account(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (actor, now) = (admin.actor(), state.now());
    state
        .db
        .run(move |conn| accounts::delete_account(conn, &actor, &handle, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyBody {
    name: String,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    #[serde(default)]
    expires_in: Option<i64>,
}

async fn post_key(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
    body: web::Json<CreateKeyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let spec = KeySpec {
        name: body.name,
        scopes: body.scopes.as_ref().map(ScopeInput::parse).transpose()?,
        expires_in: body.expires_in,
    };
    let (actor, now) = (admin.actor(), state.now());
    let (view, secret) = state
        .db
        .run(move |conn| accounts::create_key_for(conn, &actor, &handle, &spec, now))
        .await?;
    Ok(key_created(&view, secret.expose()))
}

async fn list_keys(
    _admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| accounts::list_keys_for(conn, &handle, now))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// The key must belong to the account in the path.
async fn owner_id(state: &web::Data<AppState>, handle: String) -> Result<String, ApiError> {
    Ok(state
        .db
        .run(move |conn| accounts::account_row(conn, &handle))
        .await?
        .id)
}

async fn post_revoke_key(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (handle, id) = path.into_inner();
    let owner = owner_id(&state, handle).await?;
    let (actor, now) = (admin.actor(), state.now());
    let view = state
        .db
        .run(move |conn| accounts::revoke_key(conn, &actor, &id, Some(&owner), now))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn delete_key(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (handle, id) = path.into_inner();
    let owner = owner_id(&state, handle).await?;
    let (actor, now) = (admin.actor(), state.now());
    state
        .db
        .run(move |conn| accounts::delete_key(conn, &actor, &id, Some(&owner), now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_challenges(
    _admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.now();
    let challenges = state
        .db
        .run(move |conn| accounts::pending_challenges_for(conn, &handle, now))
        .await?;
    // The answer holds live pairing codes.
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "challenges": challenges })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    account: Option<String>,
    client: Option<String>,
    limit: Option<i64>,
}

/// `GET /admin/audit?account=HANDLE&client=ID&limit=N`: newest first.
async fn get_audit(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let events = state
        .db
        .run(move |conn| {
            audit::list(
                conn,
                query.account.as_deref(),
                query.client.as_deref(),
                query.limit.unwrap_or(100),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

impl From<audit::AuditError> for ApiError {
    fn from(err: audit::AuditError) -> Self {
        match err {
            audit::AuditError::UnknownAccount(_) => Self::not_found(err.to_string()),
            audit::AuditError::Store(db) => db.into(),
        }
    }
}
