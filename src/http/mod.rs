//! HTTP: routes and thin handlers (parse, call one service, render). The only module that
//! names actix-web types, besides `startup`, which builds the server. Every error is
//! rendered by `error`.

pub mod accounts;
pub mod admin;
pub mod connection;
pub mod console;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod health;
pub mod introspection;
pub mod limits;
pub mod observe;
pub mod pairing;
pub mod surface;
pub mod throttle;
pub mod token;

use actix_web::web;

pub const TOKEN_PATH: &str = "/oauth/token";
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(error::json_body_error),
    )
    .service(
        web::resource(TOKEN_PATH)
            .route(web::post().to(token::post_token))
            .default_service(web::to(error::post_only)),
    )
    .service(
        web::resource(REVOKE_PATH)
            .route(web::post().to(introspection::post_revoke))
            .default_service(web::to(error::post_only)),
    )
    .service(
        web::resource(INTROSPECT_PATH)
            .route(web::post().to(introspection::post_introspect))
            .default_service(web::to(error::post_only)),
    )
    .service(
        web::resource(JWKS_PATH)
            .route(web::get().to(discovery::get_jwks))
            .default_service(web::to(error::get_only)),
    )
    .service(
        web::resource(METADATA_PATH)
            .route(web::get().to(discovery::get_metadata))
            .default_service(web::to(error::get_only)),
    )
    .service(web::resource("/health/live").route(web::get().to(health::get_live)))
    .service(web::resource("/health/ready").route(web::get().to(health::get_ready)))
    .service(web::scope("/admin").configure(admin::routes))
    .configure(accounts::routes)
    .configure(pairing::routes)
    .default_service(web::to(surface::fallback));
}
