//! `POST /oauth/token` (RFC 6749 §4.4, RFC 8693).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{HttpError, no_store};
use super::extract::{header_str, read_body_limited};
use super::throttle::{AuthAttempt, Verdict, throttled};
use crate::app::AppState;
use crate::domain::GrantType;
use crate::http::openapi::{BodyErrors, OAuthErrors, StoreErrors};
use crate::oauth::{Grant, TokenRequest};
use crate::service::grants;

// Describes the form for the OpenAPI document; `oauth::TokenRequest::parse` reads it.
/// A token request: the client credentials grant or a token exchange. Each parameter at
/// most once but `resource` and `audience`; empty values count as absent; parameters the
/// grant does not use are ignored.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TokenRequestForm {
    ClientCredentials(ClientCredentialsForm),
    TokenExchange(TokenExchangeForm),
}

/// RFC 6749 §4.4.2: the client credentials grant. The client authenticates with HTTP
/// Basic or with `client_id` and `client_secret` here (`client_secret_post`), not both.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClientCredentialsForm {
    grant_type: ClientCredentialsGrant,
    /// Space-separated scopes; default: all of the client's.
    #[schema(required = false)]
    scope: String,
    /// RFC 8707: an absolute URI without fragment naming a resource the token is for;
    /// repeatable. Must be one of the client's audiences.
    #[schema(required = false)]
    resource: Vec<String>,
    /// RFC 8693: a logical name of a target service; repeatable.
    #[schema(required = false)]
    audience: Vec<String>,
    /// `client_secret_post`, instead of HTTP Basic.
    #[schema(required = false)]
    client_id: String,
    /// `client_secret_post`, with `client_id`.
    #[schema(required = false)]
    client_secret: String,
}

/// RFC 8693 §2.1: an API key exchanged for a short-lived access token. Client
/// authentication is optional.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenExchangeForm {
    grant_type: TokenExchangeGrant,
    /// The API key to exchange.
    #[schema(min_length = 1)]
    subject_token: String,
    subject_token_type: SubjectTokenType,
    /// Only access tokens are issued.
    #[schema(required = false)]
    requested_token_type: RequestedTokenType,
    /// Space-separated scopes, within the API key's; default: all of them.
    #[schema(required = false)]
    scope: String,
    /// RFC 8707, repeatable.
    #[schema(required = false)]
    resource: Vec<String>,
    /// RFC 8693, repeatable.
    #[schema(required = false)]
    audience: Vec<String>,
    /// `client_secret_post`, optional.
    #[schema(required = false)]
    client_id: String,
    /// `client_secret_post`, with `client_id`.
    #[schema(required = false)]
    client_secret: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum ClientCredentialsGrant {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum TokenExchangeGrant {
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum SubjectTokenType {
    #[serde(rename = "urn:tollgate:params:oauth:token-type:api_key")]
    ApiKey,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "describes the form for the OpenAPI document")]
enum RequestedTokenType {
    #[serde(rename = "urn:ietf:params:oauth:token-type:access_token")]
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
    let grant_type = match request.grant {
        Grant::ClientCredentials { .. } => GrantType::ClientCredentials,
        Grant::TokenExchange { .. } => GrantType::TokenExchange,
    };
    let client_id = request.credentials.as_ref().map(|c| c.client_id.as_str());
    let attempt = AuthAttempt::begin(&req, &state, client_id);
    let issued = state
        .read_through(move |lookup, app| {
            app.with_issuer(|issuer| grants::issue(lookup, issuer, &request))
        })
        .await;
    match attempt.observe(issued) {
        Verdict::Answer(issued) => {
            let issued = issued?;
            state.metrics.token_issued(grant_type);
            Ok(no_store(&mut HttpResponse::Ok())
                .insert_header(header::ContentType::json())
                .body(issued.to_json()))
        }
        Verdict::Throttled(wait) => Ok(throttled(wait)),
    }
}
