//! `/admin/keys`: signing keys.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{Admin, private_json};
use crate::app::{AppState, maintenance};
use crate::http::error::HttpError;
use crate::service::signing_keys;

pub(crate) async fn list_keys(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| signing_keys::list(conn, now))
        .await?;
    Ok(private_json(StatusCode::OK, json!({ "keys": keys })))
}

pub(crate) async fn post_rotate_key(
    admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    // Announce before use: the admin API has no immediate rotation.
    let key = maintenance::rotate_now(&state, admin.actor()).await?;
    Ok(private_json(StatusCode::CREATED, key))
}
