//! Every error a client can see is rendered here, and only here: handlers return
//! [`HttpError`], and each service error family has one `From` impl below. 5xx answers
//! carry a fixed body; the cause is logged, never sent.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::db::DbError;
pub use crate::oauth::error::rfc_text;
use crate::oauth::{ErrorCode, OAuthError};
use crate::service::accounts::AccountError;
use crate::service::audit::AuditError;
use crate::service::clients::ClientError;
use crate::service::pairing::PairingRefusal;
use crate::service::signing_keys::KeyServiceError;
use crate::service::{BearerRejection, ProtocolError};

/// RFC 6749 §5.1/§5.2: token responses and their errors must not be cached.
pub fn no_store(
    builder: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
}

/// The `error` code of an error answer, kept on the response for the metrics
/// (`tollgate_http_errors_total`, see `observe`).
#[derive(Debug, Clone, Copy)]
pub struct ErrorTag(pub &'static str);

/// Notes `code` on `response` (see [`ErrorTag`]).
pub fn tag_error(response: &mut HttpResponse, code: &'static str) {
    response.extensions_mut().insert(ErrorTag(code));
}

/// The body of every error answer of the JSON APIs, OAuth endpoints included (RFC 6749
/// §5.2's shape).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// An RFC 6749 §5.2 / RFC 6750 §3.1 code at the OAuth endpoints (`invalid_request`,
    /// `invalid_client`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`,
    /// `invalid_scope`, `invalid_target`, `unsupported_token_type`, `invalid_token`,
    /// `insufficient_scope`, `server_error`, `temporarily_unavailable`); elsewhere also
    /// `not_found`, `conflict`, `forbidden`, `method_not_allowed`, `slow_down`,
    /// `unsupported_version` and the pairing refusals (`invalid_challenge`, `invalid_code`,
    /// `challenge_failed`, `challenge_expired`, `challenge_used`, `challenge_denied`).
    #[schema(example = "invalid_request")]
    pub error: &'a str,
    /// Human-readable, within RFC 6749 §5.2's character set (printable ASCII but the
    /// double quote and the backslash).
    #[schema(pattern = r#"^[\x20-\x21\x23-\x5B\x5D-\x7E]*$"#)]
    pub error_description: String,
    /// `invalid_code` only: how many more codes may be tried for this challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
}

impl<'a> ErrorBody<'a> {
    /// `description` forced into the RFC 6749 §5.2 character set (see `oauth::error::rfc_text`).
    pub fn new(error: &'a str, description: &str) -> Self {
        Self {
            error,
            error_description: rfc_text(description),
            attempts_remaining: None,
        }
    }
}

/// An error of the JSON APIs: `{"error","error_description"}` like the OAuth ones, and
/// for a wrong pairing code the attempts left.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    pub attempts_remaining: Option<u32>,
}

/// What a handler can fail with.
#[derive(Debug)]
pub enum HttpError {
    /// RFC 6749 §5.2 (token, revocation, introspection).
    OAuth(OAuthError),
    /// RFC 6750 §3: a bearer-protected API refused the caller.
    Bearer(BearerRejection),
    Api(ApiError),
    /// The database failed: 503 when it may pass, 500 otherwise.
    Store(DbError),
    /// A bug or a broken invariant: 500, with the detail logged.
    Internal(String),
}

impl HttpError {
    pub fn api(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self::Api(ApiError {
            status,
            code,
            description: description.into(),
            attempts_remaining: None,
        })
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn not_found(description: impl Into<String>) -> Self {
        Self::api(StatusCode::NOT_FOUND, "not_found", description)
    }

    fn conflict(description: impl Into<String>) -> Self {
        Self::api(StatusCode::CONFLICT, "conflict", description)
    }

    fn internal(what: &str, err: &dyn std::fmt::Display) -> Self {
        Self::Internal(format!("{what}: {err}"))
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OAuth(err) => err.fmt(f),
            Self::Bearer(err) => err.fmt(f),
            Self::Api(err) => write!(f, "{}: {}", err.code, err.description),
            Self::Store(err) => err.fmt(f),
            Self::Internal(detail) => f.write_str(detail),
        }
    }
}

/// The DbError split, in one place: transient failures are 503, anything else 500.
fn store_failure(err: &DbError) -> (StatusCode, ErrorCode, &'static str) {
    if err.is_unavailable() {
        // While the breaker is open every request would log this: the breaker logs once.
        if matches!(err, DbError::Unavailable) {
            tracing::debug!(error = %err, "database unavailable");
        } else {
            tracing::warn!(error = %err, "database unavailable");
        }
        (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the server is temporarily unavailable, try again",
        )
    } else {
        tracing::error!(error = %err, "database error");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServerError,
            "internal server error",
        )
    }
}

