//! `POST /oauth/token` (RFC 6749 §4.4).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::no_store;
use super::extract::{header_str, read_body_limited};
use crate::oauth::{OAuthError, TokenRequest};
use crate::service;
use crate::startup::AppState;

/// RFC 6749 §4.4.2: access token request; §5.1 response.
pub async fn post_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let body = read_body_limited(&req, payload, state.settings.max_body_bytes).await?;
    let request = TokenRequest::parse(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
    )?;
    let (keys, now, app) = (state.keys.current(), state.now(), state.clone());
    let issued = state
        .db
        .run(move |conn| {
            service::tokens::issue(conn, &keys, &app.policy, &app.usage, &request, now)
        })
        .await?;
    Ok(no_store(&mut HttpResponse::Ok()).json(issued))
}
