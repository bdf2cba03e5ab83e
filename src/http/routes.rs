//! The route table: every route the server answers, in one list. [`register`] adds exactly
//! these to the app, and [`ROUTES`] lists them (method, full path, kind), so that the
//! OpenAPI document can be checked against what is really served
//! (`tests/api/openapi.rs`), and that nothing is served that the table does not list
//! (the same test refuses route registrations anywhere else under `src/`).
//!
//! Each route is a resource of its own whose method guard takes part in `Allow` (see
//! [`super::surface`]): a wrong method on a known path falls through to the fallback, which
//! answers 405 with the methods of every route of that path. An entry with `otherwise`
//! answers wrong methods with that handler instead (the OAuth endpoints' RFC 6749-shaped 405).

use actix_web::http::Method;
use actix_web::web;

use super::{
    accounts, admin, console, discovery, error, health, introspection, openapi, pairing, surface,
    token,
};

/// What a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON: described in `/openapi.json`.
    Api,
    /// An HTML page of the console (or one of its assets), for people in a browser:
    /// not part of the API description.
    Page,
}

/// One route: `path` is the full path template, as in the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub kind: Kind,
    /// The path is a resource of its own: other methods are answered 405 there, never
    /// passed on to a template that also matches it (`/keys/list` vs `/keys/{id}`).
    pub exclusive: bool,
}

/// Which optional parts of the server are on.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `console.enabled`: the console's pages and the MiAuth check.
    pub console: bool,
}

/// `when!(options)` is always on; `when!(options, flag)` follows `options.flag`.
macro_rules! when {
    ($options:ident) => {
        true
    };
    ($options:ident, $flag:ident) => {
        $options.$flag
    };
}

/// The pattern of the route that answered a request (its full path template), set on each
/// route's resource so that `observe` can label the request without routing it again.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// Adds one route to `cfg`, as a resource of its own that carries its [`RoutePattern`].
macro_rules! add_route {
    ($cfg:ident, $pattern:expr, $method:ident, $path:literal, $handler:path) => {
        // What `ServiceConfig::route` does (the guard on the resource, so that a wrong
        // method falls through), plus the pattern.
        $cfg.service(
            web::resource($path)
                .guard(surface::on(Method::$method))
                .app_data(RoutePattern($pattern))
                .route(web::route().to($handler)),
        );
    };
    ($cfg:ident, $pattern:expr, $method:ident, $path:literal, $handler:path, exclusive) => {
        $cfg.service(
            web::resource($path)
                .app_data(RoutePattern($pattern))
                .route(web::method(Method::$method).to($handler)),
        );
    };
    ($cfg:ident, $pattern:expr, $method:ident, $path:literal, $handler:path, $otherwise:path) => {
        $cfg.service(
            web::resource($path)
                .app_data(RoutePattern($pattern))
                .route(
                    web::route()
                        .guard(surface::only(Method::$method))
                        .to($handler),
                )
                .default_service(web::to($otherwise)),
        );
    };
}

/// Attaches a group's routes: at the root (prefix `""`), in a plain scope, or in a scope
/// set up by the group (middleware, body limits, its own default service).
macro_rules! attach {
    ($cfg:ident, "", $routes:ident) => {
        $routes($cfg);
    };
    ($cfg:ident, $prefix:tt, $routes:ident) => {
        $cfg.service(web::scope($prefix).configure($routes));
    };
    ($cfg:ident, $prefix:tt, $routes:ident, $scope:ident => $setup:expr) => {{
        let $scope = web::scope($prefix);
        $cfg.service($setup.configure($routes));
    }};
}

/// Whether an entry is a resource of its own (`otherwise …` or `exclusive`).
macro_rules! is_exclusive {
    () => {
        false
    };
    ($($marker:tt)+) => {
        true
    };
}

/// Declares the table: `ROUTES` and `register` from one list of groups. A group's routes
/// are registered in order, groups in order (a scope takes every path under its prefix,
/// so a path under another group's prefix must come first).
macro_rules! route_table {
    ($(
        $group:ident: $kind:ident $(if $flag:ident)? at $prefix:tt
            $(with($scope:ident => $setup:expr))? {
            $( $method:ident $path:literal => $handler:path
                $([$exclusive:ident])? $(, otherwise $otherwise:path)? ; )*
        }
    )*) => {
        /// Every route of the server, in registration order.
        pub const ROUTES: &[RouteInfo] = &[$($(
            RouteInfo {
                method: stringify!($method),
                path: concat!($prefix, $path),
                kind: Kind::$kind,
                exclusive: is_exclusive!($($otherwise)? $($exclusive)?),
            },
        )*)*];

        /// Registers every route of [`ROUTES`] (those of the enabled parts).
        pub fn register(cfg: &mut web::ServiceConfig, options: Options) {
            $(
                if when!(options $(, $flag)?) {
                    let $group = |cfg: &mut web::ServiceConfig| {
                        $( add_route!(cfg, concat!($prefix, $path), $method, $path, $handler $(, $otherwise)? $(, $exclusive)?); )*
                    };
                    attach!(cfg, $prefix, $group $(, $scope => $setup)?);
                }
            )*
        }
    };
}

