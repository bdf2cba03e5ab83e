//! `POST /oauth/token` (RFC 6749 §4.4, RFC 8693).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{HttpError, no_store};
use super::extract::{header_str, read_body_limited};
use super::throttle::{AuthAttempt, Verdict, throttled};
use crate::app::AppState;
use crate::http::openapi::{BodyErrors, OAuthErrors, StoreErrors};
use crate::oauth::TokenRequest;
use crate::service::grants;

/// The form of a token request, for the OpenAPI document (`oauth::TokenRequest::parse`
/// reads it: each parameter at most once but `resource` and `audience`, empty values
/// count as absent).
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
pub struct TokenRequestForm {
    grant_type: GrantTypeParam,
    /// Space-separated scopes; default: all of the client's (client credentials) or of
    /// the API key (token exchange).
    #[schema(required = false)]
    scope: String,
    /// RFC 8707: an absolute URI without fragment naming a resource the token is for;
    /// repeatable. Must be one of the client's audiences.
    #[schema(required = false)]
    resource: Vec<String>,
    /// RFC 8693: a logical name of a target service; repeatable.
    #[schema(required = false)]
    audience: Vec<String>,
    /// `client_secret_post` (RFC 6749 §2.3.1), instead of HTTP Basic.
    #[schema(required = false)]
    client_id: String,
    /// `client_secret_post`, with `client_id`.
    #[schema(required = false)]
    client_secret: String,
    /// Token exchange: the API key to exchange.
    #[schema(required = false)]
    subject_token: String,
    /// Token exchange: required with `subject_token`.
    #[schema(required = false)]
    subject_token_type: SubjectTokenType,
    /// Token exchange: only access tokens are issued.
    #[schema(required = false)]
    requested_token_type: RequestedTokenType,
}

#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum GrantTypeParam {
    /// RFC 6749 §4.4.
    #[schema(rename = "client_credentials")]
    ClientCredentials,
    /// RFC 8693 §2.1, for Tollgate API keys.
    #[schema(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum SubjectTokenType {
    #[schema(rename = "urn:tollgate:params:oauth:token-type:api_key")]
    ApiKey,
}

#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum RequestedTokenType {
    #[schema(rename = "urn:ietf:params:oauth:token-type:access_token")]
    AccessToken,
}

/// RFC 6749 §4.4.2: access token request; §5.1 response.
#[utoipa::path(
    post,
    path = "/oauth/token",
    tag = "oauth",
    summary = "Issue an access token",
    description = "The client credentials grant (RFC 6749 §4.4), or an API key exchanged for a \
        short-lived access token (RFC 8693). Client authentication: HTTP Basic or the form's \
        `client_id`/`client_secret`, one of them (optional for token exchange).",
    request_body(content = TokenRequestForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = []), ()),
    responses(
        (status = 200, description = "RFC 6749 §5.1: the access token (a JWT, RFC 9068).",
            body = crate::service::grants::IssuedToken,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        OAuthErrors, BodyErrors, StoreErrors,
    ),
)]
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
    let client_id = request.credentials.as_ref().map(|c| c.client_id.as_str());
    let attempt = AuthAttempt::begin(&req, &state, client_id);
    let app = state.clone();
    let issued = state
        .db
        .run(move |conn| app.with_issuer(|issuer| grants::issue(conn, issuer, &request)))
        .await;
    match attempt.observe(issued) {
        Verdict::Answer(issued) => Ok(no_store(&mut HttpResponse::Ok()).json(issued?)),
        Verdict::Throttled(wait) => Ok(throttled(wait)),
    }
}
