//! Cross-site request forgery defences for every state-changing console form:
//! - signed in: the session's synchronizer token, in a hidden field, compared in constant
//!   time;
//! - before sign-in (sign-in and invite forms): a random token both in a cookie and in the
//!   form (double submit), so that another site cannot sign a browser into its own account;
//! - always: the `Origin` header (or, when it is absent or `null`, `Sec-Fetch-Site`) names
//!   this server.

use actix_web::HttpRequest;
use actix_web::cookie::Cookie;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::error::ConsoleError;
use super::session::{Person, cookie, secure};
use crate::app::AppState;
use crate::crypto::secrets::random_bytes;
use crate::domain::ConsoleSession;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `scheme://host[:port]` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin
        .is_tuple()
        .then(|| origin.ascii_serialization().to_ascii_lowercase())
}

/// The request comes from a page of this server: its `Origin` is the issuer's or this
/// host's; without `Origin`, `Sec-Fetch-Site` (when sent) says same-origin or none.
pub fn same_origin(req: &HttpRequest, state: &AppState) -> bool {
    let fetch_site = header(req, "sec-fetch-site");
    match header(req, "origin").map(|o| o.trim().to_ascii_lowercase()) {
        // Our pages send `Referrer-Policy: no-referrer`, under which browsers send
        // `Origin: null` with form posts (Fetch standard); `Sec-Fetch-Site` then tells.
        Some(origin) if origin == "null" => fetch_site == Some("same-origin"),
        Some(origin) => {
            if origin_of(&state.settings.issuer).is_some_and(|issuer| issuer == origin) {
                return true;
            }
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            let host = header(req, "host").map(str::to_ascii_lowercase);
            authority.is_some() && authority.map(str::to_owned) == host
        }
        None => matches!(fetch_site, None | Some("same-origin") | Some("none")),
    }
}

fn equal(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in form: the session's token and this server's origin.
pub fn check(
    req: &HttpRequest,
    state: &AppState,
    person: &Person,
    presented: &str,
) -> Result<(), ConsoleError> {
    check_session(req, state, &person.session, presented)
}

/// A form of any session, also one that still owes its second factor.
pub fn check_session(
    req: &HttpRequest,
    state: &AppState,
    session: &ConsoleSession,
    presented: &str,
) -> Result<(), ConsoleError> {
    if same_origin(req, state) && equal(presented, &session.csrf_token) {
        Ok(())
    } else {
        Err(ConsoleError::Forgery)
    }
}

pub fn pre_session_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-tollgate_csrf"
    } else {
        "tollgate_csrf"
    }
}

/// The token for a form shown before sign-in: the browser's existing one, or a new one with
/// the cookie to set.
pub fn pre_session_token(req: &HttpRequest, state: &AppState) -> (String, Option<Cookie<'static>>) {
    if let Some(existing) = req
        .cookie(pre_session_cookie_name(state))
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 43)
    {
        return (existing, None);
    }
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let cookie = cookie(state, pre_session_cookie_name(state), token.clone(), 86_400);
    (token, Some(cookie))
}

/// A form sent before sign-in: the cookie and the field agree, from this server's origin.
pub fn check_pre_session(
    req: &HttpRequest,
    state: &AppState,
    presented: &str,
) -> Result<(), ConsoleError> {
    let cookie = req
        .cookie(pre_session_cookie_name(state))
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if same_origin(req, state) && equal(presented, &cookie) {
        Ok(())
    } else {
        Err(ConsoleError::Forgery)
    }
}
