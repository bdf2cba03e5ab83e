//! `tollgate_verify` against a live Tollgate: the attacks a resource server must refuse,
//! key rotation, introspection mode, and the example resource server over HTTP.

use std::net::TcpListener;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tollgate_verify::{Verifier, VerifierConfig, VerifyError};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, jwt_payload, spawn_app, spawn_app_on};

#[path = "../../examples/resource_server.rs"]
mod resource_server;

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token with the same claims as `token` but another header and signature.
fn forge(token: &str, header: Value, signature: &[u8]) -> String {
    let payload = token.split('.').nth(1).unwrap();
    format!(
        "{}.{payload}.{}",
        encode(&header),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn verifier(app: &TestApp) -> Verifier {
    Verifier::discover(
        VerifierConfig::new(&app.issuer, &app.issuer)
            .with_leeway(Duration::ZERO)
            .with_min_refresh_interval(Duration::ZERO),
    )
    .await
    .expect("discovery")
}

fn assert_invalid(result: Result<tollgate_verify::VerifiedToken, VerifyError>, what: &str) {
    assert!(
        matches!(result, Err(VerifyError::InvalidToken(_))),
        "{what}: expected invalid_token, got {result:?}"
    );
}

async fn verifier_refuses_the_classic_attacks(backend: Backend) {
    let db = TestDb::new(backend);
    let app = spawn_app_on(db.clone(), "").await;
    let client = app.create_client("svc", "read", &[]);
    let token = app.access_token(&client, &[]).await;
    let verifier = verifier(&app).await;
    let verified = verifier
        .verify_with_scopes(&token, &["read"])
        .await
        .expect("a genuine token verifies");
    assert_eq!(verified.client_id, client.id);
    assert_eq!(verified.scopes, ["read"]);

    let header = jsonwebtoken::decode_header(&token).unwrap();
    let kid = header.kid.clone().unwrap();

    // alg: none, with and without a signature.
    let none = forge(
        &token,
        json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        b"",
    );
    assert_invalid(verifier.verify(&none).await, "alg none");
    assert_invalid(
        verifier.verify(none.trim_end_matches('.')).await,
        "alg none, two parts",
    );

    // HS256 "signed" with the public key (as PEM-less raw JWK text and as the EC point).
    let (status, jwks) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let signing_input =
        |header: &Value| format!("{}.{}", encode(header), token.split('.').nth(1).unwrap());
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    for secret in [
        jwk.to_string().into_bytes(),
        [
            URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap(),
            URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap(),
        ]
        .concat(),
    ] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let tag = ring::hmac::sign(&key, signing_input(&hs_header).as_bytes());
        let forged = forge(&token, hs_header.clone(), tag.as_ref());
        assert_invalid(verifier.verify(&forged).await, "HS256 with the public key");
    }

    // Missing kid, wrong typ.
    let mut no_kid = serde_json::to_value(&header).unwrap();
    no_kid.as_object_mut().unwrap().remove("kid");
    let signature = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(2).unwrap())
        .unwrap();
    assert_invalid(
        verifier.verify(&forge(&token, no_kid, &signature)).await,
        "missing kid",
    );
    let mut plain_jwt = serde_json::to_value(&header).unwrap();
    plain_jwt["typ"] = json!("JWT");
    assert_invalid(
        verifier.verify(&forge(&token, plain_jwt, &signature)).await,
        "typ JWT (an ID token, say)",
    );

    // Tampered payload.
    let mut claims = crate::helpers::jwt_payload(&token);
    claims["scope"] = json!("read admin");
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], encode(&claims), parts[2]);
    assert_invalid(verifier.verify(&tampered).await, "tampered payload");

    // A token from another issuer (same keys, other iss) and from another server entirely.
    let impostor = spawn_app_on(
        db.clone(),
        "[server]\nissuer = \"https://impostor.example\"\n",
    )
    .await;
    assert_invalid(
        verifier
            .verify(&impostor.access_token(&client, &[]).await)
            .await,
        "wrong issuer",
    );
    let other = spawn_app(backend).await;
    let other_client = other.create_client("x", "read", &[]);
    assert_invalid(
        verifier
            .verify(&other.access_token(&other_client, &[]).await)
            .await,
        "other server",
    );

    // Wrong audience.
    let elsewhere = app.create_client(
        "elsewhere",
        "read",
        &["--audience", "https://other-api.example"],
    );
    assert_invalid(
        verifier
            .verify(&app.access_token(&elsewhere, &[]).await)
            .await,
        "wrong audience",
    );

    // Expired (no leeway configured here). The verifier reads the system clock, so rather
    // than sleeping past `exp`, the server issues a token from ten seconds ago.
    let short = app.create_client("short", "read", &["--ttl", "3"]);
    let fresh = app.access_token(&short, &[]).await;
    verifier
        .verify(&fresh)
        .await
        .expect("valid before it expires");
    app.clock.advance(-10);
    let expired = app.access_token(&short, &[]).await;
    app.clock.advance(10);
    assert!(jwt_payload(&expired)["exp"].as_i64().unwrap() < chrono::Utc::now().timestamp());
    assert_eq!(
        verifier.verify(&expired).await.err(),
        Some(VerifyError::InvalidToken("the token has expired".into()))
    );

    // Missing scope: the error names only what the token lacks, not what it has.
    assert_eq!(
        verifier.verify_with_scopes(&token, &["write"]).await.err(),
        Some(VerifyError::InsufficientScope(vec!["write".into()]))
    );
    assert_eq!(
        verifier
            .verify_with_scopes(&token, &["read", "write", "admin"])
            .await
            .err(),
        Some(VerifyError::InsufficientScope(vec![
            "write".into(),
            "admin".into()
        ]))
    );

    // HMAC or an empty list cannot even be configured.
    let hmac = VerifierConfig::new(&app.issuer, &app.issuer)
        .with_algorithms(vec![jsonwebtoken::Algorithm::HS256]);
    assert!(matches!(
        Verifier::discover(hmac).await,
        Err(VerifyError::Config(_))
    ));
}

