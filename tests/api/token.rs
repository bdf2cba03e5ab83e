//! `POST /oauth/token`: the client-credentials grant end to end, and every error case.

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, Client, assert_oauth_error, jwt_payload, spawn_app, spawn_app_with};

async fn oauth2_exchange(
    app: &crate::helpers::TestApp,
    client: &Client,
    auth_type: AuthType,
    scopes: &[&str],
) -> oauth2::basic::BasicTokenResponse {
    let oauth = BasicClient::new(ClientId::new(client.id.clone()))
        .set_client_secret(ClientSecret::new(client.secret.clone()))
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap())
        .set_auth_type(auth_type);
    let mut request = oauth.exchange_client_credentials();
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    request
        .request_async(&app.http)
        .await
        .expect("client credentials exchange")
}

async fn oauth2_crate_gets_a_verifiable_rfc9068_token_with_basic_auth(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("billing", "read write", &["--ttl", "600"]);

    let before = chrono::Utc::now().timestamp();
    let token = oauth2_exchange(&app, &client, AuthType::BasicAuth, &["read"]).await;
    assert_eq!(token.token_type().as_ref(), "bearer");
    assert_eq!(token.expires_in().map(|d| d.as_secs()), Some(600));
    let granted: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(granted, ["read"]);

    let jwt = token.access_token().secret();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let jwks = app.jwks().await;
    assert!(
        jwks.find(header.kid.as_deref().unwrap()).is_some(),
        "kid is published"
    );

    let claims = app
        .verify(jwt, &app.address)
        .await
        .expect("token verifies against JWKS");
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["sub"], client.id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(
        claims["aud"],
        app.address.as_str(),
        "server default audience"
    );
    assert_eq!(claims["scope"], "read");
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= chrono::Utc::now().timestamp());
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 600));
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    let other = oauth2_exchange(&app, &client, AuthType::BasicAuth, &["read"]).await;
    assert_ne!(
        jwt_payload(other.access_token().secret())["jti"],
        claims["jti"],
        "every token has its own jti"
    );
}