/// The one place error bodies are written: the description is forced into the RFC 6749
/// §5.2 character set, whatever the message (see `oauth::error::rfc_text`).
fn json_error(status: StatusCode, code: &'static str, description: &str) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    let mut response = no_store(&mut builder).json(ErrorBody::new(code, description));
    tag_error(&mut response, code);
    response
}

fn bearer_response(rejection: &BearerRejection) -> HttpResponse {
    let (status, challenge, code) = match rejection {
        BearerRejection::Missing => (
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"tollgate\"".to_owned(),
            "invalid_request",
        ),
        BearerRejection::InvalidToken(why) => (
            StatusCode::UNAUTHORIZED,
            format!(
                "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{}\"",
                rfc_text(why)
            ),
            "invalid_token",
        ),
        BearerRejection::InsufficientScope(scope) => (
            StatusCode::FORBIDDEN,
            format!(
                "Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"{}\"",
                rfc_text(scope)
            ),
            "insufficient_scope",
        ),
    };
    let description = match rejection {
        BearerRejection::InvalidToken(why) => why.clone(),
        other => other.to_string(),
    };
    let mut response = json_error(status, code, &description);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth(err) => {
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Bearer(BearerRejection::InsufficientScope(_)) => StatusCode::FORBIDDEN,
            Self::Bearer(_) => StatusCode::UNAUTHORIZED,
            Self::Api(err) => err.status,
            Self::Store(err) if err.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::OAuth(err) => {
                let mut response =
                    json_error(self.status_code(), err.code.as_str(), &err.description);
                if err.code == ErrorCode::InvalidClient {
                    // RFC 6749 §5.2: 401 with the authentication scheme the client should use.
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"tollgate\""),
                    );
                }
                response
            }
            Self::Bearer(rejection) => bearer_response(rejection),
            Self::Api(err) => {
                let body = ErrorBody {
                    attempts_remaining: err.attempts_remaining,
                    ..ErrorBody::new(err.code, &err.description)
                };
                let mut response = no_store(&mut HttpResponse::build(err.status)).json(body);
                tag_error(&mut response, err.code);
                response
            }
            Self::Store(err) => {
                let (status, code, description) = store_failure(err);
                json_error(status, code.as_str(), description)
            }
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::ServerError.as_str(),
                    "internal server error",
                )
            }
        }
    }
}

impl From<OAuthError> for HttpError {
    fn from(err: OAuthError) -> Self {
        Self::OAuth(err)
    }
}

impl From<BearerRejection> for HttpError {
    fn from(err: BearerRejection) -> Self {
        Self::Bearer(err)
    }
}

impl From<DbError> for HttpError {
    fn from(err: DbError) -> Self {
        Self::Store(err)
    }
}

impl From<ProtocolError> for HttpError {
    fn from(err: ProtocolError) -> Self {
        match err {
            ProtocolError::OAuth(err) => Self::OAuth(err),
            ProtocolError::Bearer(err) => Self::Bearer(err),
            // The OAuth endpoints answer database trouble in RFC 6749 shape too.
            ProtocolError::Store(err) => {
                let (_, code, description) = store_failure(&err);
                Self::OAuth(OAuthError::new(code, description))
            }
            ProtocolError::Signing(err) => Self::internal("token signing failed", &err),
        }
    }
}

impl From<ClientError> for HttpError {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::NotFound(_) => Self::not_found(err.to_string()),
            ClientError::Invalid(message) => Self::bad_request(message),
            ClientError::Store(db) => db.into(),
        }
    }
}

impl From<AccountError> for HttpError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::AccountNotFound(_)
            | AccountError::KeyNotFound(_)
            | AccountError::ChallengeNotFound(_) => Self::not_found(err.to_string()),
            AccountError::HandleTaken(_) | AccountError::ChallengeNotPending(_) => {
                Self::conflict(err.to_string())
            }
            AccountError::Invalid(message) => Self::bad_request(message),
            AccountError::Broader(message) => {
                Self::api(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AccountError::Pairing(refusal) => refusal.into(),
            AccountError::Store(db) => db.into(),
        }
    }
}

