//! `POST /oauth/token` (RFC 6749 §4.4, RFC 8693).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{HttpError, no_store};
use super::extract::{header_str, read_body_limited};
use super::throttle::{AuthAttempt, Verdict, throttled};
use crate::app::AppState;
use crate::domain::GrantType;
use crate::oauth::{Grant, TokenRequest};
use crate::service::grants;

/// RFC 6749 §4.4.2: access token request; §5.1 response.
pub async fn post_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body = read_body_limited(&req, payload, state.settings.max_body_bytes).await?;
    let request = TokenRequest::parse(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
    )?;
    let grant_type = match request.grant {
        Grant::ClientCredentials { .. } => GrantType::ClientCredentials,
        Grant::TokenExchange { .. } => GrantType::TokenExchange,
    };
    let client_id = request.credentials.as_ref().map(|c| c.client_id.as_str());
    let attempt = AuthAttempt::begin(&req, &state, client_id);
    let issued = state
        .clone()
        .into_inner()
        .read_through(move |lookup, app| {
            app.with_issuer(|issuer| grants::issue(lookup, issuer, &request))
        })
        .await;
    match attempt.observe(issued) {
        Verdict::Answer(issued) => {
            let issued = issued?;
            state.metrics.token_issued(grant_type);
            Ok(no_store(&mut HttpResponse::Ok()).json(issued))
        }
        Verdict::Throttled(wait) => Ok(throttled(wait)),
    }
}