route_table! {
    // First: the hot path. A request is matched against the routes in order, and these
    // are fixed paths (no pattern to run).
    oauth: Api at "" {
        POST "/oauth/token" => token::post_token, otherwise error::post_only;
        POST "/oauth/revoke" => introspection::post_revoke, otherwise error::post_only;
        POST "/oauth/introspect" => introspection::post_introspect, otherwise error::post_only;
    }

    // The app's half of MiAuth is an API call, not a page: JSON, no cookies. Before
    // `/api/v1`, whose scope would take it; in a scope of its own, so that other requests
    // pass it by a prefix comparison instead of running its pattern.
    miauth: Api if console at "/api/v1/app-sessions" {
        POST "/{session}/check" => console::apps::post_check;
    }

    console: Page if console at "/console" with(scope => console::scope(scope)) {
        GET "" => console::get_home;
        GET "/" => console::get_home;
        GET "/static/{name}" => console::assets::get_asset;
        GET "/sign-in" => console::auth::get_sign_in;
        POST "/sign-in" => console::auth::post_sign_in;
        GET "/sign-in/second-factor" => console::auth::get_second_factor;
        POST "/sign-in/second-factor" => console::auth::post_second_factor;
        POST "/sign-out" => console::auth::post_sign_out;
        GET "/account" => console::account::get_account;
        POST "/account/password" => console::account::post_password;
        GET "/account/second-factor" => console::account::get_second_factor;
        POST "/account/second-factor" => console::account::post_second_factor;
        POST "/account/second-factor/disable" => console::account::post_disable_second_factor;
        POST "/account/sessions/end-others" => console::account::post_end_other_sessions;
        POST "/account/sessions/{id}/end" => console::account::post_end_session;
        GET "/invite/{token}" => console::auth::get_invite;
        POST "/invite/{token}" => console::auth::post_invite;
        GET "/apps" => console::apps::get_apps;
        POST "/apps/{id}/deny" => console::apps::post_deny;
        GET "/authorize-app" => console::apps::get_authorize;
        POST "/authorize-app" => console::apps::post_authorize;
        GET "/keys" => console::keys::get_keys;
        POST "/keys" => console::keys::post_key;
        GET "/keys/{id}/{action}" => console::keys::get_key_action;
        POST "/keys/{id}/{action}" => console::keys::post_key_action;
        GET "/operator" => console::operator::get_operator_home;
        GET "/operator/" => console::operator::get_operator_home;
        GET "/operator/clients" => console::operator::clients::get_clients;
        POST "/operator/clients" => console::operator::clients::post_client;
        GET "/operator/clients/{id}" => console::operator::clients::get_client;
        POST "/operator/clients/{id}" => console::operator::clients::post_client_update;
        GET "/operator/clients/{id}/{action}" => console::operator::clients::get_client_action;
        POST "/operator/clients/{id}/{action}" => console::operator::clients::post_client_action;
        GET "/operator/signing-keys" => console::operator::signing_keys::get_signing_keys;
        GET "/operator/signing-keys/rotate" => console::operator::signing_keys::get_rotate;
        POST "/operator/signing-keys/rotate" => console::operator::signing_keys::post_rotate;
        GET "/operator/accounts" => console::operator::accounts::get_accounts;
        POST "/operator/accounts" => console::operator::accounts::post_account;
        GET "/operator/accounts/{handle}/{action}" => console::operator::accounts::get_account_action;
        POST "/operator/accounts/{handle}/{action}" => console::operator::accounts::post_account_action;
        GET "/operator/audit" => console::operator::audit::get_audit;
    }

    discovery: Api at "" {
        GET "/.well-known/jwks.json" => discovery::get_jwks, otherwise error::get_only;
        GET "/.well-known/oauth-authorization-server" => discovery::get_metadata, otherwise error::get_only;
        GET "/openapi.json" => openapi::get_openapi, otherwise error::get_only;
    }

    health: Api at "" {
        GET "/health/live" => health::get_live;
        GET "/health/ready" => health::get_ready;
    }

    admin: Api at "/admin" {
        GET "/clients" => admin::clients::list_clients;
        POST "/clients" => admin::clients::post_client;
        GET "/clients/{id}" => admin::clients::get_client;
        PATCH "/clients/{id}" => admin::clients::patch_client;
        DELETE "/clients/{id}" => admin::clients::delete_client;
        POST "/clients/{id}/disable" => admin::clients::post_disable_client;
        POST "/clients/{id}/enable" => admin::clients::post_enable_client;
        POST "/clients/{id}/revoke-tokens" => admin::clients::post_revoke_tokens;
        POST "/clients/{id}/rotate-secret" => admin::clients::post_rotate_secret;
        GET "/keys" => admin::keys::list_keys;
        POST "/keys/rotate" => admin::keys::post_rotate_key;
        GET "/accounts" => admin::accounts::list_accounts;
        POST "/accounts" => admin::accounts::post_account;
        GET "/accounts/{handle}" => admin::accounts::get_account;
        DELETE "/accounts/{handle}" => admin::accounts::delete_account;
        POST "/accounts/{handle}/disable" => admin::accounts::post_disable;
        POST "/accounts/{handle}/enable" => admin::accounts::post_enable;
        POST "/accounts/{handle}/invite" => admin::accounts::post_invite;
        POST "/accounts/{handle}/promote" => admin::accounts::post_promote;
        POST "/accounts/{handle}/demote" => admin::accounts::post_demote;
        GET "/accounts/{handle}/keys" => admin::accounts::list_keys;
        POST "/accounts/{handle}/keys" => admin::accounts::post_key;
        DELETE "/accounts/{handle}/keys/{id}" => admin::accounts::delete_key;
        POST "/accounts/{handle}/keys/{id}/revoke" => admin::accounts::post_revoke_key;
        POST "/accounts/{handle}/keys/{id}/regenerate" => admin::accounts::post_regenerate_key;
        GET "/accounts/{handle}/challenges" => admin::accounts::list_challenges;
        GET "/audit" => admin::audit::get_audit;
    }

    // Every call also answers POST with the credential in the body (`i` in JSON, as
    // Misskey clients send it, or `access_token` in a form); calls whose natural method is
    // GET or DELETE get a POST path of their own.
    account_api: Api at "/api/v1" with(scope => accounts::scope(scope)) {
        GET "/me" => accounts::get_me;
        POST "/me" => accounts::post_me;
        GET "/keys" => accounts::get_keys;
        POST "/keys" => accounts::post_key;
        // Exclusive: `DELETE /keys/{id}` would take `DELETE /keys/list` for a key "list".
        POST "/keys/list" => accounts::post_list_keys [exclusive];
        DELETE "/keys/{id}" => accounts::delete_key;
        POST "/keys/{id}/delete" => accounts::post_delete_key;
        POST "/keys/{id}/revoke" => accounts::post_revoke_key;
        POST "/keys/{id}/regenerate" => accounts::post_regenerate_key;
        GET "/challenges" => accounts::get_challenges;
        POST "/challenges/list" => accounts::post_list_challenges;
        POST "/challenges/{id}/deny" => accounts::post_deny_challenge;
        POST "/challenges/{id}/approve" => accounts::post_approve_challenge;
    }

    pairing: Api at "/v1/auth" with(scope => accounts::scope(scope)) {
        POST "/challenges" => pairing::post_challenge;
        POST "/api_keys" => pairing::post_redeem_challenge;
    }
}

