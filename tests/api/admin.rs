//! The admin API: bearer authentication (RFC 6750) and client / key management.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, Client, TestApp, jwt_payload, spawn_app};

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    crate::helpers::status_and_json(request.send().await.unwrap()).await
}

async fn admin_api_requires_an_admin_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;

    let none = app
        .http
        .get(app.url("/admin/clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"tollgate\""
    );

    let garbage = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    let challenge = garbage.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );

    // A token for the admin audience, without the admin scope.
    let admin_audience = format!("{}/admin", app.issuer);
    let reader = app.create_client("reader", "read", &["--audience", &admin_audience]);
    let token = app.access_token(&reader, &[]).await;
    let resource_token = app
        .access_token(&app.create_client("plain", "read", &[]), &[])
        .await;
    let wrong_audience = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth(&resource_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong_audience.status(),
        401,
        "a resource server's token is no admin token"
    );
    let forbidden = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""),
        "{challenge}"
    );

    // A token for another audience is not an admin token, even with the admin scope.
    let elsewhere = app.create_client(
        "elsewhere",
        "admin",
        &["--audience", "https://api.example.com"],
    );
    let token = app.access_token(&elsewhere, &[]).await;
    let wrong_aud = app
        .http
        .get(app.url("/admin/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_aud.status(), 401);

    // A tampered token fails.
    let admin = app.admin_token().await;
    let mut parts: Vec<String> = admin.split('.').map(str::to_owned).collect();
    let mut payload = jwt_payload(&admin);
    payload["scope"] = json!("admin read");
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let tampered = parts.join(".");
    assert_ne!(tampered, admin);
    let (status, body) = call(
        &app,
        reqwest::Method::GET,
        "/admin/clients",
        &tampered,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    let (status, body) = call(&app, reqwest::Method::GET, "/admin/clients", &admin, None).await;
    assert_eq!(status, 200);
    assert!(body["clients"].as_array().unwrap().len() >= 3);
}

async fn admin_manages_clients_end_to_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    use reqwest::Method;

    let (status, created) = call(
        &app,
        Method::POST,
        "/admin/clients",
        &admin,
        Some(json!({
            "name": "payments",
            "scopes": ["read", "write"],
            "audiences": ["https://pay.example.com"],
            "token_ttl": 120
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tgs_") && secret.len() >= 47);
    let client = Client {
        id: id.clone(),
        secret: secret.clone(),
    };
    let token = app.token(&client, &[]).await;
    assert_eq!(token["expires_in"], 120);
    assert_eq!(
        jwt_payload(token["access_token"].as_str().unwrap())["aud"],
        "https://pay.example.com"
    );

    let (status, shown) = call(
        &app,
        Method::GET,
        &format!("/admin/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["name"], "payments");
    assert!(
        shown.get("client_secret").is_none(),
        "the secret is shown once only"
    );
    assert!(!shown.to_string().contains(&secret));

    let (status, listed) = call(&app, Method::GET, "/admin/clients", &admin, None).await;
    assert_eq!(status, 200);
    assert!(!listed.to_string().contains(&secret));

    let (status, updated) = call(&app, Method::PATCH, &format!("/admin/clients/{id}"), &admin, Some(json!({
        "scopes": "read", "audiences": ["https://pay.example.com", "https://ledger.example.com"], "token_ttl": null
    }))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["scopes"], json!(["read"]));
    assert_eq!(updated["token_ttl"], Value::Null);
    let response = app
        .token_request(
            Some(&client),
            &[("grant_type", "client_credentials"), ("scope", "write")],
        )
        .await;
    assert_eq!(response.status(), 400, "write was removed");
    assert_eq!(app.token(&client, &[]).await["expires_in"], 3600);

    let (status, body) = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        &admin,
        Some(json!({"scopes": "bad\"scope"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        &admin,
        Some(json!({"token_ttl": -5})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{id}"),
        &admin,
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused");

    let (status, disabled) = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{id}/disable"),
        &admin,
        None,
    )
    .await;
    assert_eq!((status, disabled["disabled"].as_bool()), (200, Some(true)));
    let response = app
        .token_request(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 401);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{id}/enable"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    app.token(&client, &[]).await;

    // Rotation with a grace period: both secrets work, then only the new one.
    let (status, rotated) = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{id}/rotate-secret"),
        &admin,
        Some(json!({"grace_seconds": 300})),
    )
    .await;
    assert_eq!(status, 200);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    app.token(&client, &[]).await;
    let new_client = Client {
        id: id.clone(),
        secret: new_secret.clone(),
    };
    app.token(&new_client, &[]).await;
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("/admin/clients/{id}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    for stale in [&client, &new_client] {
        let response = app
            .token_request(Some(stale), &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(
            response.status(),
            401,
            "rotation without grace ends the old secret at once"
        );
    }

    // A malformed rotation body is an error, not a silent "no grace".
    let malformed = app
        .http
        .post(app.url(&format!("/admin/clients/{id}/rotate-secret")))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{grace_seconds: 600")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Taking the admin scope away from an operator ends its tokens on the admin API.
    let ops2 = app.create_client("ops2", "admin", &[]);
    let ops2_token = app.access_token(&ops2, &[]).await;
    let (status, _) = call(&app, Method::GET, "/admin/keys", &ops2_token, None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/admin/clients/{}", ops2.id),
        &admin,
        Some(json!({"scopes": "read"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&app, Method::GET, "/admin/keys", &ops2_token, None).await;
    assert_eq!(status, 401);

    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/admin/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/admin/clients/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    let (status, body) = call(
        &app,
        Method::POST,
        "/admin/clients",
        &admin,
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let bad_json = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
}

async fn key_rotation_keeps_old_tokens_valid(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let client = app.create_client("svc", "read", &[]);
    let old_token = app.access_token(&client, &[]).await;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();

    let (status, rotated) = call(
        &app,
        reqwest::Method::POST,
        "/admin/keys/rotate",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 201);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    let new_token = app.access_token(&client, &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    app.verify(&new_token, &app.address)
        .await
        .expect("new token verifies");
    app.verify(&old_token, &app.address)
        .await
        .expect("old token still verifies");

    let (status, keys) = call(&app, reqwest::Method::GET, "/admin/keys", &admin, None).await;
    assert_eq!(status, 200);
    let states: Vec<(String, String)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(states.contains(&(new_kid.clone(), "active".into())));
    assert!(states.contains(&(old_kid.clone(), "retired".into())));
    assert_eq!(states.iter().filter(|(_, s)| s == "next").count(), 1);

    // The admin token signed by the old key still works too.
    let (status, _) = call(&app, reqwest::Method::GET, "/admin/keys", &admin, None).await;
    assert_eq!(status, 200);
}

both_backends!(
    admin_api_requires_an_admin_bearer_token,
    admin_manages_clients_end_to_end,
    key_rotation_keeps_old_tokens_valid,
);
