//! OAuth 2.0 error responses as data (RFC 6749 §5.2, RFC 8707 §2, RFC 6750 §3.1).

use std::borrow::Cow;

/// RFC 6749 §5.2 and RFC 6750 §3: `error_description` and challenge parameter values may
/// only hold %x20-21 / %x23-5B / %x5D-7E. Maps anything else (`"`, `\\`, control
/// characters, non-ASCII) to a safe stand-in; the one sanitiser, applied where errors are
/// rendered, as a safety net behind messages that are written clean.
pub fn rfc_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// True when `text` is within the RFC 6749 §5.2 `error_description` character set.
pub fn is_rfc_text(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// User input echoed in an error message: in single quotes, at most 64 characters, and
/// within the RFC character set (so it can never break out of a quoted header value).
pub fn echo(input: &str) -> String {
    const MAX: usize = 64;
    let mut shown: String = input.chars().take(MAX).collect();
    if input.chars().count() > MAX {
        shown.push_str("...");
    }
    format!("'{}'", rfc_text(&shown))
}

/// The `error` codes Tollgate answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is missing a required parameter, includes an unsupported parameter
    /// value, repeats a parameter, includes multiple credentials, or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed (unknown client, no client authentication included,
    /// or unsupported authentication method).
    InvalidClient,
    /// The provided authorization grant is invalid, expired or revoked.
    InvalidGrant,
    /// The authenticated client is not authorized to use this authorization grant type.
    UnauthorizedClient,
    /// The authorization grant type is not supported by the authorization server.
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown, malformed, or exceeds what the client may ask.
    InvalidScope,
    /// RFC 8707: the requested resource is invalid, unknown, or not allowed for the client.
    InvalidTarget,
    /// RFC 7009 §2.2.1: the server does not revoke this type of token at this endpoint.
    UnsupportedTokenType,
    /// The server met an unexpected condition (details are logged, never sent).
    ServerError,
    /// The server is temporarily unable to handle the request (e.g. database pool exhausted).
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// RFC 6749 §5.2: 400, except 401 for `invalid_client`.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error answer from an OAuth endpoint. `status` overrides the code's usual status for
/// transport-level refusals (405 wrong method, 413 body too large) that still answer with
/// an RFC 6749 JSON body.
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub status: Option<u16>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            status: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.code.status())
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
