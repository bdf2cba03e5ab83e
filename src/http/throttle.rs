//! Throttling of failed client authentication at the OAuth endpoints (RFC 6749 §2.3.1):
//! the count is kept by [`crate::app::rate_limit::AuthThrottle`]; this is the glue that
//! counts failed attempts and answers 429 to the failures of a client id and address (or an
//! address) that failed too often lately.
//!
//! Correct credentials always pass, throttled or not: otherwise anyone sharing an address
//! (NAT, a proxy, an IPv6 /64) could lock everyone there out with a few wrong secrets, or
//! lock a client out by spamming wrong secrets for its id. Checking a secret costs one
//! indexed read and a constant-time compare; its 256 random bits make guessing pointless,
//! and throttled guessers only ever see 429.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::error::{ErrorBody, no_store};
use super::extract::client_ip;
use crate::app::AppState;
use crate::app::rate_limit::address_key;
use crate::oauth::ErrorCode;
use crate::service::ProtocolError;

/// The `error` of a throttled request. RFC 6749 has no code for "too many attempts";
/// `temporarily_unavailable` tells clients to retry later, and 429 with `Retry-After`
/// says when.
pub const THROTTLED_ERROR: ErrorCode = ErrorCode::TemporarilyUnavailable;

/// One client authentication attempt.
pub struct AuthAttempt<'a> {
    state: &'a AppState,
    client_id: Option<String>,
    /// The client's address (`X-Forwarded-For` only from trusted proxies); turned into the
    /// limiters' key (IPv6 per /64) only when there is a failure to count.
    client_ip: Option<IpAddr>,
}

/// What to answer after the attempt.
pub enum Verdict<T> {
    /// The request's own answer (success, or an error that is not a failed authentication,
    /// or the failure that reached the limit).
    Answer(Result<T, ProtocolError>),
    /// A failed authentication while throttled: 429 with `Retry-After`.
    Throttled(Duration),
}

impl<'a> AuthAttempt<'a> {
    pub fn begin(req: &HttpRequest, state: &'a AppState, client_id: Option<&str>) -> Self {
        Self {
            state,
            client_id: client_id.map(str::to_owned),
            client_ip: client_ip(req, &state.settings.trusted_proxies),
        }
    }

    /// Counts the attempt if client authentication failed; a failure while throttled is
    /// answered 429, anything else passes on.
    pub fn observe<T>(&self, result: Result<T, ProtocolError>) -> Verdict<T> {
        if let Err(ProtocolError::OAuth(err)) = &result
            && err.code == ErrorCode::InvalidClient
        {
            // Consulted only on a failure, as it was before this one counted: correct
            // credentials pass regardless, so a success takes no lock for it.
            let address = self.client_ip.map(address_key).unwrap_or_default();
            let blocked = self
                .state
                .auth_failures
                .check(self.client_id.as_deref(), &address)
                .err();
            self.state
                .auth_failures
                .record_failure(self.client_id.as_deref(), &address);
            if let Some(wait) = blocked {
                return Verdict::Throttled(wait);
            }
        }
        Verdict::Answer(result)
    }
}

/// 429 in RFC 6749 §5.2 shape, with `Retry-After` in whole seconds.
pub fn throttled(wait: Duration) -> HttpResponse {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut builder = HttpResponse::build(StatusCode::TOO_MANY_REQUESTS);
    let mut response = no_store(&mut builder).json(ErrorBody::new(
        THROTTLED_ERROR.as_str(),
        &format!("too many failed client authentications; try again in {seconds} s"),
    ));
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    super::error::tag_error(&mut response, THROTTLED_ERROR.as_str());
    response
}
