//! `/admin/accounts`: accounts, their API keys and pending pairing requests.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, private_json};
use crate::app::AppState;
use crate::db::DbConn;
use crate::http::accounts::{key_created, key_spec};
use crate::http::error::HttpError;
use crate::http::extract::ScopeInput;
use crate::service::accounts::{AccountError, AccountView, NewAccount};
use crate::service::api_keys::{self, Within};
use crate::service::audit::Actor;
use crate::service::{accounts, invites, pairing};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAccountBody {
    handle: String,
    #[serde(default, alias = "name")]
    display_name: Option<String>,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    /// May use the console's operator pages.
    #[serde(default)]
    operator: bool,
}

pub(crate) async fn post_account(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateAccountBody>,
) -> Result<HttpResponse, HttpError> {
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

pub(crate) async fn list_accounts(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let list = state.db.run(accounts::list).await?;
    Ok(private_json(StatusCode::OK, json!({ "accounts": list })))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyBody {
    name: String,
    #[serde(default, alias = "scope")]
    scopes: Option<ScopeInput>,
    #[serde(default)]
    expires_in: Option<i64>,
    /// RFC 3339, instead of `expires_in`.
    #[serde(default)]
    expires_at: Option<String>,
}

pub(crate) async fn post_key(
    admin: Admin,
    state: web::Data<AppState>,
    handle: web::Path<String>,
    body: web::Json<CreateKeyBody>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
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
    Ok(key_created(&view, &secret))
}

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
    Ok(private_json(StatusCode::OK, json!({ "keys": keys })))
}

/// The key must belong to the account in the path.
async fn owner_id(state: &web::Data<AppState>, handle: String) -> Result<String, HttpError> {
    Ok(state
        .db
        .run(move |conn| accounts::by_handle(conn, &handle))
        .await?
        .id)
}

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
    Ok(key_created(&view, &secret))
}

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
    Ok(private_json(
        StatusCode::OK,
        json!({ "challenges": challenges }),
    ))
}