impl From<PairingRefusal> for HttpError {
    fn from(refusal: PairingRefusal) -> Self {
        let (code, attempts_remaining) = match &refusal {
            PairingRefusal::UnknownChallenge => ("invalid_challenge", None),
            PairingRefusal::WrongCode { remaining } => {
                ("invalid_code", Some(u32::try_from(*remaining).unwrap_or(0)))
            }
            PairingRefusal::TooManyAttempts => ("challenge_failed", None),
            PairingRefusal::Expired => ("challenge_expired", None),
            PairingRefusal::AlreadyUsed => ("challenge_used", None),
            PairingRefusal::Denied => ("challenge_denied", None),
        };
        Self::Api(ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            description: refusal.to_string(),
            attempts_remaining,
        })
    }
}

impl From<KeyServiceError> for HttpError {
    fn from(err: KeyServiceError) -> Self {
        match err {
            KeyServiceError::Store(db) => db.into(),
            KeyServiceError::ConcurrentRotation => Self::conflict(err.to_string()),
            other => Self::internal("signing key operation failed", &other),
        }
    }
}

impl From<AuditError> for HttpError {
    fn from(err: AuditError) -> Self {
        match err {
            AuditError::UnknownAccount(_) => Self::not_found(err.to_string()),
            AuditError::Store(db) => db.into(),
        }
    }
}

/// 405 for the OAuth endpoints, with `Allow` and an RFC 6749-shaped body.
pub async fn post_only() -> HttpResponse {
    let mut builder = HttpResponse::MethodNotAllowed();
    no_store(&mut builder)
        .insert_header((header::ALLOW, HeaderValue::from_static("POST")))
        .json(ErrorBody::new(
            "invalid_request",
            "this endpoint accepts POST only",
        ))
}

/// 405 for read-only resources.
pub async fn get_only() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, HeaderValue::from_static("GET, HEAD")))
        .json(ErrorBody::new(
            "invalid_request",
            "this endpoint accepts GET only",
        ))
}

