//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ErrorBody;
use super::error::{HttpError, no_store};
use super::extract::{header_str, read_body_limited};
use super::openapi::{BodyErrors, OAuthErrors, StoreErrors};
use super::throttle::{AuthAttempt, Verdict, throttled};
use crate::app::AppState;
use crate::oauth::{IntrospectionCaller, IntrospectionRequest, RevocationRequest};
use crate::service::{introspection, revocation};

// Describes the form for the OpenAPI document; `oauth::RevocationRequest::parse` and
// `IntrospectionRequest::parse` read it.
/// A revocation or introspection request. Each parameter at most once; empty values count
/// as absent.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
pub struct TokenParamForm {
    /// The access token or API key.
    #[schema(min_length = 1)]
    token: String,
    /// A hint only (RFC 7009 §2.1, RFC 7662 §2.1): every kind of token is looked up.
    #[schema(required = false)]
    token_type_hint: String,
    /// `client_secret_post` (RFC 6749 §2.3.1), instead of HTTP Basic.
    #[schema(required = false)]
    client_id: String,
    /// `client_secret_post`, with `client_id`.
    #[schema(required = false)]
    client_secret: String,
}

/// RFC 7009 §2.1; §2.2: 200 whether or not the token was valid.
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    tag = "oauth",
    summary = "Revoke a token",
    description = "RFC 7009: revokes an access token or API key the authenticated client may \
        revoke. The answer is 200 whether or not the token was valid.",
    request_body(content = TokenParamForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "RFC 7009 §2.2: done, or the token was not valid.",
            headers(("Cache-Control" = String, description = "`no-store`"))),
        OAuthErrors, BodyErrors, StoreErrors,
    ),
)]
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
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "oauth",
    summary = "Introspect a token",
    description = "RFC 7662: whether a token (an access token or an API key) is active, and \
        what it carries. The caller is a client with the `introspect` scope (HTTP Basic or \
        the form's `client_id`/`client_secret`) or an admin access token.",
    request_body(content = TokenParamForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ("admin_token" = []), ()),
    responses(
        (status = 200, description = "RFC 7662 §2.2.", body = crate::service::introspection::Introspection,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 403, description = "`unauthorized_client`: the client lacks the `introspect` \
            scope; `insufficient_scope`: the admin token lacks the `admin` scope.", body = ErrorBody),
        OAuthErrors, BodyErrors, StoreErrors,
    ),
)]
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
        .read_through(move |lookup, app| {
            introspection::introspect(
                lookup,
                &keys,
                &app.policy,
                &app.usage,
                &app.verified_tokens,
                &request,
                now,
            )
        })
        .await;
    match attempt.observe(answer) {
        Verdict::Answer(answer) => Ok(no_store(&mut HttpResponse::Ok()).json(answer?)),
        Verdict::Throttled(wait) => Ok(throttled(wait)),
    }
}
