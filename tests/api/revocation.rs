//! RFC 7009 revocation, RFC 7662 introspection, bulk revocation, and pruning.

use oauth2::basic::BasicClient;
use oauth2::{AccessToken, ClientId, ClientSecret, IntrospectionUrl, TokenIntrospectionResponse};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, Client, TestApp, TestDb, assert_oauth_error, spawn_app, spawn_app_on,
};

/// `POST /oauth/introspect` as a resource server (client credentials, Basic).
async fn introspect(app: &TestApp, caller: &Client, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&caller.id, Some(&caller.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

async fn assert_inactive(app: &TestApp, caller: &Client, token: &str, why: &str) {
    assert_eq!(
        introspect(app, caller, token).await,
        json!({"active": false}),
        "{why}"
    );
}

async fn revoke(app: &TestApp, client: &Client, token: &str) -> reqwest::StatusCode {
    app.http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap()
        .status()
}

async fn oauth2_crate_revokes_and_introspects(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client(
        "svc",
        "read write",
        &["--audience", "https://api.example.com"],
    );
    let resource_server = app.create_client("api", "introspect", &[]);
    let token = app.access_token(&client, &[("scope", "read")]).await;

    let introspector = BasicClient::new(ClientId::new(resource_server.id.clone()))
        .set_client_secret(ClientSecret::new(resource_server.secret.clone()))
        .set_introspection_url(IntrospectionUrl::new(app.url("/oauth/introspect")).unwrap());
    let answer = introspector
        .introspect(&AccessToken::new(token.clone()))
        .request_async(&app.http)
        .await
        .unwrap();
    assert!(answer.active());
    assert_eq!(
        answer.client_id().map(|c| c.as_str()),
        Some(client.id.as_str())
    );
    assert_eq!(answer.sub(), Some(client.id.as_str()));
    assert_eq!(answer.iss(), Some(app.issuer.as_str()));
    assert_eq!(
        answer
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["read".to_owned()])
    );
    assert!(answer.exp().is_some() && answer.jti().is_some());

    let raw = introspect(&app, &resource_server, &token).await;
    for member in [
        "active",
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "nbf",
        "jti",
        "token_type",
    ] {
        assert!(
            raw.get(member).is_some(),
            "introspection lacks {member}: {raw}"
        );
    }
    assert_eq!(raw["aud"], "https://api.example.com");
    assert_eq!(raw["token_type"], "Bearer");

    // The oauth2 crate refuses plain-http revocation URLs, so revoke with reqwest.
    assert_eq!(revoke(&app, &client, &token).await, 200);
    assert_inactive(&app, &resource_server, &token, "revoked").await;
    assert_eq!(
        revoke(&app, &client, &token).await,
        200,
        "revoking twice is fine"
    );

    // Another token of the same client is unaffected.
    let other = app.access_token(&client, &[]).await;
    assert_eq!(
        introspect(&app, &resource_server, &other).await["active"],
        true
    );
}

async fn revocation_refuses_nothing_and_changes_nothing_for_foreign_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.create_client("owner", "read", &[]);
    let stranger = app.create_client("stranger", "read", &[]);
    let resource_server = app.create_client("api", "introspect", &[]);
    let token = app.access_token(&owner, &[]).await;

    assert_eq!(revoke(&app, &stranger, &token).await, 200, "RFC 7009 §2.2");
    assert_eq!(
        introspect(&app, &resource_server, &token).await["active"],
        true,
        "a foreign token is untouched"
    );
    assert_eq!(revoke(&app, &owner, "garbage").await, 200);
    assert_eq!(revoke(&app, &owner, "a.b.c").await, 200);

    let unauthenticated = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_oauth_error(unauthenticated, 401, "invalid_client").await;

    let wrong = Client {
        id: owner.id.clone(),
        secret: "tgs_nope".into(),
    };
    assert_eq!(revoke(&app, &wrong, &token).await, 401);
    let missing = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&owner.id, Some(&owner.secret))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(missing, 400, "invalid_request").await;
    let get = app.http.get(app.url("/oauth/revoke")).send().await.unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    assert_oauth_error(get, 405, "invalid_request").await;
    assert_eq!(
        introspect(&app, &resource_server, &token).await["active"],
        true
    );
}

