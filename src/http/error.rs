//! The only `ResponseError` impls: every error a client can see is rendered here.
//! 5xx answers carry a fixed body; the cause is logged where the error is made.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;
use crate::oauth::{ErrorCode, OAuthError};
use crate::service::clients::ClientError;
use crate::service::keys::KeyServiceError;

/// RFC 6749 §5.1/§5.2: token responses and their errors must not be cached.
pub fn no_store(
    builder: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        status(self.status())
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        no_store(&mut builder);
        if self.code == ErrorCode::InvalidClient {
            // RFC 6749 §5.2: 401 with the authentication scheme the client should use.
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\""),
            ));
        }
        builder.json(json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        }))
    }
}

/// Errors of the JSON APIs (admin): `{"error","error_description"}` like the OAuth ones.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .json(json!({"error": self.code, "error_description": self.description}))
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the server is temporarily unavailable, try again",
            )
        } else {
            tracing::error!(error = %err, "database error");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal server error",
            )
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::NotFound(_) => Self::not_found(err.to_string()),
            ClientError::Invalid(message) => Self::bad_request(message),
            ClientError::Store(db) => db.into(),
        }
    }
}

impl From<KeyServiceError> for ApiError {
    fn from(err: KeyServiceError) -> Self {
        match err {
            KeyServiceError::Store(db) => db.into(),
            KeyServiceError::ConcurrentRotation => {
                Self::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            other => {
                tracing::error!(error = %other, "signing key operation failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal server error",
                )
            }
        }
    }
}

/// RFC 6750 §3: bearer token failures on protected APIs.
#[derive(Debug)]
pub enum BearerError {
    /// No credentials at all: 401 with the realm only (§3.1).
    Missing,
    /// §3.1 `invalid_token`: 401.
    InvalidToken(String),
    /// §3.1 `insufficient_scope`: 403, naming the scope needed.
    InsufficientScope(&'static str),
    /// The check itself failed (database down): 503/500 without a challenge.
    Unavailable(ApiError),
}

impl std::fmt::Display for BearerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("bearer token required"),
            Self::InvalidToken(why) => write!(f, "invalid token: {why}"),
            Self::InsufficientScope(scope) => write!(f, "the token lacks scope {scope}"),
            Self::Unavailable(inner) => inner.fmt(f),
        }
    }
}

fn quoted(text: &str) -> String {
    text.replace(['"', '\\'], "'")
}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::Unavailable(inner) => inner.status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (challenge, body) = match self {
            Self::Missing => (
                "Bearer realm=\"tollgate\"".to_owned(),
                json!({"error": "invalid_request", "error_description": "a bearer token is required"}),
            ),
            Self::InvalidToken(why) => (
                format!(
                    "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{}\"",
                    quoted(why)
                ),
                json!({"error": "invalid_token", "error_description": why}),
            ),
            Self::InsufficientScope(scope) => (
                format!(
                    "Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"{scope}\""
                ),
                json!({"error": "insufficient_scope", "error_description": format!("the token needs scope {scope}")}),
            ),
            Self::Unavailable(inner) => return inner.error_response(),
        };
        let mut builder = HttpResponse::build(self.status_code());
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            builder.insert_header((header::WWW_AUTHENTICATE, value));
        }
        builder
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .json(body)
    }
}

/// 405 for the OAuth endpoints, with `Allow` and an RFC 6749-shaped body.
pub async fn post_only() -> HttpResponse {
    let mut builder = HttpResponse::MethodNotAllowed();
    no_store(&mut builder)
        .insert_header((header::ALLOW, HeaderValue::from_static("POST")))
        .json(json!({
            "error": "invalid_request",
            "error_description": "this endpoint accepts POST only",
        }))
}

/// 405 for read-only resources.
pub async fn get_only() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, HeaderValue::from_static("GET, HEAD")))
        .json(json!({"error": "invalid_request", "error_description": "this endpoint accepts GET only"}))
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no such endpoint: {}", req.path())).error_response()
}

/// Turns actix's JSON body errors into our 400/413 shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            )
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request("the request body must be application/json")
        }
        other => ApiError::bad_request(format!("invalid JSON body: {other}")),
    };
    api.into()
}
