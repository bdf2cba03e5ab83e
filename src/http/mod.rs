//! HTTP: routes and thin handlers (parse, call one service, render). The only module that
//! names actix-web types, besides `startup`, which builds the server. Every error is
//! rendered by `error`.

pub mod accounts;
pub mod admin;
pub mod around_routes;
pub mod connection;
pub mod console;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod health;
pub mod introspection;
pub mod limits;
pub mod observe;
pub mod openapi;
pub mod pairing;
pub mod routes;
pub mod surface;
pub mod throttle;
pub mod token;

use actix_web::web;

pub const TOKEN_PATH: &str = "/oauth/token";
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Every route of the server (see [`routes`]), then the fallback (404, or 405 with `Allow`).
pub fn configure(
    cfg: &mut web::ServiceConfig,
    options: routes::Options,
    document: &openapi::Document,
) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(error::json_body_error),
    )
    .app_data(web::Data::new(document.clone()));
    routes::register(cfg, options);
    cfg.default_service(web::to(surface::fallback));
}

/// A request that may have changed a client, an API key, an account or a revocation
/// answers only once this instance's in-memory view has the change (one round of the
/// change feed, about a millisecond), so that what a caller just did holds for its next
/// request here. Other instances see it within the feed's bound (`cache`). The token and
/// introspection endpoints change none of these and skip the wait. The state to catch up,
/// for such a request.
fn to_catch_up(req: &actix_web::dev::ServiceRequest) -> Option<web::Data<crate::app::AppState>> {
    let may_change = !req.method().is_safe() && !matches!(req.path(), TOKEN_PATH | INTROSPECT_PATH);
    may_change
        .then(|| req.app_data::<web::Data<crate::app::AppState>>().cloned())
        .flatten()
}
