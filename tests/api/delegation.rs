//! Key delegation through every path (pairing included), the shared guessing budget, the
//! account API's POST variants, unknown JSON fields, and API keys at `/oauth/revoke`.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_on, status_and_json};

fn create_account(app: &TestApp, handle: &str, scope: &str) {
    app.cli_json(&[
        "account", "create", "--handle", handle, "--scope", scope, "--json",
    ]);
}

/// A key of `handle` with `scope`, optionally expiring: (id, secret).
fn create_key(
    app: &TestApp,
    handle: &str,
    scope: &str,
    expires_in: Option<&str>,
) -> (String, String) {
    let mut args = vec![
        "api-key",
        "create",
        "--account",
        handle,
        "--name",
        "k",
        "--scope",
        scope,
        "--json",
    ];
    if let Some(seconds) = expires_in {
        args.extend(["--expires-in", seconds]);
    }
    let key = app.cli_json(&args);
    (
        key["id"].as_str().unwrap().to_owned(),
        key["api_key"].as_str().unwrap().to_owned(),
    )
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value, HeaderMap) {
    let response = request.send().await.unwrap();
    let headers = response.headers().clone();
    let (status, body) = status_and_json(response).await;
    (status, body, headers)
}

async fn with_key(app: &TestApp, method: &str, path: &str, key: &str) -> (u16, Value) {
    let request = match method {
        "GET" => app.http.get(app.url(path)),
        "DELETE" => app.http.delete(app.url(path)),
        _ => app.http.post(app.url(path)),
    };
    let (status, body, _) = send(request.bearer_auth(key)).await;
    (status, body)
}

