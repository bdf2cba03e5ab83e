//! JWKS, RFC 8414 metadata and health probes.

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};

async fn jwks_publishes_the_signing_key_with_cache_control(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.contains("max-age="), "{cache}");
    let jwks: serde_json::Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        2,
        "the active key and the pre-published next key"
    );
    assert_ne!(keys[0]["kid"], keys[1]["kid"]);
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key["kid"].as_str().is_some());
    for key in keys {
        assert!(key.get("d").is_none(), "no private key material");
    }

    let post = app
        .http
        .post(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

async fn metadata_follows_rfc_8414(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_client("a", "read write", &[]);
    app.create_client("b", "admin read", &[]);
    let (status, meta) = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(status, 200);
    assert_eq!(meta["issuer"], app.address.as_str());
    assert_eq!(meta["token_endpoint"], app.url("/oauth/token").as_str());
    assert_eq!(meta["jwks_uri"], app.url("/.well-known/jwks.json").as_str());
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["scopes_supported"],
        serde_json::json!(["read", "write"])
    );

    // The advertised URLs work.
    let jwks = app
        .http
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
}

async fn health_probes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = app.get_json("/health/live").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json("/health/ready").await;
    assert_eq!((status, body["database"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json("/no/such/path").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

both_backends!(
    jwks_publishes_the_signing_key_with_cache_control,
    metadata_follows_rfc_8414,
    health_probes,
);