async fn oauth2_crate_gets_a_token_with_client_secret_post(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("reports", "read write", &[]);
    let token = oauth2_exchange(&app, &client, AuthType::RequestBody, &[]).await;
    let claims = app
        .verify(token.access_token().secret(), &app.address)
        .await
        .unwrap();
    assert_eq!(
        claims["scope"], "read write",
        "no scope requested: the client's scopes"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

async fn success_response_is_not_cacheable(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("c", "read", &[]);
    let response = app
        .token_request(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
}

async fn basic_credentials_are_form_urlencoded(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("c", "read", &[]);
    // The secret is URL-safe, so encoding changes nothing; a percent-encoded letter checks
    // that the server decodes before comparing (RFC 6749 §2.3.1).
    let first_letter = client.id.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let mut id = client.id.clone();
    let letter = id.remove(first_letter);
    id.insert_str(first_letter, &format!("%{:02X}", letter as u8));
    assert_ne!(id, client.id);
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], client.id.as_str(), "the decoded id");
}

async fn scope_rules_follow_rfc_6749_section_3_3(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("c", "read write admin:x", &[]);
    let body = app.token(&client, &[("scope", "write read")]).await;
    assert_eq!(body["scope"], "write read");
    let body = app.token(&client, &[]).await;
    assert_eq!(body["scope"], "read write admin:x");

    for bad_scope in ["read delete", "re\"ad", "read  write"] {
        let response = app
            .token_request(
                Some(&client),
                &[("grant_type", "client_credentials"), ("scope", bad_scope)],
            )
            .await;
        assert_eq!(response.status(), 400, "scope {bad_scope:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_scope", "scope {bad_scope:?}");
        assert!(body["error_description"].as_str().is_some());
    }
}

async fn audience_rules_follow_rfc_8707(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client(
        "c",
        "read",
        &[
            "--audience",
            "https://api.example.com",
            "--audience",
            "https://files.example.com",
        ],
    );
    let token = app.access_token(&client, &[]).await;
    assert_eq!(
        jwt_payload(&token)["aud"],
        "https://api.example.com",
        "first allowed audience"
    );

    let token = app
        .access_token(&client, &[("resource", "https://files.example.com")])
        .await;
    app.verify(&token, "https://files.example.com")
        .await
        .unwrap();

    let token = app
        .access_token(&client, &[("audience", "https://files.example.com")])
        .await;
    assert_eq!(jwt_payload(&token)["aud"], "https://files.example.com");

    let token = app
        .access_token(
            &client,
            &[
                ("resource", "https://api.example.com"),
                ("resource", "https://files.example.com"),
            ],
        )
        .await;
    assert_eq!(
        jwt_payload(&token)["aud"],
        serde_json::json!(["https://api.example.com", "https://files.example.com"])
    );

    for (name, value) in [
        ("resource", "https://evil.example.com"),
        ("resource", "not-a-uri"),
        ("resource", "https://api.example.com#frag"),
        ("audience", "https://evil.example.com"),
    ] {
        let response = app
            .token_request(
                Some(&client),
                &[("grant_type", "client_credentials"), (name, value)],
            )
            .await;
        assert_eq!(response.status(), 400, "{name}={value}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_target", "{name}={value}");
    }
}

async fn client_ttl_is_capped_by_the_configured_maximum(backend: Backend) {
    let app = spawn_app_with(
        backend,
        "[tokens]\ndefault_ttl_seconds = 300\nmax_ttl_seconds = 900\n",
    )
    .await;
    let long = app.create_client("long", "read", &["--ttl", "86400"]);
    assert_eq!(app.token(&long, &[]).await["expires_in"], 900);
    let default = app.create_client("default", "read", &[]);
    let token = app.token(&default, &[]).await;
    assert_eq!(token["expires_in"], 300);
    let claims = jwt_payload(token["access_token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
}

async fn client_authentication_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("c", "read", &[]);
    let grant = [("grant_type", "client_credentials")];

    let wrong_secret = Client {
        id: client.id.clone(),
        secret: "tgs_wrong".into(),
    };
    assert_oauth_error(
        app.token_request(Some(&wrong_secret), &grant).await,
        401,
        "invalid_client",
    )
    .await;

    let unknown = Client {
        id: "nobody".into(),
        secret: client.secret.clone(),
    };
    let body = assert_oauth_error(
        app.token_request(Some(&unknown), &grant).await,
        401,
        "invalid_client",
    )
    .await;
    let wrong = assert_oauth_error(
        app.token_request(Some(&wrong_secret), &grant).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(body, wrong, "unknown client and wrong secret look the same");

    assert_oauth_error(app.token_request(None, &grant).await, 401, "invalid_client").await;

    let both = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(both, 400, "invalid_request").await;

    let bearer = app
        .http
        .post(app.url("/oauth/token"))
        .bearer_auth("abc")
        .form(&grant)
        .send()
        .await
        .unwrap();
    assert_oauth_error(bearer, 401, "invalid_client").await;

    // A NUL byte (PostgreSQL refuses it in text) is just an unknown client.
    let nul = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "a\u{0}b"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(nul, 401, "invalid_client").await;

    let output = app.cli(&["client", "disable", &client.id]);
    assert!(output.status.success());
    assert_oauth_error(
        app.token_request(Some(&client), &grant).await,
        401,
        "invalid_client",
    )
    .await;
}

async fn malformed_requests_get_rfc_6749_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("c", "read", &[]);

    let missing = app.token_request(Some(&client), &[("scope", "read")]).await;
    assert_oauth_error(missing, 400, "invalid_request").await;

    let unsupported = app
        .token_request(Some(&client), &[("grant_type", "password")])
        .await;
    assert_oauth_error(unsupported, 400, "unsupported_grant_type").await;

    let duplicate = app
        .token_request(
            Some(&client),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_oauth_error(duplicate, 400, "invalid_request").await;

    let json = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json, 400, "invalid_request").await;

    let no_content_type = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_oauth_error(no_content_type, 400, "invalid_request").await;

    let huge = format!("grant_type=client_credentials&scope={}", "a".repeat(9000));
    let too_large = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_oauth_error(too_large, 413, "invalid_request").await;

    let get = app.http.get(app.url("/oauth/token")).send().await.unwrap();
    assert_eq!(get.headers()["allow"], "POST");
    assert_oauth_error(get, 405, "invalid_request").await;

    let not_utf8 = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'g', 0xff, 0xfe, b'=', b'1'])
        .send()
        .await
        .unwrap();
    assert_oauth_error(not_utf8, 400, "invalid_request").await;

    // Nothing above broke the server.
    assert_eq!(app.token(&client, &[]).await["token_type"], "Bearer");
}

both_backends!(
    oauth2_crate_gets_a_verifiable_rfc9068_token_with_basic_auth,
    oauth2_crate_gets_a_token_with_client_secret_post,
    success_response_is_not_cacheable,
    basic_credentials_are_form_urlencoded,
    scope_rules_follow_rfc_6749_section_3_3,
    audience_rules_follow_rfc_8707,
    client_ttl_is_capped_by_the_configured_maximum,
    client_authentication_errors,
    malformed_requests_get_rfc_6749_errors,
);
