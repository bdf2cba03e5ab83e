//! Who is at the browser: the session cookie, resumed on each request into a [`Visitor`]
//! (maybe signed in) or a [`Person`] (signed in, else sent to the sign-in page), and the
//! cookie itself: `HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` prefixed when the
//! issuer is https.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::error::ConsoleError;
use crate::app::AppState;
use crate::domain::{Account, ConsoleSession};
use crate::http::extract::client_ip;
use crate::service::audit::Actor;
use crate::service::sessions::{self, BrowserInfo, SessionToken, SignedIn};

/// Whether cookies must be `Secure` (and may use the `__Host-` prefix): the console is
/// served over https whenever the issuer is.
pub fn secure(state: &AppState) -> bool {
    state.settings.issuer.starts_with("https://")
}

pub fn session_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-tollgate_session"
    } else {
        "tollgate_session"
    }
}

/// A cookie scoped to the whole host (as `__Host-` requires), never readable by script.
pub fn cookie<'a>(state: &AppState, name: &'a str, value: String, max_age: i64) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(secure(state))
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(max_age))
        .finish()
}

pub fn session_cookie(state: &AppState, token: &SessionToken) -> Cookie<'static> {
    cookie(
        state,
        session_cookie_name(state),
        token.expose().to_owned(),
        state.settings.console.sessions.absolute_seconds,
    )
}

/// Tells the browser to forget the session cookie.
pub fn expired_session_cookie(state: &AppState) -> Cookie<'static> {
    let mut cookie = cookie(state, session_cookie_name(state), String::new(), 0);
    cookie.make_removal();
    cookie
}

/// The browser's user agent and address, for the person's list of sessions.
pub fn browser_info(req: &HttpRequest, state: &AppState) -> BrowserInfo {
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let address = client_ip(req, &state.settings.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    BrowserInfo::new(user_agent, &address)
}

async fn resume(req: &HttpRequest) -> Result<Option<SignedIn>, ConsoleError> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(ConsoleError::Internal("AppState missing".into()));
    };
    let Some(token) = req
        .cookie(session_cookie_name(&state))
        .map(|c| c.value().to_owned())
    else {
        return Ok(None);
    };
    let (policy, now) = (state.settings.console.sessions, state.now());
    Ok(state
        .db
        .run(move |conn| sessions::resume(conn, &token, &policy, now))
        .await?)
}

/// Anyone: signed in (with both factors) or not.
pub struct Visitor(pub Option<Person>);

/// A signed-in person, with both factors when they have two.
#[derive(Debug, Clone)]
pub struct Person {
    pub session: ConsoleSession,
    pub account: Account,
}

impl Person {
    pub fn actor(&self) -> Actor {
        Actor::console(&self.account.handle)
    }

    /// An operator, or 403.
    pub fn operator(&self) -> Result<&Self, ConsoleError> {
        if self.account.is_operator {
            Ok(self)
        } else {
            Err(ConsoleError::Forbidden)
        }
    }
}

/// Signed in with a password but still owing the second factor.
pub struct HalfSignedIn(pub SignedIn);

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ConsoleError>>>>;

impl FromRequest for Visitor {
    type Error = ConsoleError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(Visitor(resume(&req).await?.and_then(|signed_in| {
                (!signed_in.session.second_factor_pending).then_some(Person {
                    session: signed_in.session,
                    account: signed_in.account,
                })
            })))
        })
    }
}

impl FromRequest for Person {
    type Error = ConsoleError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match resume(&req).await? {
                Some(signed_in) if !signed_in.session.second_factor_pending => Ok(Person {
                    session: signed_in.session,
                    account: signed_in.account,
                }),
                Some(_) => Err(ConsoleError::SecondFactorRequired),
                None => Err(ConsoleError::SignInRequired {
                    next: sign_in_return_path(&req),
                }),
            }
        })
    }
}

impl FromRequest for HalfSignedIn {
    type Error = ConsoleError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match resume(&req).await? {
                Some(signed_in) if signed_in.session.second_factor_pending => {
                    Ok(HalfSignedIn(signed_in))
                }
                Some(_) => Err(ConsoleError::AlreadySignedIn),
                None => Err(ConsoleError::SignInRequired {
                    next: "/console/".into(),
                }),
            }
        })
    }
}

/// Where to come back after signing in: this page, when it is a console page someone may
/// GET (never a form target or another site).
fn sign_in_return_path(req: &HttpRequest) -> String {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/console/", |p| p.as_str());
    if req.method() == actix_web::http::Method::GET && safe_return_path(path) {
        path.to_owned()
    } else {
        "/console/".into()
    }
}

/// A path on this console: no scheme, no host, no `//` or `\` tricks.
pub fn safe_return_path(path: &str) -> bool {
    path.starts_with("/console/")
        && !path.contains("//")
        && !path.contains('\\')
        && path.len() <= 1000
        && path.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::safe_return_path;

    #[test]
    fn only_console_paths_are_return_targets() {
        assert!(safe_return_path("/console/keys"));
        assert!(safe_return_path(
            "/console/authorize-app?session=abc&name=x"
        ));
        assert!(!safe_return_path("https://evil.example/console/"));
        assert!(!safe_return_path("//evil.example/console/"));
        assert!(!safe_return_path("/console//evil.example"));
        assert!(!safe_return_path("/console/\\evil"));
        assert!(!safe_return_path("/admin/clients"));
        assert!(!safe_return_path("/console/a b"));
    }
}