async fn start_pairing(app: &TestApp, account: &str, scopes: Value) -> String {
    let (status, body, _) = send(
        app.http
            .post(app.url("/v1/auth/challenges"))
            .json(&json!({"app_name": "Photo Sync", "account": account, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["challenge_id"].as_str().unwrap().to_owned()
}

async fn redeem(app: &TestApp, id: &str, code: &str) -> (u16, Value) {
    let (status, body, _) = send(
        app.http
            .post(app.url("/v1/auth/api_keys"))
            .json(&json!({"challenge_id": id, "code": code})),
    )
    .await;
    (status, body)
}

/// The listed challenge `id` as `key` sees it.
async fn listed(app: &TestApp, key: &str, id: &str) -> Value {
    let (status, body) = with_key(app, "GET", "/api/v1/challenges", key).await;
    assert_eq!(status, 200, "{body}");
    body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} listed: {body}"))
}

fn code_of(app: &TestApp, id: &str) -> String {
    tollgate::service::pairing::Pairing::new(&app.db.master_key()).code(id)
}

fn wrong(code: &str) -> String {
    format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000)
}

/// The reproducer of issue 8, item 1: a key with only `keys` and a 10-minute expiry starts
/// a pairing challenge for its own account, reads the code and redeems it for a key with
/// every scope and no expiry; or revokes and deletes the owner's broader keys.
async fn a_narrow_key_cannot_escalate_through_pairing_or_act_on_broader_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "alice", "read write keys");
    let (owner_id, owner) = create_key(&app, "alice", "read write keys", None);
    let (other_id, _) = create_key(&app, "alice", "read keys", None);
    let (_, narrow) = create_key(&app, "alice", "keys", Some("600"));
    let (_, expiring_full) = create_key(&app, "alice", "read write keys", Some("600"));
    let (_, reader) = create_key(&app, "alice", "read keys", None);

    let challenge = start_pairing(&app, "alice", json!(["read", "write", "keys"])).await;
    // The narrow key sees that a request exists, not its code; nor does a key with every
    // scope that expires (the pairing key would not), nor one without `write`.
    for key in [&narrow, &expiring_full, &reader] {
        let seen = listed(&app, key, &challenge).await;
        assert!(seen.get("code").is_none(), "{seen}");
    }
    // It cannot deny or approve it either.
    for action in ["deny", "approve"] {
        let path = format!("/api/v1/challenges/{challenge}/{action}");
        let (status, body) = with_key(&app, "POST", &path, &narrow).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
    }
    // Guessing is what remains, and a wrong guess is just that.
    let code = code_of(&app, &challenge);
    let (status, body) = redeem(&app, &challenge, &wrong(&code)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_code")),
        "{body}"
    );

    // The owner's unexpiring full key sees the code (so does the operator), and the app
    // gets its key with it.
    let seen = listed(&app, &owner, &challenge).await;
    assert_eq!(seen["code"], code.as_str());
    let cli = app.cli_json(&["challenge", "list", "--account", "alice", "--json"]);
    assert_eq!(cli[0]["code"], code.as_str());
    // A key holding the requested scopes, unexpiring, sees the code of a narrower request.
    let read_only = start_pairing(&app, "alice", json!(["read"])).await;
    assert_eq!(
        listed(&app, &reader, &read_only).await["code"],
        code_of(&app, &read_only).as_str()
    );
    let (status, body) = redeem(&app, &challenge, &code).await;
    assert_eq!(status, 201, "{body}");

    // The narrow key cannot revoke or delete broader keys (by the header or the POST
    // variants), and they keep working.
    for id in [&owner_id, &other_id] {
        for (method, path) in [
            ("POST", format!("/api/v1/keys/{id}/revoke")),
            ("DELETE", format!("/api/v1/keys/{id}")),
            ("POST", format!("/api/v1/keys/{id}/delete")),
        ] {
            let (status, body) = with_key(&app, method, &path, &narrow).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("forbidden")),
                "{method} {path}: {body}"
            );
        }
    }
    assert_eq!(with_key(&app, "GET", "/api/v1/me", &owner).await.0, 200);
    // An expiring key cannot act on an unexpiring one even with the same scopes.
    let path = format!("/api/v1/keys/{owner_id}/revoke");
    assert_eq!(with_key(&app, "POST", &path, &expiring_full).await.0, 403);

    // What it may do: create a key within itself (no later expiry) and revoke that one.
    let (status, child) = send(
        app.http
            .post(app.url("/api/v1/keys"))
            .bearer_auth(&narrow)
            .json(&json!({"name": "child", "scopes": "keys"})),
    )
    .await
    .into_parts();
    assert_eq!(status, 201, "{child}");
    assert!(
        child["expires_at"].is_string(),
        "inherits the expiry: {child}"
    );
    let path = format!("/api/v1/keys/{}/revoke", child["id"].as_str().unwrap());
    assert_eq!(with_key(&app, "POST", &path, &narrow).await.0, 200);
    // And the owner's full key may revoke the narrow one.
    let (status, _) = with_key(&app, "GET", "/api/v1/keys", &owner).await;
    assert_eq!(status, 200);
}

trait IntoParts {
    fn into_parts(self) -> (u16, Value);
}

impl IntoParts for (u16, Value, HeaderMap) {
    fn into_parts(self) -> (u16, Value) {
        (self.0, self.1)
    }
}

/// Issue 8, item 5: ten wrong codes a day per account, with two instances on one database.
async fn the_guessing_budget_is_shared_by_instances(backend: Backend) {
    let db = TestDb::new(backend);
    let a = spawn_app_on(db.clone(), "").await;
    let b = spawn_app_on(db.clone(), "").await;
    create_account(&a, "nora", "read keys");
    // Ten wrong codes, alternating instances: 3 + 3 + 3 on three challenges, 1 on a fourth.
    let mut evaluated = 0;
    let mut fourth = String::new();
    for round in 0..4 {
        let app = if round % 2 == 0 { &a } else { &b };
        let id = start_pairing(app, "nora", json!(["read"])).await;
        let code = code_of(app, &id);
        let guesses = if round == 3 { 1 } else { 3 };
        for guess in 0..guesses {
            let on = if guess % 2 == 0 { &a } else { &b };
            let (status, body) = redeem(on, &id, &wrong(&code)).await;
            assert_eq!(status, 400, "{body}");
            evaluated += 1;
        }
        fourth = id;
    }
    assert_eq!(evaluated, 10);
    // Spent on both instances: the right code of a fresh challenge, and of the fourth, is
    // refused as wrong, whichever instance is asked.
    let fresh = start_pairing(&b, "nora", json!(["read"])).await;
    for (app, id) in [(&a, &fresh), (&b, &fourth)] {
        let (status, body) = redeem(app, id, &code_of(app, id)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_code")),
            "{body}"
        );
    }
    a.stop().await;
    b.stop().await;
}

