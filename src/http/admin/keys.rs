//! `/admin/keys`: signing keys.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::{Admin, SigningKeyList, private_json};
use crate::app::{AppState, maintenance};
use crate::http::error::HttpError;
use crate::http::openapi::{BearerErrors, StoreErrors};
use crate::service::signing_keys;
use crate::service::signing_keys::KeyView;

#[utoipa::path(
    get,
    path = "/admin/keys",
    operation_id = "list_signing_keys",
    tag = "admin",
    summary = "List signing keys",
    security(("admin_token" = [])),
    responses((status = 200, description = "Every signing key, public parts only.", body = SigningKeyList), BearerErrors, StoreErrors),
)]
pub(crate) async fn list_keys(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let keys = state
        .db
        .run(move |conn| signing_keys::list(conn, now))
        .await?;
    Ok(private_json(StatusCode::OK, SigningKeyList { keys }))
}

#[utoipa::path(
    post,
    path = "/admin/keys/rotate",
    operation_id = "post_rotate_signing_key",
    tag = "admin",
    summary = "Rotate the signing key",
    description = "Announce before use: makes a new `next` key, published now, which signs \
        from the next scheduled rotation on.",
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The new key.", body = KeyView),
        (status = 409, description = "`conflict`: another rotation ran at the same time.", body = crate::http::error::ErrorBody),
        BearerErrors, StoreErrors,
    ),
)]
pub(crate) async fn post_rotate_key(
    admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    // Announce before use: the admin API has no immediate rotation.
    let key = maintenance::rotate_now(&state, admin.actor()).await?;
    Ok(private_json(StatusCode::CREATED, key))
}
