//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{HttpError, no_store};
use super::extract::{header_str, read_body_limited};
use super::throttle::{AuthAttempt, Verdict, throttled};
use crate::app::AppState;
use crate::oauth::{IntrospectionCaller, IntrospectionRequest, RevocationRequest};
use crate::service::{introspection, revocation};

/// RFC 7009 §2.1; §2.2: 200 whether or not the token was valid.
pub async fn post_revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body = read_body_limited(&req, payload, state.settings.max_body_bytes).await?;
    let request = RevocationRequest::parse(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
    )?;
    let attempt = AuthAttempt::begin(&req, &state, Some(&request.credentials.client_id));
    let (keys, now, app) = (state.keys.current(), state.now(), state.clone());
    let revoked = state
        .db
        .run(move |conn| revocation::revoke(conn, &app.cache, &keys, &app.policy, &request, now))
        .await;
    match attempt.observe(revoked) {
        Verdict::Answer(revoked) => {
            revoked?;
            Ok(no_store(&mut HttpResponse::Ok()).finish())
        }
        Verdict::Throttled(wait) => Ok(throttled(wait)),
    }
}

/// RFC 7662 §2.1 request, §2.2 response, §2.3 errors.
pub async fn post_introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body = read_body_limited(&req, payload, state.settings.max_body_bytes).await?;
    let request = IntrospectionRequest::parse(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
    )?;
    let client_id = match &request.caller {
        IntrospectionCaller::Client(credentials) => Some(credentials.client_id.as_str()),
        IntrospectionCaller::Bearer(_) => None,
    };
    let attempt = AuthAttempt::begin(&req, &state, client_id);
    let (keys, now) = (state.keys.current(), state.now());
    let answer = state
        .clone()
        .into_inner()
        .read_through(move |lookup, app| {
            introspection::introspect(lookup, &keys, &app.policy, &app.usage, &request, now)
        })
        .await;
    match attempt.observe(answer) {
        Verdict::Answer(answer) => Ok(no_store(&mut HttpResponse::Ok()).json(answer?)),
        Verdict::Throttled(wait) => Ok(throttled(wait)),
    }
}