/// Issue 8, item 6: an API key at `/oauth/revoke` is not silently "revoked".
async fn an_api_key_at_oauth_revoke_is_an_unsupported_token_type(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "rita", "read");
    let (_, key) = create_key(&app, "rita", "read", None);
    let client = app.create_client("svc", "read", &[]);
    let (status, body, _) = send(
        app.http
            .post(app.url("/oauth/revoke"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("token", key.as_str()), ("token_type_hint", "access_token")]),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_token_type")),
        "{body}"
    );
    assert_eq!(
        with_key(&app, "GET", "/api/v1/me", &key).await.0,
        200,
        "still valid"
    );
    // Without client authentication: invalid_client first, as for any token.
    let (status, body, _) = send(
        app.http
            .post(app.url("/oauth/revoke"))
            .form(&[("token", key.as_str())]),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // A JWT is still revoked (200, no body).
    let token = app.access_token(&client, &[]).await;
    let revoked = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
}

/// Issue 8, item 13: every account API call also answers POST with the credential in
/// the body (`i` in JSON, `access_token` in a form) or the header; two at once are refused.
async fn the_account_api_answers_post_with_the_credential_in_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "mia", "read keys");
    let (key_id, key) = create_key(&app, "mia", "read keys", None);
    let post = |path: &str| app.http.post(app.url(path));

    let (status, body, _) = send(post("/api/v1/me").json(&json!({"i": key}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"]["handle"], "mia");
    let (status, _, _) = send(post("/api/v1/me").bearer_auth(&key)).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(post("/api/v1/me").form(&[("access_token", key.as_str())])).await;
    assert_eq!(status, 200);
    let (status, body, _) = send(post("/api/v1/keys/list").json(&json!({"i": key}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == key_id.as_str())
    );
    let challenge = start_pairing(&app, "mia", json!(["read"])).await;
    let (status, body, _) = send(post("/api/v1/challenges/list").json(&json!({"i": key}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["challenges"][0]["id"], challenge.as_str());
    assert_eq!(
        body["challenges"][0]["code"],
        code_of(&app, &challenge).as_str()
    );
    let path = format!("/api/v1/challenges/{challenge}/deny");
    let (status, body, _) = send(post(&path).json(&json!({"i": key}))).await;
    assert_eq!(status, 200, "{body}");

    // RFC 6750 §2.2: a form body with access_token creates a key.
    let (status, body, _) = send(post("/api/v1/keys").form(&[
        ("access_token", key.as_str()),
        ("name", "from a form"),
        ("scope", "read"),
        ("expires_in", "3600"),
    ]))
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["scopes"], json!(["read"]));
    assert!(body["expires_at"].is_string());
    let child = body["id"].as_str().unwrap().to_owned();
    let (status, _, _) =
        send(post(&format!("/api/v1/keys/{child}/delete")).json(&json!({"i": key}))).await;
    assert_eq!(status, 204);

    // Two credentials at once (RFC 6750 §2), a non-string i, unknown fields: 400.
    for request in [
        post("/api/v1/me")
            .bearer_auth(&key)
            .json(&json!({"i": key})),
        post("/api/v1/me")
            .bearer_auth(&key)
            .form(&[("access_token", key.as_str())]),
        post("/api/v1/me").json(&json!({"i": 42})),
        post("/api/v1/me").json(&json!({"i": key, "verbose": true})),
        post("/api/v1/keys").form(&[
            ("access_token", key.as_str()),
            ("access_token", key.as_str()),
        ]),
        post("/api/v1/me")
            .header("content-type", "text/plain")
            .body(key.clone()),
    ] {
        let (status, body, _) = send(request).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }
    let (_, body, _) = send(post("/api/v1/me").json(&json!({"i": key, "verbose": true}))).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("verbose"),
        "{body}"
    );
    // The GET routes stay, and no credential is still 401.
    assert_eq!(with_key(&app, "GET", "/api/v1/me", &key).await.0, 200);
    let (status, _, headers) = send(post("/api/v1/me")).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

/// Issue 8, item 14: unknown JSON fields are refused with 400 naming them, on the account,
/// pairing and admin APIs; `expires_at` is accepted beside `expires_in`.
async fn unknown_fields_are_refused_and_expires_at_is_understood(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "ivy", "read keys");
    let (_, key) = create_key(&app, "ivy", "read keys", None);
    let admin = app.admin_token().await;
    let cases = [
        (
            app.http.post(app.url("/api/v1/keys")).bearer_auth(&key),
            json!({"name": "n", "expires": 60}),
            "expires",
        ),
        (
            app.http.post(app.url("/api/v1/keys")).bearer_auth(&key),
            json!({"name": "n", "odd\"field\u{e9}": 1}),
            "odd'field?",
        ),
        (
            app.http.post(app.url("/v1/auth/challenges")),
            json!({"app_name": "a", "account": "ivy", "scopes": "read", "callback": "x"}),
            "callback",
        ),
        (
            app.http.post(app.url("/v1/auth/api_keys")),
            json!({"challenge_id": "c", "code": "1234", "remember": true}),
            "remember",
        ),
        (
            app.http
                .post(app.url("/admin/accounts"))
                .bearer_auth(&admin),
            json!({"handle": "zed", "role": "x"}),
            "role",
        ),
        (
            app.http
                .post(app.url("/admin/accounts/ivy/keys"))
                .bearer_auth(&admin),
            json!({"name": "n", "ttl": 5}),
            "ttl",
        ),
        (
            app.http.post(app.url("/admin/clients")).bearer_auth(&admin),
            json!({"name": "n", "colour": "red"}),
            "colour",
        ),
    ];
    for (request, body, field) in cases {
        let (status, answer, _) = send(request.json(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let description = answer["error_description"].as_str().unwrap();
        assert!(description.contains(field), "{body}: {answer}");
        assert!(!description.contains('"'), "{answer}");
    }

    let in_a_day = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (status, body, _) = send(
        app.http
            .post(app.url("/api/v1/keys"))
            .bearer_auth(&key)
            .json(&json!({"name": "dated", "expires_at": in_a_day})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let wanted = chrono::DateTime::parse_from_rfc3339(&in_a_day).unwrap();
    assert!((expires - wanted).num_seconds().abs() <= 2, "{body}");
    let (status, body, _) = send(
        app.http
            .post(app.url("/admin/accounts/ivy/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": "dated", "expires_at": in_a_day})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_at"].is_string());
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for body in [
        json!({"name": "both", "expires_at": in_a_day, "expires_in": 3600}),
        json!({"name": "past", "expires_at": past}),
        json!({"name": "garbage", "expires_at": "tomorrow"}),
    ] {
        let (status, answer, _) = send(
            app.http
                .post(app.url("/api/v1/keys"))
                .bearer_auth(&key)
                .json(&body),
        )
        .await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
}

/// Issue 8, item 4: junk is refused before it counts against the pairing limiters.
async fn junk_pairing_requests_do_not_count_against_the_limiters(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "erin", "read");
    for junk in [
        json!({"app_name": "a", "account": "!!", "scopes": "read"}),
        json!({"app_name": "a", "account": "x".repeat(41), "scopes": "read"}),
        json!({"app_name": "", "account": "erin", "scopes": "read"}),
        json!({"app_name": "a", "account": "erin", "scopes": []}),
    ] {
        for _ in 0..6 {
            let (status, body, _) =
                send(app.http.post(app.url("/v1/auth/challenges")).json(&junk)).await;
            assert_eq!(status, 400, "{junk}: {body}");
        }
    }
    // 24 refused requests from this address, 12 naming erin: neither limiter counted them.
    for _ in 0..5 {
        start_pairing(&app, "erin", json!(["read"])).await;
    }
}

/// The budget's take is atomic: 8 threads, each with its own connection (as instances
/// have), racing for 10 guesses 40 times get exactly 10, on a row none of them created.
async fn the_guessing_budget_cannot_be_overdrawn_by_concurrent_guesses(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "zoe", "read");
    let account_id = app.cli_json(&["account", "show", "zoe", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (db, barrier, account_id) = (app.db.clone(), barrier.clone(), account_id.clone());
            std::thread::spawn(move || {
                let mut conn = db.conn();
                barrier.wait();
                (0..5)
                    .filter(|_| {
                        tollgate::db::pairing_guesses::take(&mut conn, &account_id, 20_000, 10)
                            .unwrap()
                    })
                    .count()
            })
        })
        .collect();
    let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(taken, 10);
    let mut conn = app.db.conn();
    assert_eq!(
        tollgate::db::pairing_guesses::taken(&mut conn, &account_id, 20_000).unwrap(),
        10
    );
}

both_backends!(
    a_narrow_key_cannot_escalate_through_pairing_or_act_on_broader_keys,
    the_guessing_budget_is_shared_by_instances,
    an_api_key_at_oauth_revoke_is_an_unsupported_token_type,
    the_account_api_answers_post_with_the_credential_in_the_body,
    unknown_fields_are_refused_and_expires_at_is_understood,
    junk_pairing_requests_do_not_count_against_the_limiters,
    the_guessing_budget_cannot_be_overdrawn_by_concurrent_guesses,
);

both_backends!(regenerating_through_the_api_cli_and_admin_keeps_delegation);

async fn regenerating_through_the_api_cli_and_admin_keeps_delegation(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "rex", "read write keys");
    let (owner_id, owner) = create_key(&app, "rex", "read write keys", None);
    let (nightly_id, nightly) = create_key(&app, "rex", "read", Some("86400"));
    let (narrow_id, narrow) = create_key(&app, "rex", "keys", Some("600"));

    // A key regenerates a key it covers: new secret, same name and scopes, old one revoked.
    let (status, fresh) = with_key(
        &app,
        "POST",
        &format!("/api/v1/keys/{nightly_id}/regenerate"),
        &owner,
    )
    .await;
    assert_eq!(status, 201, "{fresh}");
    assert_eq!(fresh["scopes"], json!(["read"]));
    let fresh_key = fresh["api_key"].as_str().unwrap();
    assert_eq!(with_key(&app, "GET", "/api/v1/me", fresh_key).await.0, 200);
    assert_eq!(with_key(&app, "GET", "/api/v1/me", &nightly).await.0, 401);

    // A narrow key may not regenerate broader keys (403), and regenerating itself keeps its
    // own lifetime at most.
    let (status, _) = with_key(
        &app,
        "POST",
        &format!("/api/v1/keys/{owner_id}/regenerate"),
        &narrow,
    )
    .await;
    assert_eq!(status, 403);
    let (status, renewed) = with_key(
        &app,
        "POST",
        &format!("/api/v1/keys/{narrow_id}/regenerate"),
        &narrow,
    )
    .await;
    assert_eq!(status, 201, "{renewed}");
    let expires: chrono::DateTime<chrono::Utc> =
        renewed["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires.timestamp() <= app.clock.now() + 600);

    // The CLI and the admin API do the same.
    let fresh_id = fresh["id"].as_str().unwrap().to_owned();
    let regenerated = app.cli_json(&["api-key", "regenerate", &fresh_id, "--json"]);
    assert_eq!(regenerated["name"], "k");
    assert_eq!(with_key(&app, "GET", "/api/v1/me", fresh_key).await.0, 401);
    let admin = app.admin_token().await;
    let cli_key_id = regenerated["id"].as_str().unwrap();
    let (status, by_admin, _) = send(
        app.http
            .post(app.url(&format!("/admin/accounts/rex/keys/{cli_key_id}/regenerate")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(status, 201, "{by_admin}");
    assert_eq!(
        with_key(
            &app,
            "GET",
            "/api/v1/me",
            by_admin["api_key"].as_str().unwrap()
        )
        .await
        .0,
        200
    );
    let audit = app.cli_json(&["audit", "--account", "rex", "--json"]);
    let regenerations = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "api_key.regenerated")
        .count();
    assert_eq!(regenerations, 4);
}
