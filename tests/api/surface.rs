//! What every answer shares: JSON errors, 405 with `Allow`, HEAD wherever GET is,
//! `nosniff`, `no-store` on private data; and tokens with a `crit` header refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use tollgate_verify::{Verifier, VerifierConfig, VerifyError};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, jwt_payload, spawn_app};

/// One sample path of every route the server has.
pub const PATHS: &[&str] = &[
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/health/live",
    "/health/ready",
    "/admin/clients",
    "/admin/clients/c1",
    "/admin/clients/c1/disable",
    "/admin/clients/c1/enable",
    "/admin/clients/c1/revoke-tokens",
    "/admin/clients/c1/rotate-secret",
    "/admin/keys",
    "/admin/keys/rotate",
    "/admin/accounts",
    "/admin/accounts/alice",
    "/admin/accounts/alice/disable",
    "/admin/accounts/alice/enable",
    "/admin/accounts/alice/keys",
    "/admin/accounts/alice/keys/k1",
    "/admin/accounts/alice/keys/k1/revoke",
    "/admin/accounts/alice/keys/k1/regenerate",
    "/admin/accounts/alice/invite",
    "/admin/accounts/alice/promote",
    "/admin/accounts/alice/demote",
    "/admin/accounts/alice/challenges",
    "/admin/audit",
    "/api/v1/me",
    "/api/v1/keys",
    "/api/v1/keys/k1",
    "/api/v1/keys/k1/revoke",
    "/api/v1/keys/k1/delete",
    "/api/v1/keys/k1/regenerate",
    "/api/v1/app-sessions/0f8e4b6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/check",
    "/api/v1/keys/list",
    "/api/v1/challenges",
    "/api/v1/challenges/list",
    "/api/v1/challenges/c1/deny",
    "/api/v1/challenges/c1/approve",
    "/v1/auth/challenges",
    "/v1/auth/api_keys",
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn allow_set(value: &str) -> Vec<String> {
    let mut set: Vec<String> = value.split(',').map(|m| m.trim().to_owned()).collect();
    set.sort();
    set
}

/// Every route: a wrong method is 405 with a JSON body and an `Allow` that lists exactly
/// the methods that are not refused; HEAD is served wherever GET is; every answer has
/// `nosniff`. Nothing is authenticated here, so a served method answers 400/401/404.
#[tokio::test]
async fn every_route_answers_wrong_methods_with_405_json_and_a_true_allow() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in PATHS {
        let mut served: Vec<String> = Vec::new();
        let mut allows: Vec<Vec<String>> = Vec::new();
        for method in METHODS {
            let response = app
                .http
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(path),
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            assert_eq!(
                headers
                    .get("x-content-type-options")
                    .map(|v| v.to_str().unwrap()),
                Some("nosniff"),
                "{method} {path}"
            );
            assert!(status != 404, "{method} {path} is a known path");
            assert!(status < 500, "{method} {path}: {status}");
            let body = response.bytes().await.unwrap();
            if *method != "HEAD" && status >= 400 {
                let json: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| panic!("{method} {path}: {status} {body:?}"));
                assert!(json["error"].is_string(), "{method} {path}: {json}");
            }
            if status == 405 {
                let allow = headers
                    .get("allow")
                    .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"));
                allows.push(allow_set(allow.to_str().unwrap()));
            } else {
                served.push((*method).to_owned());
            }
        }
        served.sort();
        assert!(!allows.is_empty(), "{path} refuses some method");
        for allow in allows {
            assert_eq!(allow, served, "{path}: Allow vs. the methods served");
        }
        assert_eq!(
            served.contains(&"GET".to_owned()),
            served.contains(&"HEAD".to_owned()),
            "{path}: HEAD wherever GET"
        );
    }
    // An unknown path is a JSON 404, whatever the method.
    for method in ["GET", "DELETE"] {
        let response = app
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url("/nope"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in [
        "/.well-known/jwks.json",
        "/health/live",
        "/.well-known/oauth-authorization-server",
    ] {
        let get = app.http.get(app.url(path)).send().await.unwrap();
        let head = app.http.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
}

/// actix's own refusals (body too large, query and path errors) come as JSON too.
#[tokio::test]
async fn framework_errors_are_json() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin_token().await;
    let response = app
        .http
        .get(app.url("/admin/audit?limit=abc"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    for path in ["/api/v1/keys", "/v1/auth/challenges", "/admin/clients"] {
        let response = app
            .http
            .post(app.url(path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(vec![b' '; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413, "{path}");
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json",
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
}

async fn get_with(app: &TestApp, path: &str, bearer: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

/// Answers with account or client data are `no-store`; the public documents keep their
/// own cache policy.
async fn private_answers_are_not_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    app.cli_json(&[
        "account", "create", "--handle", "alice", "--scope", "keys", "--json",
    ]);
    let key = app.cli_json(&[
        "api-key",
        "create",
        "--account",
        "alice",
        "--name",
        "k",
        "--scope",
        "keys",
        "--json",
    ]);
    let key = key["api_key"].as_str().unwrap();
    let mut private: Vec<(reqwest::Response, &str)> = Vec::new();
    for path in [
        "/admin/clients",
        "/admin/keys",
        "/admin/accounts",
        "/admin/accounts/alice",
        "/admin/accounts/alice/keys",
        "/admin/accounts/alice/challenges",
        "/admin/audit",
    ] {
        private.push((get_with(&app, path, &admin).await, path));
    }
    for path in ["/api/v1/me", "/api/v1/keys", "/api/v1/challenges"] {
        private.push((get_with(&app, path, key).await, path));
    }
    for (response, path) in private {
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers().get("cache-control").unwrap(),
            "no-store",
            "{path}"
        );
    }
    let jwks = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(
        jwks.headers()
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("public")
    );
}

/// `token` re-signed by the server's own active key with `extra` in its JOSE header.
fn resign(app: &TestApp, token: &str, extra: Value) -> String {
    let mut conn = app.db.conn();
    let now = chrono::Utc::now().timestamp();
    let ring =
        tollgate::service::signing_keys::load_ring(&mut conn, &app.db.master_key(), now).unwrap();
    let key = ring.active();
    let mut header = json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "at+jwt"});
    for (name, value) in extra.as_object().unwrap() {
        header[name] = value.clone();
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(jwt_payload(token).to_string())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// RFC 7515 §4.1.11: a token whose header lists `crit` extensions is refused everywhere
/// (we understand none), though the signature is genuine.
async fn tokens_with_crit_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("svc", "read", &[]);
    let rs = app.create_client("rs", "introspect", &[]);
    let ops = app.create_client("ops", "admin", &[]);
    let token = app.access_token(&client, &[]).await;
    let admin = app.access_token(&ops, &[]).await;
    // The re-signing itself is sound: without `crit` the copy is accepted.
    let plain = resign(&app, &token, json!({}));
    assert_eq!(app.introspect_as(&rs, &plain).await["active"], true);
    let verifier = Verifier::discover(VerifierConfig::new(&app.issuer, &app.issuer))
        .await
        .unwrap();
    verifier.verify_locally(&plain).await.expect("genuine copy");

    for crit in [
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": ["x-unknown"], "x-unknown": true}),
        json!({"crit": []}),
    ] {
        let forged = resign(&app, &token, crit.clone());
        assert_eq!(
            app.introspect_as(&rs, &forged).await["active"],
            false,
            "{crit}"
        );
        assert!(
            matches!(
                verifier.verify_locally(&forged).await,
                Err(VerifyError::InvalidToken(_))
            ),
            "{crit}"
        );
        let forged_admin = resign(&app, &admin, crit.clone());
        let response = get_with(&app, "/admin/clients", &forged_admin).await;
        assert_eq!(response.status(), 401, "{crit}");
        assert_eq!(
            get_with(&app, "/admin/clients", &resign(&app, &admin, json!({})))
                .await
                .status(),
            200
        );
    }
}

both_backends!(private_answers_are_not_stored, tokens_with_crit_are_refused);