/// The JSON API's routes (what `/openapi.json` must describe).
pub fn api_routes() -> impl Iterator<Item = &'static RouteInfo> {
    ROUTES.iter().filter(|route| route.kind == Kind::Api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_listed_twice() {
        for (i, route) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|r| r.method == route.method && r.path == route.path),
                "{} {} is listed twice",
                route.method,
                route.path
            );
        }
    }

    fn matches(template: &str, path: &str) -> bool {
        let (t, p): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    }

    /// A literal path that a template of other methods also matches must be a resource of
    /// its own, or a wrong method on it would reach the template's handler (and `Allow`
    /// would list the template's methods).
    #[test]
    fn literal_paths_shadowed_by_templates_are_exclusive() {
        for literal in ROUTES.iter().filter(|r| !r.path.contains('{')) {
            for template in ROUTES.iter().filter(|r| r.path.contains('{')) {
                let same_methods = ROUTES
                    .iter()
                    .filter(|r| r.path == literal.path)
                    .all(|r| r.method == template.method);
                if matches(template.path, literal.path) && !same_methods {
                    assert!(
                        literal.exclusive,
                        "{} {} is also matched by {} {}: mark it exclusive",
                        literal.method, literal.path, template.method, template.path
                    );
                }
            }
        }
    }

    #[test]
    fn every_method_is_a_method_and_every_path_is_absolute() {
        for route in ROUTES {
            assert!(
                ["GET", "POST", "PATCH", "DELETE", "PUT"].contains(&route.method),
                "{route:?}"
            );
            assert!(route.path.starts_with('/'), "{route:?}");
        }
    }
}
