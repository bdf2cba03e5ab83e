//! `/admin/accounts`: accounts, their API keys and pending pairing requests.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{AccountList, Admin, private_json};
use crate::app::AppState;
use crate::db::DbConn;
use crate::http::accounts::{ApiKeyWithSecret, ChallengeList, KeyList};
use crate::http::accounts::{key_created, key_spec};
use crate::http::error::ErrorBody;
use crate::http::error::HttpError;
use crate::http::extract::{Object, ScopeInput};
use crate::http::openapi::{BearerErrors, BodyErrors, NotFound, StoreErrors};
use crate::service::accounts::{AccountError, AccountView, NewAccount};
use crate::service::api_keys::ApiKeyView;
use crate::service::api_keys::{self, Within};
use crate::service::audit::Actor;
use crate::service::invites::InviteLink;
use crate::service::{accounts, invites, pairing};

/// A new account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAccountBody {
    /// 2 to 40 of letters, digits, `-`, `_` and `.`, starting with a letter or digit;
    /// stored in lower case.
    #[schema(
        min_length = 2,
        max_length = 40,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )]
    handle: String,
    /// Default: the handle (`name` is accepted too).
    #[serde(default, alias = "name")]
    display_name: Option<String>,
    /// The scopes the account's keys may carry (`scope` is accepted too); default none.
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    /// May use the console's operator pages.
    #[serde(default)]
    operator: bool,
}

#[utoipa::path(
    post,
    path = "/admin/accounts",
    tag = "admin",
    summary = "Create an account",
    request_body = CreateAccountBody,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The account.", body = AccountView),
        (status = 409, description = "`conflict`: the handle is taken.", body = ErrorBody),
        BearerErrors, BodyErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_account(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<Object<CreateAccountBody>>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner().into_inner();
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
            let new = NewAccount {
                handle: &body.handle,
                display_name: body.display_name.as_deref(),
                scopes: &scopes,
                operator: body.operator,
            };
            accounts::create(conn, &actor, &new, now)
        })
        .await?;
    Ok(private_json(StatusCode::CREATED, account))
}

#[utoipa::path(
    get,
    path = "/admin/accounts",
    tag = "admin",
    summary = "List accounts",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every account.", body = AccountList), BearerErrors, StoreErrors,
    ),
)]
pub(crate) async fn list_accounts(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let list = state.db.run(accounts::list).await?;
    Ok(private_json(StatusCode::OK, AccountList { accounts: list }))
}

#[utoipa::path(
    get,
    path = "/admin/accounts/{handle}",
    tag = "admin",
    summary = "Show an account",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account.", body = AccountView), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn get_account(
    _admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let account = state
        .db
        .run(move |conn| accounts::get(conn, &handle))
        .await?;
    Ok(private_json(StatusCode::OK, account))
}

/// A change to one account's state by the service function `change`; answers the account.
async fn change_account(
    admin: Admin,
    state: web::Data<AppState>,
    handle: String,
    change: fn(&mut DbConn, &Actor, &str, bool, i64) -> Result<AccountView, AccountError>,
    on: bool,
) -> Result<HttpResponse, HttpError> {
    let (actor, now) = (admin.actor(), state.now());
    let account = state
        .db
        .run(move |conn| change(conn, &actor, &handle, on, now))
        .await?;
    Ok(private_json(StatusCode::OK, account))
}

#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/disable",
    tag = "admin",
    summary = "Disable an account",
    description = "Every key of the account stops working at once.",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account.", body = AccountView), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_disable(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    change_account(
        admin,
        state,
        handle.into_inner(),
        accounts::set_disabled,
        true,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/enable",
    tag = "admin",
    summary = "Enable an account",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account.", body = AccountView), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_enable(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    change_account(
        admin,
        state,
        handle.into_inner(),
        accounts::set_disabled,
        false,
    )
    .await
}

/// `POST /admin/accounts/{handle}/invite`: a one-time sign-in link (new person or password
/// reset), valid for `console.invite_valid_hours`; earlier unused links of the account stop
/// working. The link is a secret: shown once, never cached.
#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/invite",
    tag = "admin",
    summary = "Make a sign-in link",
    description = "A one-time console sign-in link (a new person, or a password reset), valid for `console.invite_valid_hours`; earlier unused links of the account stop working.",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The link (a secret: shown once).", body = InviteLink), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_invite(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let (actor, now) = (admin.actor(), state.now());
    let (issuer, ttl) = (
        state.settings.issuer.clone(),
        state.settings.console.invite_ttl_seconds,
    );
    let link = state
        .db
        .run(move |conn| invites::create(conn, &actor, &handle, &issuer, ttl, now))
        .await?;
    Ok(private_json(StatusCode::CREATED, link))
}

/// `POST /admin/accounts/{handle}/promote`: the account may use the console's operator pages.
#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/promote",
    tag = "admin",
    summary = "Make an account an operator",
    description = "The account may use the console's operator pages.",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account.", body = AccountView), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_promote(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    change_account(
        admin,
        state,
        handle.into_inner(),
        accounts::set_operator,
        true,
    )
    .await
}

