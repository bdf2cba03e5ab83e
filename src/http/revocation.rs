//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{BearerError, no_store};
use super::extract::{header_str, read_body_limited};
use crate::oauth::{ErrorCode, IntrospectionRequest, OAuthError, RevocationRequest};
use crate::service;
use crate::service::tokens::{ADMIN_SCOPE, CallerRejection, IntrospectionError};
use crate::startup::AppState;

/// RFC 7009 §2.1; §2.2: 200 whether or not the token was valid.
pub async fn post_revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let body = read_body_limited(&req, payload, state.settings.max_body_bytes).await?;
    let request = RevocationRequest::parse(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
    )?;
    let (keys, now, app) = (state.keys.current(), state.now(), state.clone());
    state
        .db
        .run(move |conn| service::tokens::revoke(conn, &keys, &app.policy, &request, now))
        .await?;
    Ok(no_store(&mut HttpResponse::Ok()).finish())
}

/// RFC 7662 §2.1 request, §2.2 response, §2.3 errors.
pub async fn post_introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let body = read_body_limited(&req, payload, state.settings.max_body_bytes).await?;
    let request = IntrospectionRequest::parse(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
    )?;
    let (keys, now, app) = (state.keys.current(), state.now(), state.clone());
    let answer = state
        .db
        .run(move |conn| {
            service::tokens::introspect(conn, &keys, &app.policy, &app.usage, &request, now)
        })
        .await
        .map_err(introspection_error)?;
    Ok(no_store(&mut HttpResponse::Ok()).json(answer))
}

fn introspection_error(err: IntrospectionError) -> actix_web::Error {
    match err {
        IntrospectionError::Caller(CallerRejection::InvalidClient(why)) => {
            OAuthError::invalid_client(why).into()
        }
        IntrospectionError::Caller(CallerRejection::NotAllowed) => OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client needs the introspect scope to call this endpoint",
        )
        .with_status(403)
        .into(),
        IntrospectionError::Caller(CallerRejection::InvalidToken(why)) => {
            BearerError::InvalidToken(why).into()
        }
        IntrospectionError::Caller(CallerRejection::InsufficientScope) => {
            BearerError::InsufficientScope(ADMIN_SCOPE).into()
        }
        IntrospectionError::Server(err) => err.into(),
    }
}

impl From<crate::db::DbError> for IntrospectionError {
    fn from(err: crate::db::DbError) -> Self {
        Self::Server(err.into())
    }
}