async fn verifier_follows_key_rotation_and_introspection(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("svc", "read", &[]);
    let resource_server = app.create_client("api", "introspect", &[]);
    let verifier = verifier(&app).await;
    let before = app.access_token(&client, &[]).await;
    verifier.verify(&before).await.unwrap();
    let published_before: Vec<String> = app
        .jwks()
        .await
        .keys
        .into_iter()
        .map(|jwk| jwk.common.key_id.expect("kid"))
        .collect();

    // A key that was not pre-published (an immediate rotation): the verifier refetches the
    // JWKS on the unknown kid.
    let output = app.cli(&[
        "signing-key",
        "rotate",
        "--algorithm",
        "EdDSA",
        "--immediately",
    ]);
    assert!(output.status.success());
    let switched = crate::helpers::eventually(5, || async {
        let token = app.access_token(&client, &[]).await;
        jsonwebtoken::decode_header(&token).unwrap().alg == jsonwebtoken::Algorithm::EdDSA
    })
    .await;
    assert!(switched);
    let after = app.access_token(&client, &[]).await;
    let new_kid = jsonwebtoken::decode_header(&after).unwrap().kid.unwrap();
    assert!(
        !published_before.contains(&new_kid),
        "the new key was unknown to the verifier: {new_kid} in {published_before:?}"
    );
    verifier
        .verify(&after)
        .await
        .expect("new key fetched on unknown kid");
    verifier
        .verify(&before)
        .await
        .expect("retired key still trusted");

    // Introspection mode sees a revocation at once; local checks cannot.
    let strict = Verifier::discover(
        VerifierConfig::new(&app.issuer, &app.issuer)
            .with_introspection(&resource_server.id, &resource_server.secret),
    )
    .await
    .unwrap();
    strict.verify(&after).await.unwrap();
    let revoked = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", after.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_invalid(
        strict.verify(&after).await,
        "revoked, seen through introspection",
    );
    verifier
        .verify(&after)
        .await
        .expect("a local-only verifier cannot know");
}

async fn example_resource_server_protects_its_routes(backend: Backend) {
    let app = spawn_app(backend).await;
    let reader = app.create_client("reader", "read", &[]);
    let writer = app.create_client("writer", "read write admin:reports", &[]);
    let resource_server = app.create_client("api", "introspect", &[]);
    let config = VerifierConfig::new(&app.issuer, &app.issuer);
    let verifier = Verifier::discover(config.clone()).await.unwrap();
    let strict =
        Verifier::discover(config.with_introspection(&resource_server.id, &resource_server.secret))
            .await
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = resource_server::build(listener, verifier, Some(strict)).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let http = &app.http;

    let anonymous = http.get(format!("{base}/reports")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=")
    );

    let garbage = http
        .get(format!("{base}/reports"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    assert!(
        garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    let read_token = app.access_token(&reader, &[]).await;
    let ok = http
        .get(format!("{base}/reports"))
        .bearer_auth(&read_token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["for"], reader.id.as_str());

    let forbidden = http
        .post(format!("{base}/reports"))
        .bearer_auth(&read_token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"write\""),
        "{challenge}"
    );

    let write_token = app.access_token(&writer, &[]).await;
    let created = http
        .post(format!("{base}/reports"))
        .bearer_auth(&write_token)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let whoami = http
        .get(format!("{base}/whoami"))
        .bearer_auth(&write_token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let whoami: Value = whoami.json().await.unwrap();
    assert_eq!(whoami["client_id"], writer.id.as_str());

    // DELETE goes through introspection: a revoked token is refused at once.
    let deleted = http
        .delete(format!("{base}/reports"))
        .bearer_auth(&write_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let revoked = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&writer.id, Some(&writer.secret))
        .form(&[("token", write_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let refused = http
        .delete(format!("{base}/reports"))
        .bearer_auth(&write_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    handle.stop(true).await;
}

both_backends!(
    verifier_refuses_the_classic_attacks,
    verifier_follows_key_rotation_and_introspection,
    example_resource_server_protects_its_routes,
);