async fn introspection_requires_an_authorized_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("svc", "read", &[]);
    let token = app.access_token(&client, &[]).await;

    let anonymous = app
        .http
        .post(app.url("/oauth/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_oauth_error(anonymous, 401, "invalid_client").await;

    let plain = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_oauth_error(plain, 403, "unauthorized_client").await;

    let wrong = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth(&client.id, Some("tgs_nope"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_oauth_error(wrong, 401, "invalid_client").await;

    // An admin token works as the caller; a non-admin bearer token does not.
    let admin = app.admin_token().await;
    let as_admin = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&admin)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(as_admin.status(), 200);
    let body: Value = as_admin.json().await.unwrap();
    assert_eq!(body["active"], true);
    let admin_audience = format!("{}/admin", app.issuer);
    let reader = app.create_client("reader", "read", &["--audience", &admin_audience]);
    let reader_token = app.access_token(&reader, &[]).await;
    let as_reader = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&reader_token)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(as_reader.status(), 403);
    assert!(
        as_reader.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let as_garbage = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth("nonsense")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(as_garbage.status(), 401);
    assert!(
        as_garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

async fn introspection_says_inactive_and_nothing_else(backend: Backend) {
    let db = TestDb::new(backend);
    let app = spawn_app_on(db.clone(), "").await;
    let resource_server = app.create_client("api", "introspect", &[]);
    let client = app.create_client("svc", "read", &[]);
    let short = app.create_client("short", "read", &["--ttl", "60"]);

    let expiring = app.access_token(&short, &[]).await;
    let valid = app.access_token(&client, &[]).await;

    assert_inactive(&app, &resource_server, "garbage", "garbage").await;
    assert_inactive(&app, &resource_server, "a.b.c", "three garbage parts").await;

    let mut tampered_parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut payload = crate::helpers::jwt_payload(&valid);
    payload["scope"] = json!("read admin");
    use base64::Engine;
    tampered_parts[1] =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_inactive(
        &app,
        &resource_server,
        &tampered_parts.join("."),
        "tampered payload",
    )
    .await;

    // A token of another Tollgate (other keys): unknown kid.
    let other = spawn_app(backend).await;
    let foreign_client = other.create_client("x", "read", &[]);
    let foreign = other.access_token(&foreign_client, &[]).await;
    assert_inactive(&app, &resource_server, &foreign, "unknown kid").await;

    // Same keys and database, another issuer.
    let impostor = spawn_app_on(
        db.clone(),
        "[server]\nissuer = \"https://impostor.example\"\n",
    )
    .await;
    let impostor_token = impostor.access_token(&client, &[]).await;
    assert_inactive(&app, &resource_server, &impostor_token, "wrong issuer").await;

    assert_eq!(
        introspect(&app, &resource_server, &valid).await["active"],
        true
    );
    let output = app.cli(&["client", "disable", &client.id]);
    assert!(
        output.status.success(),
        "{}",
        crate::helpers::stderr(&output)
    );
    assert_inactive(&app, &resource_server, &valid, "client disabled").await;
    assert!(app.cli(&["client", "enable", &client.id]).status.success());
    assert_inactive(
        &app,
        &resource_server,
        &valid,
        "enabling does not revive old tokens",
    )
    .await;
    let fresh = app.access_token(&client, &[]).await;
    assert_eq!(
        introspect(&app, &resource_server, &fresh).await["active"],
        true
    );
    assert!(app.cli(&["client", "delete", &client.id]).status.success());
    assert_inactive(&app, &resource_server, &fresh, "client deleted").await;

    // Expiry, by the server's clock rather than a sleep. Last: a token issued after the
    // clock moved would carry an `nbf` ahead of the system clock.
    assert_eq!(
        introspect(&app, &resource_server, &expiring).await["active"],
        true,
        "valid within its 60 s"
    );
    app.clock.advance(60);
    assert_inactive(&app, &resource_server, &expiring, "expired").await;
}

async fn bulk_revocation_by_cli_and_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let resource_server = app.create_client("api", "introspect", &[]);
    let client = app.create_client("svc", "read", &[]);
    let before = app.access_token(&client, &[]).await;

    let output = app.cli(&["client", "revoke-tokens", &client.id]);
    assert!(output.status.success());
    assert_inactive(&app, &resource_server, &before, "revoke-tokens").await;
    // A token issued right after (even within the same second) is valid.
    let after = app.access_token(&client, &[]).await;
    assert_eq!(
        introspect(&app, &resource_server, &after).await["active"],
        true
    );

    let admin = app.admin_token().await;
    let response = app
        .http
        .post(app.url(&format!("/admin/clients/{}/revoke-tokens", client.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_inactive(&app, &resource_server, &after, "admin revoke-tokens").await;

    let last = app.access_token(&client, &[]).await;
    let output = app.cli(&[
        "client",
        "rotate-secret",
        &client.id,
        "--grace",
        "600",
        "--json",
    ]);
    assert!(output.status.success());
    assert_inactive(&app, &resource_server, &last, "secret rotation").await;
    assert_eq!(
        introspect(
            &app,
            &resource_server,
            &app.access_token(&client, &[]).await
        )
        .await["active"],
        true,
        "the old secret still works during the grace period, and its new tokens are valid"
    );

    // Revoking an admin token shuts it out of the admin API.
    let ops = app.create_client("ops2", "admin", &[]);
    let ops_token = app.access_token(&ops, &[]).await;
    assert_eq!(revoke(&app, &ops, &ops_token).await, 200);
    let refused = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth(&ops_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

async fn revocations_of_expired_tokens_are_pruned(backend: Backend) {
    let db = TestDb::new(backend);
    let app = spawn_app_on(db.clone(), "").await;
    let short = app.create_client("short", "read", &["--ttl", "1"]);
    let long = app.create_client("long", "read", &[]);
    let expiring = app.access_token(&short, &[]).await;
    let lasting = app.access_token(&long, &[]).await;
    assert_eq!(revoke(&app, &short, &expiring).await, 200);
    assert_eq!(revoke(&app, &long, &lasting).await, 200);

    let pool = tollgate::db::Db::connect(
        &tollgate::db::DbUrl::parse(&db.url).unwrap(),
        &tollgate::db::PoolOptions::default(),
    )
    .unwrap();
    let mut conn = pool.get().unwrap();
    assert_eq!(tollgate::db::revocations::count(&mut conn).unwrap(), 2);
    let later = chrono::Utc::now().timestamp() + 5;
    assert_eq!(
        tollgate::db::revocations::prune_expired(&mut conn, later).unwrap(),
        1
    );
    assert_eq!(
        tollgate::db::revocations::count(&mut conn).unwrap(),
        1,
        "the unexpired revocation stays"
    );
}

async fn metadata_lists_revocation_and_introspection(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, meta) = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["revocation_endpoint"],
        app.url("/oauth/revoke").as_str()
    );
    assert_eq!(
        meta["introspection_endpoint"],
        app.url("/oauth/introspect").as_str()
    );
    assert_eq!(
        meta["revocation_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
}

both_backends!(
    oauth2_crate_revokes_and_introspects,
    revocation_refuses_nothing_and_changes_nothing_for_foreign_tokens,
    introspection_requires_an_authorized_caller,
    introspection_says_inactive_and_nothing_else,
    bulk_revocation_by_cli_and_admin,
    revocations_of_expired_tokens_are_pruned,
    metadata_lists_revocation_and_introspection,
);