/// `POST /admin/accounts/{handle}/demote`: takes the operator role away.
#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/demote",
    tag = "admin",
    summary = "Take the operator role away",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account.", body = AccountView), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_demote(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    change_account(
        admin,
        state,
        handle.into_inner(),
        accounts::set_operator,
        false,
    )
    .await
}

#[utoipa::path(
    delete,
    path = "/admin/accounts/{handle}",
    tag = "admin",
    summary = "Delete an account and its keys",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted."), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn delete_account(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let (actor, now) = (admin.actor(), state.now());
    state
        .db
        .run(move |conn| accounts::delete(conn, &actor, &handle, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new API key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AdminKeyRequest)]
pub(crate) struct CreateKeyBody {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Within the account's scopes (`scope` is accepted too); default: all of them.
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    /// Lifetime in seconds (at least 60), instead of `expires_at`; default: no expiry.
    #[serde(default)]
    expires_in: Option<i64>,
    /// RFC 3339, instead of `expires_in`.
    #[serde(default)]
    expires_at: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/keys",
    operation_id = "post_account_key",
    tag = "admin",
    summary = "Create an API key for an account",
    params(("handle" = String, Path, description = "The account handle")),
    request_body = CreateKeyBody,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The key, with its secret (shown once).", body = ApiKeyWithSecret), BearerErrors, BodyErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_key(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
    body: web::Json<Object<CreateKeyBody>>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner().into_inner();
    let (actor, now) = (admin.actor(), state.now());
    let spec = key_spec(
        body.name,
        body.scopes.as_ref(),
        body.expires_in,
        body.expires_at.as_deref(),
        now,
    )?;
    let (view, secret) = state
        .db
        .run(move |conn| api_keys::create_for(conn, &actor, &handle, &spec, now))
        .await?;
    Ok(key_created(view, &secret))
}

#[utoipa::path(
    get,
    path = "/admin/accounts/{handle}/keys",
    operation_id = "list_account_keys",
    tag = "admin",
    summary = "List an account's API keys",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The account's keys.", body = KeyList), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn list_keys(
    _admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| api_keys::list_for(conn, &handle, now))
        .await?;
    Ok(private_json(StatusCode::OK, KeyList { keys }))
}

/// The key must belong to the account in the path.
async fn owner_id(state: &web::Data<AppState>, handle: String) -> Result<String, HttpError> {
    Ok(state
        .db
        .run(move |conn| accounts::by_handle(conn, &handle))
        .await?
        .id)
}

#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/keys/{id}/regenerate",
    operation_id = "post_regenerate_account_key",
    tag = "admin",
    summary = "Give an API key a new secret",
    params(("handle" = String, Path, description = "The account handle"), ("id" = String, Path, description = "The API key id")),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The new key, with its secret (shown once); the old one is revoked.", body = ApiKeyWithSecret), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_regenerate_key(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HttpError> {
    let (handle, id) = path.into_inner();
    let owner = owner_id(&state, handle).await?;
    let (actor, now) = (admin.actor(), state.now());
    let (view, secret) = state
        .db
        .run(move |conn| api_keys::regenerate(conn, &actor, &id, Within::Account(&owner), now))
        .await?;
    Ok(key_created(view, &secret))
}

#[utoipa::path(
    post,
    path = "/admin/accounts/{handle}/keys/{id}/revoke",
    operation_id = "post_revoke_account_key",
    tag = "admin",
    summary = "Revoke an API key",
    params(("handle" = String, Path, description = "The account handle"), ("id" = String, Path, description = "The API key id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The key.", body = ApiKeyView), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn post_revoke_key(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HttpError> {
    let (handle, id) = path.into_inner();
    let owner = owner_id(&state, handle).await?;
    let (actor, now) = (admin.actor(), state.now());
    let view = state
        .db
        .run(move |conn| api_keys::revoke(conn, &actor, &id, Within::Account(&owner), now))
        .await?;
    Ok(private_json(StatusCode::OK, view))
}

#[utoipa::path(
    delete,
    path = "/admin/accounts/{handle}/keys/{id}",
    operation_id = "delete_account_key",
    tag = "admin",
    summary = "Delete an API key",
    params(("handle" = String, Path, description = "The account handle"), ("id" = String, Path, description = "The API key id")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted."), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn delete_key(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, HttpError> {
    let (handle, id) = path.into_inner();
    let owner = owner_id(&state, handle).await?;
    let (actor, now) = (admin.actor(), state.now());
    state
        .db
        .run(move |conn| api_keys::delete(conn, &actor, &id, Within::Account(&owner), now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/admin/accounts/{handle}/challenges",
    tag = "admin",
    summary = "List an account's pending pairing requests",
    params(("handle" = String, Path, description = "The account handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Pending requests, with their codes.", body = ChallengeList), BearerErrors, NotFound, StoreErrors,
    ),
)]
pub(crate) async fn list_challenges(
    _admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let (app, now) = (state.clone(), state.now());
    let challenges = state
        .db
        .run(move |conn| pairing::pending_challenges_for(conn, &app.pairing, &handle, now))
        .await?;
    // The answer holds live pairing codes.
    Ok(private_json(StatusCode::OK, ChallengeList { challenges }))
}
