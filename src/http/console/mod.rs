//! The web console under `/console/`: server-rendered pages where people sign in, manage
//! their API keys and answer app requests, and operators manage the server. Pages call the
//! same service functions as the CLI and the admin API, with the actor `console:<handle>`.
//!
//! Every page carries a strict Content-Security-Policy (no inline script or style), and
//! every state-changing form a CSRF token checked with the request's origin ([`csrf`]).

pub(super) mod account;
pub(super) mod apps;
pub(super) mod assets;
pub(super) mod auth;
mod csrf;
pub(super) mod error;
pub(super) mod keys;
pub(super) mod operator;
mod session;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use askama::Template;

pub use error::ConsoleError;
pub use session::{Person, Visitor};

/// Pages and assets: none loads anything from elsewhere, frames it, or leaks its URL.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add(("cross-origin-opener-policy", "same-origin"))
}

/// The console's scope (its routes are in `http::routes`): security headers on every page,
/// the form body limit, and its own 404 page.
pub(super) fn scope(
    scope: actix_web::Scope,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    scope
        .wrap(security_headers())
        .app_data(
            web::FormConfig::default()
                .limit(16 * 1024)
                .error_handler(error::form_error),
        )
        .default_service(web::to(error::page_not_found))
}

/// `/console/`: the keys page for a signed-in person, else the sign-in page.
pub(super) async fn get_home(visitor: Visitor) -> HttpResponse {
    let target = if visitor.0.is_some() {
        "/console/keys"
    } else {
        "/console/sign-in"
    };
    see_other(target)
}

/// 303: after a form, the browser GETs the next page (no re-POST on reload).
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// What every page around its content shows.
pub struct Chrome {
    pub title: String,
    pub css: &'static str,
    pub js: &'static str,
    /// The signed-in person, for the navigation and the sign-out form.
    pub nav: Option<Nav>,
    /// Which navigation entry is the current page.
    pub current: &'static str,
    /// Narrow layout (sign-in, invite).
    pub narrow: bool,
}

pub struct Nav {
    pub handle: String,
    pub operator: bool,
    pub csrf: String,
}

impl Chrome {
    pub fn signed_out(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            css: assets::CSS.path(),
            js: assets::JS.path(),
            nav: None,
            current: "",
            narrow: true,
        }
    }

    pub fn for_person(person: &Person, title: &str, current: &'static str) -> Self {
        Self {
            title: title.to_owned(),
            css: assets::CSS.path(),
            js: assets::JS.path(),
            nav: Some(Nav {
                handle: person.account.handle.clone(),
                operator: person.account.is_operator,
                csrf: person.session.csrf_token.clone(),
            }),
            current,
            narrow: false,
        }
    }
}

/// Renders a page as a private, uncacheable HTML answer.
fn page(status: actix_web::http::StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .body(html),
        Err(err) => {
            tracing::error!(error = %err, "console template failed to render");
            HttpResponse::InternalServerError()
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body("internal server error")
        }
    }
}

fn ok_page(template: &impl Template) -> HttpResponse {
    page(actix_web::http::StatusCode::OK, template)
}

/// Times as people read them, in UTC.
fn human_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}