/// Turns actix's JSON body errors into our 400/413 shape.
pub fn json_body_error(
    err: actix_web::error::JsonPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let error = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            HttpError::api(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            )
        }
        JsonPayloadError::ContentType => {
            HttpError::bad_request("the request body must be application/json")
        }
        // serde's message names an unknown or missing field; `"` is not allowed in an
        // error_description.
        other => HttpError::bad_request(format!(
            "invalid JSON body: {}",
            super::extract::describable(&other.to_string())
        )),
    };
    error.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CorruptRow;
    use serde_json::Value;

    async fn render(error: HttpError) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
        let response = error.error_response();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    fn header<'a>(headers: &'a actix_web::http::header::HeaderMap, name: &str) -> &'a str {
        headers.get(name).unwrap().to_str().unwrap()
    }

    #[actix_web::test]
    async fn invalid_client_is_401_with_a_basic_challenge_and_no_store() {
        let (status, headers, body) =
            render(OAuthError::invalid_client("client authentication failed").into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&headers, "www-authenticate"),
            "Basic realm=\"tollgate\""
        );
        assert_eq!(header(&headers, "cache-control"), "no-store");
        assert_eq!(header(&headers, "pragma"), "no-cache");
        assert_eq!(body["error"], "invalid_client");
    }

    #[actix_web::test]
    async fn database_trouble_is_503_when_transient_and_an_opaque_500_otherwise() {
        let (status, _, body) = render(HttpError::Store(DbError::Canceled)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "temporarily_unavailable");
        let corrupt = DbError::Corrupt(CorruptRow::new("clients", "c1", "scopes: bad"));
        let (status, _, body) = render(HttpError::Store(corrupt)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "server_error");
        assert_eq!(body["error_description"], "internal server error");
        // At the token endpoint the same trouble keeps the RFC 6749 shape.
        let (status, _, body) = render(ProtocolError::Store(DbError::Canceled).into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "temporarily_unavailable");
        // A panic in a database closure is a bug, not an outage.
        let (status, _, body) = render(ProtocolError::Store(DbError::Panicked).into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"], "server_error");
        let (status, _, _) = render(HttpError::Store(DbError::Panicked)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[actix_web::test]
    async fn bearer_rejections_carry_rfc_6750_challenges() {
        let (status, headers, body) =
            render(BearerRejection::InvalidToken("bad \"sig\"".into()).into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&headers, "www-authenticate"),
            "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"bad 'sig'\""
        );
        assert_eq!(body["error"], "invalid_token");
        let (status, headers, _) = render(BearerRejection::InsufficientScope("admin").into()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(header(&headers, "www-authenticate").contains("scope=\"admin\""));
        let (status, headers, _) = render(BearerRejection::Missing.into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&headers, "www-authenticate"),
            "Bearer realm=\"tollgate\""
        );
    }

    #[actix_web::test]
    async fn service_errors_map_to_their_statuses() {
        let cases: Vec<(HttpError, StatusCode, &str)> = vec![
            (
                ClientError::NotFound("x".into()).into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                ClientError::Invalid("bad".into()).into(),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                AccountError::HandleTaken("a".into()).into(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                AccountError::ChallengeNotFound("c".into()).into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                AccountError::ChallengeNotPending("c".into()).into(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                AuditError::UnknownAccount("a".into()).into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                KeyServiceError::ConcurrentRotation.into(),
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                KeyServiceError::NoActiveKey.into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
            ),
            (
                PairingRefusal::Expired.into(),
                StatusCode::BAD_REQUEST,
                "challenge_expired",
            ),
        ];
        for (error, status, code) in cases {
            let (got_status, headers, body) = render(error).await;
            assert_eq!((got_status, body["error"].as_str()), (status, Some(code)));
            assert_eq!(header(&headers, "cache-control"), "no-store");
        }
        let (_, _, body) = render(PairingRefusal::WrongCode { remaining: 2 }.into()).await;
        assert_eq!(body["error"], "invalid_code");
        assert_eq!(body["attempts_remaining"], 2);
    }

    /// Every message of the service error families, with hostile input where they echo
    /// any, is within the RFC 6749 §5.2 character set as written; and whatever a message
    /// holds, the rendered body and challenge are too.
    #[actix_web::test]
    async fn every_service_error_message_is_within_the_rfc_character_set() {
        use crate::oauth::error::is_rfc_text;
        use crate::service::access_tokens::TokenRejection;
        use crate::service::api_keys::KeyRejection;
        let hostile = "x\"y\\z\u{e9}\u{1}\n\u{7f}";
        let written: Vec<String> = vec![
            ClientError::NotFound(hostile.into()).to_string(),
            AccountError::AccountNotFound(hostile.into()).to_string(),
            AccountError::KeyNotFound(hostile.into()).to_string(),
            AccountError::ChallengeNotFound(hostile.into()).to_string(),
            AccountError::ChallengeNotPending(hostile.into()).to_string(),
            AccountError::HandleTaken(hostile.into()).to_string(),
            AuditError::UnknownAccount(hostile.into()).to_string(),
            KeyServiceError::ConcurrentRotation.to_string(),
            KeyServiceError::NoActiveKey.to_string(),
            KeyServiceError::WrongMasterKey(hostile.into()).to_string(),
            KeyRejection::Malformed.to_string(),
            KeyRejection::Invalid.to_string(),
            KeyRejection::AccountDisabled.to_string(),
            TokenRejection::Malformed.to_string(),
            TokenRejection::UnknownKey.to_string(),
            TokenRejection::WrongType.to_string(),
            TokenRejection::WrongAudience.to_string(),
            BearerRejection::Missing.to_string(),
            BearerRejection::InsufficientScope("admin").to_string(),
            PairingRefusal::UnknownChallenge.to_string(),
            PairingRefusal::WrongCode { remaining: 2 }.to_string(),
            PairingRefusal::TooManyAttempts.to_string(),
            PairingRefusal::Expired.to_string(),
            PairingRefusal::AlreadyUsed.to_string(),
            PairingRefusal::Denied.to_string(),
            crate::oauth::error::echo(&hostile.repeat(20)),
        ];
        for message in &written {
            assert!(is_rfc_text(message), "{message:?}");
        }
        // The safety net: free text (a library's message, say) is forced into the set.
        let free_text: Vec<HttpError> = vec![
            OAuthError::invalid_request(hostile).into(),
            BearerRejection::InvalidToken(hostile.into()).into(),
            HttpError::bad_request(hostile),
            ClientError::Invalid(hostile.into()).into(),
            AccountError::Invalid(hostile.into()).into(),
            AccountError::HandleTaken(hostile.into()).into(),
            PairingRefusal::WrongCode { remaining: 1 }.into(),
        ];
        for error in free_text {
            let (_, headers, body) = render(error).await;
            let description = body["error_description"].as_str().unwrap();
            assert!(is_rfc_text(description), "{description:?}");
            if let Some(challenge) = headers.get("www-authenticate") {
                let challenge = challenge.to_str().unwrap();
                // Each quoted value is within the set (the quotes themselves delimit).
                for value in challenge.split('"').skip(1).step_by(2) {
                    assert!(is_rfc_text(value), "{challenge}");
                }
            }
        }
    }
}
