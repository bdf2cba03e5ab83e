//! Accounts, API keys, app pairing with a 4-digit code, token exchange and the audit trail.

use std::collections::BTreeSet;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app, stderr};

const API_KEY_TYPE: &str = "urn:tollgate:params:oauth:token-type:api_key";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn create_account(app: &TestApp, handle: &str, scope: &str) -> Value {
    app.cli_json(&[
        "account", "create", "--handle", handle, "--scope", scope, "--json",
    ])
}

fn create_key(app: &TestApp, handle: &str, scope: &str) -> (String, String) {
    let key = app.cli_json(&[
        "api-key",
        "create",
        "--account",
        handle,
        "--name",
        "CI deploy",
        "--scope",
        scope,
        "--json",
    ]);
    (
        key["id"].as_str().unwrap().to_owned(),
        key["api_key"].as_str().unwrap().to_owned(),
    )
}

async fn post_json(
    app: &TestApp,
    path: &str,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.json().await.expect("a JSON body"), headers)
}

/// A successful GET on the account API with `key`, as JSON.
async fn get_with_key(app: &TestApp, path: &str, key: &str) -> Value {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("a JSON body")
}

async fn me(app: &TestApp, key: &str) -> (u16, Value) {
    let response = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// `POST /v1/auth/challenges` as the app sends it.
async fn ask_pairing(app: &TestApp, account: &str, scopes: Value) -> (u16, Value, HeaderMap) {
    post_json(
        app,
        "/v1/auth/challenges",
        json!({"app_name": "Photo Sync", "account": account, "scopes": scopes}),
    )
    .await
}

/// Asserts the answer to a pairing request, which is the same whether or not the account
/// exists: 201 with the challenge id and its lifetime and nothing else, versioned, not
/// cacheable. Returns the challenge id.
fn assert_challenge_created(status: u16, body: &Value, headers: &HeaderMap) -> String {
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["tollgate-version"], "2026-11-22");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let members: BTreeSet<&str> = body
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members,
        BTreeSet::from(["challenge_id", "expires_in"]),
        "{body}"
    );
    assert_eq!(body["expires_in"], 300);
    let id = body["challenge_id"].as_str().expect("challenge_id");
    assert!(!id.is_empty());
    id.to_owned()
}

async fn start_pairing(app: &TestApp, account: &str, scopes: Value) -> String {
    let (status, body, headers) = ask_pairing(app, account, scopes).await;
    assert_challenge_created(status, &body, &headers)
}

/// The code the account owner sees for `challenge` (which must be pending for them).
async fn pending_code(app: &TestApp, owner_key: &str, challenge: &str) -> String {
    let listed = get_with_key(app, "/api/v1/challenges", owner_key).await;
    listed["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .find(|c| c["id"] == challenge)
        .expect("the owner sees the pending challenge")["code"]
        .as_str()
        .expect("code")
        .to_owned()
}

/// A challenge as stored, if it is.
fn find_challenge(app: &TestApp, id: &str) -> Option<tollgate::domain::Challenge> {
    let url = tollgate::db::DbUrl::parse(&app.db.url).unwrap();
    let mut conn = tollgate::db::Db::connect_one(&url).unwrap();
    tollgate::db::challenges::find(&mut conn, id).unwrap()
}

/// A challenge as stored, for what no API shows.
fn stored_challenge(app: &TestApp, id: &str) -> tollgate::domain::Challenge {
    find_challenge(app, id).expect("the challenge is stored")
}

/// The code of a challenge, derived as the server does (for codes no owner sees: a
/// denied challenge's, or one for an unknown account).
fn code_of(app: &TestApp, id: &str) -> String {
    tollgate::service::pairing::Pairing::new(&app.db.master_key()).code(id)
}

/// The account's audit events with `action`, newest first.
fn audit_events(app: &TestApp, handle: &str, action: &str) -> Vec<Value> {
    let audit = app.cli_json(&["audit", "--account", handle, "--json"]);
    audit
        .as_array()
        .expect("a list of events")
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

async fn redeem(app: &TestApp, challenge_id: &str, code: &str) -> (u16, Value) {
    let (status, body, _) = post_json(
        app,
        "/v1/auth/api_keys",
        json!({"challenge_id": challenge_id, "code": code}),
    )
    .await;
    (status, body)
}

/// Redeems and asserts the refusal: 400 with `error`, `attempts_remaining` exactly when
/// the code was wrong, a description, versioned and not cacheable. Returns the body.
async fn refused_redeem(
    app: &TestApp,
    challenge_id: &str,
    code: &str,
    error: &str,
    attempts_remaining: Option<i64>,
) -> Value {
    let (status, body, headers) = post_json(
        app,
        "/v1/auth/api_keys",
        json!({"challenge_id": challenge_id, "code": code}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some(error)),
        "{body}"
    );
    assert_eq!(
        body["attempts_remaining"].as_i64(),
        attempts_remaining,
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(headers["tollgate-version"], "2026-11-22");
    assert_eq!(headers["cache-control"], "no-store");
    body
}

fn wrong(code: &str) -> String {
    format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000)
}

async fn pairing_flow_end_to_end(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = create_account(&app, "alice", "read write keys");
    let (_, owner_key) = create_key(&app, "alice", "read write keys");

    let challenge = start_pairing(&app, "Alice", json!(["read", "admin"])).await;

    // The owner sees the request and its code, through the API and the CLI.
    let listed: Value = get_with_key(&app, "/api/v1/challenges", &owner_key).await;
    let pending = &listed["challenges"][0];
    assert_eq!(pending["id"], challenge.as_str());
    assert_eq!(pending["app_name"], "Photo Sync");
    // What the key will carry: the requested scopes the account holds, fixed at creation.
    assert_eq!(pending["scopes"], json!(["read"]));
    let code = pending["code"].as_str().unwrap().to_owned();
    assert!(code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()));
    let cli_list = app.cli_json(&["challenge", "list", "--account", "alice", "--json"]);
    assert_eq!(cli_list[0]["code"], code.as_str());

    let (status, body) = redeem(&app, &challenge, &code).await;
    assert_eq!(status, 201, "{body}");
    let api_key = body["api_key"].as_str().unwrap().to_owned();
    assert!(api_key.starts_with("tg_"));
    assert_eq!(
        body["scopes"],
        json!(["read"]),
        "capped by the account's scopes"
    );
    assert_eq!(body["name"], "Photo Sync");
    assert_eq!(body["account"], "alice");

    let (status, who) = me(&app, &api_key).await;
    assert_eq!(status, 200);
    assert_eq!(who["account"]["handle"], "alice");
    assert_eq!(who["account"]["id"], account["id"]);
    assert_eq!(who["scopes"], json!(["read"]));

    // Single use, and no longer pending.
    let (status, body) = redeem(&app, &challenge, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("challenge_used"))
    );
    let listed: Value = get_with_key(&app, "/api/v1/challenges", &owner_key).await;
    assert_eq!(listed["challenges"], json!([]));

    let audit = app.cli_json(&["audit", "--account", "alice", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "account.created",
        "api_key.created",
        "challenge.created",
        "challenge.approved",
        "api_key.first_used",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let text = audit.to_string();
    assert!(
        !text.contains(&api_key) && !text.contains(&owner_key),
        "the audit trail never holds a key"
    );
}

async fn wrong_codes_kill_the_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "bob", "read keys");
    let (_, owner_key) = create_key(&app, "bob", "read keys");
    let challenge = start_pairing(&app, "bob", json!("read")).await;
    let code = pending_code(&app, &owner_key, &challenge).await;

    refused_redeem(&app, &challenge, &wrong(&code), "invalid_code", Some(2)).await;
    refused_redeem(&app, &challenge, &wrong(&code), "invalid_code", Some(1)).await;
    refused_redeem(&app, &challenge, &wrong(&code), "challenge_failed", None).await;
    // Dead even with the right code, and no longer pending for the owner.
    refused_redeem(&app, &challenge, &code, "challenge_failed", None).await;
    let listed = get_with_key(&app, "/api/v1/challenges", &owner_key).await;
    assert_eq!(listed["challenges"], json!([]));

    refused_redeem(&app, &challenge, "12x4", "invalid_request", None).await;
    refused_redeem(&app, &challenge, "12345", "invalid_request", None).await;
    refused_redeem(&app, "no-such-challenge", "1234", "invalid_challenge", None).await;
    let failed = audit_events(&app, "bob", "challenge.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["subject_id"], challenge.as_str());
    assert_eq!(failed[0]["details"]["attempts"], 3);
}

async fn unknown_accounts_look_like_real_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "carol", "read");

    // Asked for a real and for a made-up account, the app gets the same answer.
    let (status, body, real_headers) = ask_pairing(&app, "carol", json!(["read"])).await;
    let real = assert_challenge_created(status, &body, &real_headers);
    let (status, body, fake_headers) = ask_pairing(&app, "nobody-here", json!(["read"])).await;
    let fake = assert_challenge_created(status, &body, &fake_headers);
    assert_ne!(real, fake);
    let names = |headers: &HeaderMap| {
        headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(names(&real_headers), names(&fake_headers));

    // Only the real one is stored; the made-up account's writes nothing.
    assert!(stored_challenge(&app, &real).account_id.is_some());
    assert_eq!(find_challenge(&app, &fake), None);
    let (real_code, fake_code) = (code_of(&app, &real), code_of(&app, &fake));
    let guess = ["0000", "0001", "0002"]
        .into_iter()
        .find(|g| *g != real_code && *g != fake_code)
        .unwrap();

    // The same wrong code gets the same refusal, word for word.
    let on_real = refused_redeem(&app, &real, guess, "invalid_code", Some(2)).await;
    let on_fake = refused_redeem(&app, &fake, guess, "invalid_code", Some(2)).await;
    assert_eq!(
        on_real, on_fake,
        "same refusal for a real and a made-up account"
    );
    // The made-up account's challenge refuses even its own code, as a wrong code.
    let on_fake = refused_redeem(&app, &fake, &fake_code, "invalid_code", Some(1)).await;
    let on_real = refused_redeem(&app, &real, guess, "invalid_code", Some(1)).await;
    assert_eq!(on_real, on_fake);
    let on_fake = refused_redeem(&app, &fake, &fake_code, "challenge_failed", None).await;
    let on_real = refused_redeem(&app, &real, guess, "challenge_failed", None).await;
    assert_eq!(on_real, on_fake);
    assert_eq!(find_challenge(&app, &fake), None);
    // An id this server did not make is refused without a lookup.
    refused_redeem(&app, &format!("{fake}x"), guess, "invalid_challenge", None).await;

    // A fresh real one works with its code.
    let real = start_pairing(&app, "carol", json!(["read"])).await;
    let (status, body) = redeem(&app, &real, &code_of(&app, &real)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["account"], "carol");
    assert_eq!(body["scopes"], json!(["read"]));
}

async fn expired_and_denied_challenges(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "dave", "read keys");
    let (_, owner_key) = create_key(&app, "dave", "read keys");

    // A challenge made six minutes ago has expired.
    let expired_id = {
        let pool = tollgate::db::Db::connect(
            &tollgate::db::DbUrl::parse(&app.db.url).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let mut conn = pool.get().unwrap();
        let six_minutes_ago = chrono::Utc::now().timestamp() - 360;
        let request = tollgate::service::pairing::validate_request(
            "Old App",
            "dave",
            tollgate::oauth::Scope::parse("read").unwrap(),
        )
        .unwrap();
        tollgate::service::pairing::create_challenge(
            &mut conn,
            &tollgate::service::pairing::Pairing::new(&app.db.master_key()),
            &request,
            six_minutes_ago,
        )
        .unwrap()
        .challenge_id
    };
    refused_redeem(
        &app,
        &expired_id,
        &code_of(&app, &expired_id),
        "challenge_expired",
        None,
    )
    .await;

    let challenge = start_pairing(&app, "dave", json!(["read"])).await;
    let denied = app
        .http
        .post(app.url(&format!("/api/v1/challenges/{challenge}/deny")))
        .bearer_auth(&owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200);
    let listed: Value = get_with_key(&app, "/api/v1/challenges", &owner_key).await;
    assert_eq!(listed["challenges"], json!([]));
    let code = code_of(&app, &challenge);
    refused_redeem(&app, &challenge, &code, "challenge_denied", None).await;

    let second = start_pairing(&app, "dave", json!(["read"])).await;
    let output = app.cli(&["challenge", "deny", &second]);
    assert!(output.status.success(), "{}", stderr(&output));
    let code = code_of(&app, &second);
    refused_redeem(&app, &second, &code, "challenge_denied", None).await;
    assert_eq!(audit_events(&app, "dave", "challenge.expired").len(), 1);
    assert_eq!(audit_events(&app, "dave", "challenge.denied").len(), 2);
}

async fn pairing_is_rate_limited_and_versioned(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "erin", "read");
    for _ in 0..5 {
        start_pairing(&app, "erin", json!(["read"])).await;
    }
    let (status, body, headers) = post_json(
        &app,
        "/v1/auth/challenges",
        json!({"app_name": "x", "account": "erin", "scopes": ["read"]}),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (429, Some("slow_down")));
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");

    let response = app
        .http
        .post(app.url("/v1/auth/challenges"))
        .header("Tollgate-Version", "1999-01-01")
        .json(&json!({"app_name": "x", "account": "other", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_version");
    let response = app
        .http
        .post(app.url("/v1/auth/challenges"))
        .header("Tollgate-Version", "2026-11-22")
        .json(&json!({"app_name": "x", "account": "other", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (status, _, _) = post_json(
        &app,
        "/v1/auth/challenges",
        json!({"app_name": "x", "account": "other"}),
    )
    .await;
    assert_eq!(status, 400, "scopes are required");
}

async fn api_keys_shown_once_and_revoked_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "frank", "read write keys");
    let (owner_id, owner_key) = create_key(&app, "frank", "read keys");
    let resource_server = app.create_client("api", "introspect", &[]);

    // Created through the account API: shown once.
    let response = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&owner_key)
        .json(&json!({"name": "laptop", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let (key_id, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    );
    let listed: Value = get_with_key(&app, "/api/v1/keys", &owner_key).await;
    let text = listed.to_string();
    assert!(
        !text.contains(&key) && !text.contains(&owner_key),
        "listing never shows a key"
    );
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["name"], "laptop");
    assert!(key.starts_with(entry["prefix"].as_str().unwrap()));
    for field in [
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "scopes",
    ] {
        assert!(entry.get(field).is_some(), "{field}");
    }
    let too_much = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&owner_key)
        .json(&json!({"name": "x", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_much.status(), 400, "scopes beyond the account's");
    let cli_list = app.cli_json(&["api-key", "list", "--account", "frank", "--json"]);
    assert!(!cli_list.to_string().contains(&key));

    // Used: last_used_at is set at the first use.
    assert_eq!(me(&app, &key).await.0, 200);
    let listed: Value = get_with_key(&app, "/api/v1/keys", &owner_key).await;
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert!(entry["last_used_at"].is_string());

    // Introspection answers for API keys.
    let answer: Value = app.introspect_as(&resource_server, key.as_str()).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "api_key");
    assert_eq!(answer["scope"], "read");
    assert_eq!(answer["username"], "frank");

    // A typo is refused (checksum), without a lookup.
    let mut typo = key.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == '2' { '3' } else { '2' });
    let (status, body) = me(&app, &typo).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // Revoke: refused at once by the API and by introspection; still listed as revoked.
    let revoked = app
        .http
        .post(app.url(&format!("/api/v1/keys/{key_id}/revoke")))
        .bearer_auth(&owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(me(&app, &key).await.0, 401);
    let answer: Value = app.introspect_as(&resource_server, key.as_str()).await;
    assert_eq!(answer, json!({"active": false}));
    let listed: Value = get_with_key(&app, "/api/v1/keys", &owner_key).await;
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["status"], "revoked");

    // Delete: gone.
    let deleted = app
        .http
        .delete(app.url(&format!("/api/v1/keys/{key_id}")))
        .bearer_auth(&owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let listed: Value = get_with_key(&app, "/api/v1/keys", &owner_key).await;
    assert!(
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != key_id.as_str())
    );

    // A key without the keys scope cannot manage keys.
    let (_, reader) = create_key(&app, "frank", "read");
    let forbidden = app
        .http
        .get(app.url("/api/v1/keys"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    assert!(
        forbidden.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"keys\"")
    );

    // CLI revoke and delete.
    assert!(app.cli(&["api-key", "revoke", &owner_id]).status.success());
    assert_eq!(me(&app, &owner_key).await.0, 401);
    assert!(app.cli(&["api-key", "delete", &owner_id]).status.success());
    let audit = app
        .cli_json(&["audit", "--account", "frank", "--json"])
        .to_string();
    assert!(audit.contains("api_key.revoked") && audit.contains("api_key.deleted"));
}

async fn credentials_in_header_form_or_i_never_in_the_url(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "gina", "read keys");
    let (_, key) = create_key(&app, "gina", "read keys");

    let header = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
    let form = app
        .http
        .get(app.url("/api/v1/me"))
        .form(&[("access_token", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let misskey = app
        .http
        .post(app.url("/api/v1/keys"))
        .json(&json!({"i": key, "name": "from i"}))
        .send()
        .await
        .unwrap();
    assert_eq!(misskey.status(), 201, "JSON body credential `i`");
    let query = app
        .http
        .get(app.url(&format!("/api/v1/me?access_token={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 400);
    let query_i = app
        .http
        .get(app.url(&format!("/api/v1/me?i={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(query_i.status(), 400);
    let none = app.http.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

async fn disabled_and_deleted_accounts(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "hank", "read");
    let (_, key) = create_key(&app, "hank", "read");
    assert_eq!(me(&app, &key).await.0, 200);
    assert!(app.cli(&["account", "disable", "hank"]).status.success());
    let (status, body) = me(&app, &key).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let exchange = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", key.as_str()),
            ("subject_token_type", API_KEY_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(exchange.status(), 400);
    assert!(app.cli(&["account", "enable", "hank"]).status.success());
    assert_eq!(me(&app, &key).await.0, 200);
    assert!(app.cli(&["account", "delete", "hank"]).status.success());
    assert_eq!(me(&app, &key).await.0, 401);
    let gone = app.cli(&["api-key", "list", "--account", "hank"]);
    assert!(!gone.status.success());
}

async fn token_exchange_turns_a_key_into_a_short_lived_jwt(backend: Backend) {
    let app = spawn_app(backend).await;
    let account = create_account(&app, "ivy", "read write");
    let (key_id, key) = create_key(&app, "ivy", "read write");
    let resource_server = app.create_client("api", "introspect", &[]);
    let exchange = |scope: Option<&'static str>, subject: String| {
        let app = &app;
        async move {
            let mut form = vec![
                ("grant_type", TOKEN_EXCHANGE.to_owned()),
                ("subject_token", subject),
                ("subject_token_type", API_KEY_TYPE.to_owned()),
            ];
            if let Some(scope) = scope {
                form.push(("scope", scope.to_owned()));
            }
            app.http
                .post(app.url("/oauth/token"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };

    let response = exchange(None, key.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let jwt = body["access_token"].as_str().unwrap().to_owned();
    let claims = app
        .verify(&jwt, &app.issuer)
        .await
        .expect("an RFC 9068 JWT verifiable with the JWKS");
    assert_eq!(claims["sub"], account["id"]);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        jsonwebtoken::decode_header(&jwt).unwrap().typ.as_deref(),
        Some("at+jwt")
    );

    let narrower: Value = exchange(Some("read"), key.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrower["scope"], "read");
    let wider = exchange(Some("read admin"), key.clone()).await;
    assert_eq!(wider.status(), 400);
    let body: Value = wider.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");

    assert_eq!(
        app.introspect_as(&resource_server, &jwt).await["active"],
        true
    );

    assert!(app.cli(&["api-key", "revoke", &key_id]).status.success());
    let refused = exchange(None, key.clone()).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "RFC 8693 §2.2.2");
    assert_eq!(
        app.introspect_as(&resource_server, &jwt).await,
        json!({"active": false}),
        "tokens of a revoked key die with it"
    );

    let garbage = exchange(None, "tg_nonsense".into()).await;
    assert_eq!(garbage.status(), 400);
    let body: Value = garbage.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let wrong_type = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", key.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 400);
    let body: Value = wrong_type.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

async fn clients_need_the_grant_type_they_use(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "jo", "read");
    let (_, key) = create_key(&app, "jo", "read");
    let cc_only = app.create_client("cc", "read", &[]);
    let exchanger = app.create_client("gateway", "read", &["--grant-type", TOKEN_EXCHANGE]);

    let response = app
        .token_request(Some(&exchanger), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");

    let form = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", key.as_str()),
        ("subject_token_type", API_KEY_TYPE),
    ];
    let response = app.token_request(Some(&cc_only), &form).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");

    let response = app.token_request(Some(&exchanger), &form).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let claims = crate::helpers::jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], exchanger.id.as_str());
}

async fn admin_api_manages_accounts_keys_and_reads_the_audit(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let mut request = app.http.request(method, app.url(&path)).bearer_auth(admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            crate::helpers::status_and_json(request.send().await.unwrap()).await
        }
    };
    use reqwest::Method;
    let (status, account) = call(
        Method::POST,
        "/admin/accounts".into(),
        Some(json!({"handle": "Kim", "display_name": "Kim K", "scopes": ["read", "keys"]})),
    )
    .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["handle"], "kim");
    let (status, _) = call(
        Method::POST,
        "/admin/accounts".into(),
        Some(json!({"handle": "kim", "scopes": "read"})),
    )
    .await;
    assert_eq!(status, 409, "handles are unique");
    let (status, _) = call(
        Method::POST,
        "/admin/accounts".into(),
        Some(json!({"handle": "bad handle!", "scopes": "read"})),
    )
    .await;
    assert_eq!(status, 400);

    let (status, key) = call(
        Method::POST,
        "/admin/accounts/kim/keys".into(),
        Some(json!({"name": "ops", "scopes": "read", "expires_in": 3600})),
    )
    .await;
    assert_eq!(status, 201);
    let (key_id, secret) = (
        key["id"].as_str().unwrap().to_owned(),
        key["api_key"].as_str().unwrap().to_owned(),
    );
    assert!(key["expires_at"].is_string());
    assert_eq!(me(&app, &secret).await.0, 200);
    let (status, keys) = call(Method::GET, "/admin/accounts/kim/keys".into(), None).await;
    assert_eq!(status, 200);
    assert_eq!(keys["keys"][0]["id"], key_id.as_str());
    let (status, _) = call(
        Method::POST,
        format!("/admin/accounts/kim/keys/{key_id}/revoke"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me(&app, &secret).await.0, 401);
    let (status, _) = call(
        Method::DELETE,
        format!("/admin/accounts/kim/keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(Method::POST, "/admin/accounts/kim/disable".into(), None).await;
    assert_eq!(status, 200);

    let (status, audit) = call(Method::GET, "/admin/audit?account=kim".into(), None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "account.disabled",
            "api_key.deleted",
            "api_key.revoked",
            "api_key.first_used",
            "api_key.created",
            "account.created"
        ],
        "newest first"
    );
    assert!(!audit.to_string().contains(&secret));
    let ops_client = crate::helpers::jwt_payload(&admin)["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        audit["events"][0]["actor"]
            .as_str()
            .unwrap()
            .ends_with(&ops_client)
    );

    // Client events, filtered by client.
    let client = app.create_client("svc", "read", &[]);
    assert!(
        app.cli(&["client", "rotate-secret", &client.id])
            .status
            .success()
    );
    assert!(app.cli(&["client", "disable", &client.id]).status.success());
    let (status, audit) = call(
        Method::GET,
        format!("/admin/audit?client={}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["client.disabled", "client.secret_rotated", "client.created"]
    );
    assert!(!audit.to_string().contains(&client.secret));
    let (status, _) = call(Method::GET, "/admin/audit?account=nobody".into(), None).await;
    assert_eq!(status, 404);

    let (status, _) = call(Method::DELETE, "/admin/accounts/kim".into(), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(Method::GET, "/admin/accounts/kim".into(), None).await;
    assert_eq!(status, 404);
}

both_backends!(
    pairing_flow_end_to_end,
    wrong_codes_kill_the_challenge,
    unknown_accounts_look_like_real_ones,
    expired_and_denied_challenges,
    pairing_is_rate_limited_and_versioned,
    api_keys_shown_once_and_revoked_at_once,
    credentials_in_header_form_or_i_never_in_the_url,
    disabled_and_deleted_accounts,
    token_exchange_turns_a_key_into_a_short_lived_jwt,
    clients_need_the_grant_type_they_use,
    admin_api_manages_accounts_keys_and_reads_the_audit,
);

async fn a_key_cannot_grant_more_than_it_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "lena", "read write keys");
    let output = app.cli(&[
        "account",
        "create",
        "--handle",
        "mallory",
        "--scope",
        "read admin",
    ]);
    assert!(
        !output.status.success(),
        "admin is reserved for OAuth clients"
    );
    assert!(stderr(&output).contains("reserved"));

    let limited = app.cli_json(&[
        "api-key",
        "create",
        "--account",
        "lena",
        "--name",
        "app",
        "--scope",
        "read keys",
        "--expires-in",
        "3600",
        "--json",
    ]);
    let limited_key = limited["api_key"].as_str().unwrap();
    let wider = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(limited_key)
        .json(&json!({"name": "escalate", "scopes": ["write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(wider.status(), 400, "no scope beyond the presenting key's");
    let child = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(limited_key)
        .json(&json!({"name": "child", "expires_in": 999_999}))
        .send()
        .await
        .unwrap();
    assert_eq!(child.status(), 201);
    let child: Value = child.json().await.unwrap();
    assert_eq!(
        child["scopes"],
        json!(["read", "keys"]),
        "defaults to the presenting key's scopes"
    );
    let (parent_exp, child_exp) = (
        chrono::DateTime::parse_from_rfc3339(limited["expires_at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(child["expires_at"].as_str().unwrap()).unwrap(),
    );
    assert!(
        child_exp <= parent_exp,
        "expires no later than the presenting key"
    );

    let too_long = format!("tg_{}", "1".repeat(5000));
    assert_eq!(me(&app, &too_long).await.0, 401);
}

async fn guessing_budget_blocks_an_account_after_ten_wrong_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "nora", "read keys");
    let (_, owner_key) = create_key(&app, "nora", "read keys");
    // Three challenges, three wrong codes each: every one is answered, and the third kills
    // its challenge.
    for _ in 0..3 {
        let challenge = start_pairing(&app, "nora", json!(["read"])).await;
        let code = pending_code(&app, &owner_key, &challenge).await;
        refused_redeem(&app, &challenge, &wrong(&code), "invalid_code", Some(2)).await;
        refused_redeem(&app, &challenge, &wrong(&code), "invalid_code", Some(1)).await;
        refused_redeem(&app, &challenge, &wrong(&code), "challenge_failed", None).await;
    }
    assert_eq!(audit_events(&app, "nora", "challenge.failed").len(), 3);
    // Nine wrong codes are within the budget; the tenth spends it.
    let fourth = start_pairing(&app, "nora", json!(["read"])).await;
    let fourth_code = pending_code(&app, &owner_key, &fourth).await;
    refused_redeem(&app, &fourth, &wrong(&fourth_code), "invalid_code", Some(2)).await;
    assert!(audit_events(&app, "nora", "challenge.blocked").is_empty());

    // Spent: a new challenge is real (the owner sees it), but a guess on it is refused
    // like a wrong code, even the right one, and the owner learns why.
    let blocked = start_pairing(&app, "nora", json!(["read"])).await;
    let code = pending_code(&app, &owner_key, &blocked).await;
    refused_redeem(&app, &blocked, &code, "invalid_code", Some(2)).await;
    let events = audit_events(&app, "nora", "challenge.blocked");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subject_id"], blocked.as_str());

    // Someone guessing cannot lock the owner out: the owner approves the request it made
    // itself, and the app redeems it with the code.
    let (status, body, _) = approve(&app, &owner_key, &blocked).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"challenge_id": blocked, "status": "approved"}));
    let listed = get_with_key(&app, "/api/v1/challenges", &owner_key).await;
    let approved: Vec<&Value> = listed["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["approved"] == true)
        .collect();
    assert_eq!(approved.len(), 1, "{listed}");
    assert_eq!(approved[0]["id"], blocked.as_str());
    let (status, body) = redeem(&app, &blocked, &code).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        audit_events(&app, "nora", "challenge.owner_approved").len(),
        1
    );

    // The operator can do the same from the CLI (for the challenge opened before the
    // budget ran out, which is refused like the others until then).
    refused_redeem(&app, &fourth, &fourth_code, "invalid_code", Some(1)).await;
    let output = app.cli(&["challenge", "approve", &fourth]);
    assert!(output.status.success(), "{}", stderr(&output));
    let (status, body) = redeem(&app, &fourth, &fourth_code).await;
    assert_eq!(status, 201, "{body}");
}

/// `POST /api/v1/challenges/{id}/approve` as the owner of `key`.
async fn approve(app: &TestApp, key: &str, id: &str) -> (u16, Value, HeaderMap) {
    let response = app
        .http
        .post(app.url(&format!("/api/v1/challenges/{id}/approve")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.json().await.expect("a JSON body"), headers)
}

/// The documented promise of `MAX_FAILED_CODES_PER_DAY`: at most ten wrong codes a day per
/// account, however many challenges a guesser opens: challenges opened before the budget
/// runs out take no further guess after it has.
async fn no_guess_past_the_daily_budget_can_succeed(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "olga", "read keys");
    let (_, owner_key) = create_key(&app, "olga", "read keys");
    let mut challenges = Vec::new();
    for _ in 0..5 {
        let id = start_pairing(&app, "olga", json!(["read"])).await;
        let code = pending_code(&app, &owner_key, &id).await;
        challenges.push((id, code));
    }
    // Ten wrong codes: three on each of the first three challenges, one on the fourth.
    for (id, code) in &challenges[..3] {
        refused_redeem(&app, id, &wrong(code), "invalid_code", Some(2)).await;
        refused_redeem(&app, id, &wrong(code), "invalid_code", Some(1)).await;
        refused_redeem(&app, id, &wrong(code), "challenge_failed", None).await;
    }
    let (id, code) = &challenges[3];
    refused_redeem(&app, id, &wrong(code), "invalid_code", Some(2)).await;

    // The budget is spent: an eleventh guess fails like a wrong code, even a right one.
    let (id, code) = &challenges[4];
    refused_redeem(&app, id, code, "invalid_code", Some(2)).await;
    let (id, code) = &challenges[3];
    refused_redeem(&app, id, code, "invalid_code", Some(1)).await;
}

both_backends!(
    no_guess_past_the_daily_budget_can_succeed,
    a_key_cannot_grant_more_than_it_holds,
    guessing_budget_blocks_an_account_after_ten_wrong_codes,
);

async fn address_limit_trusts_forwarded_for_only_from_trusted_proxies(backend: Backend) {
    let ask = |app: &TestApp, n: usize, forwarded_for: String| {
        let request = app
            .http
            .post(app.url("/v1/auth/challenges"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"app_name": "x", "account": format!("user{n}"), "scopes": ["read"]}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Without trusted proxies the header is ignored: all come from 127.0.0.1.
    let direct = spawn_app(backend).await;
    for n in 0..10 {
        assert_eq!(ask(&direct, n, format!("203.0.113.{n}")).await, 201);
    }
    assert_eq!(
        ask(&direct, 10, "203.0.113.99".into()).await,
        429,
        "a forged header buys nothing"
    );

    // Behind a trusted proxy, each forwarded client has its own budget.
    let proxied =
        crate::helpers::spawn_app_with(backend, "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n")
            .await;
    for n in 0..12 {
        assert_eq!(ask(&proxied, n, format!("203.0.113.{n}")).await, 201);
    }
    for n in 20..30 {
        assert_eq!(ask(&proxied, n, "198.51.100.1".into()).await, 201);
    }
    assert_eq!(ask(&proxied, 30, "198.51.100.1".into()).await, 429);
}

both_backends!(address_limit_trusts_forwarded_for_only_from_trusted_proxies);

/// `POST /api/v1/challenges/{id}/deny` as the owner of `key`: status, body, headers.
async fn deny(app: &TestApp, key: &str, id: &str) -> (u16, Value, HeaderMap) {
    let response = app
        .http
        .post(app.url(&format!("/api/v1/challenges/{id}/deny")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.json().await.expect("a JSON body"), headers)
}

async fn denying_an_unknown_or_settled_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    create_account(&app, "gina", "read keys");
    let (_, owner_key) = create_key(&app, "gina", "read keys");
    create_account(&app, "hank", "read keys");

    let (status, body, headers) = deny(&app, &owner_key, "no-such-challenge").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert_eq!(headers["tollgate-version"], "2026-11-22");
    assert_eq!(headers["cache-control"], "no-store");
    // Another account's challenge, and one for an account that does not exist, are
    // "not found" too; they stay as they were.
    let others = start_pairing(&app, "hank", json!(["read"])).await;
    let nobodys = start_pairing(&app, "nobody", json!(["read"])).await;
    for id in [&others, &nobodys] {
        let (status, body, _) = deny(&app, &owner_key, id).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{body}"
        );
    }
    assert_eq!(stored_challenge(&app, &others).status.as_str(), "pending");
    assert_eq!(find_challenge(&app, &nobodys), None);

    let challenge = start_pairing(&app, "gina", json!(["read"])).await;
    let (status, body, _) = deny(&app, &owner_key, &challenge).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"challenge_id": challenge, "status": "denied"}));
    let (status, body, headers) = deny(&app, &owner_key, &challenge).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(stored_challenge(&app, &challenge).status.as_str(), "denied");
    assert_eq!(audit_events(&app, "gina", "challenge.denied").len(), 1);
}

async fn pairing_takes_handles_of_up_to_forty_characters(backend: Backend) {
    let app = spawn_app(backend).await;
    let longest = format!("a{}", "b".repeat(39));
    assert_eq!(longest.len(), 40);
    create_account(&app, &longest, "read keys");
    let (_, owner_key) = create_key(&app, &longest, "read keys");
    let challenge = start_pairing(&app, &longest, json!(["read"])).await;
    // The owner sees it: the handle reached the account, not just an answer-alike 201.
    pending_code(&app, &owner_key, &challenge).await;

    let too_long = format!("{longest}c");
    let (status, body, headers) = ask_pairing(&app, &too_long, json!(["read"])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert_eq!(headers["tollgate-version"], "2026-11-22");
    assert_eq!(headers["cache-control"], "no-store");
    // The same limit as account creation.
    let output = app.cli(&["account", "create", "--handle", &too_long]);
    assert!(!output.status.success());
}

both_backends!(
    denying_an_unknown_or_settled_challenge,
    pairing_takes_handles_of_up_to_forty_characters,
);

/// Someone asking in an account's name every few minutes cannot keep the account's own apps
/// from pairing: the per-account limit counts per account and address.
#[tokio::test]
async fn asking_in_an_accounts_name_does_not_block_its_own_apps() {
    let app = crate::helpers::spawn_app_with(
        Backend::Sqlite,
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    )
    .await;
    create_account(&app, "fay", "read");
    let ask_from = |address: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/v1/auth/challenges"))
                .header("x-forwarded-for", address)
                .json(&json!({"app_name": "x", "account": "fay", "scopes": ["read"]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for _ in 0..5 {
        assert_eq!(ask_from("198.51.100.7").await, 201);
    }
    assert_eq!(ask_from("198.51.100.7").await, 429);
    assert_eq!(
        ask_from("203.0.113.8").await,
        201,
        "the owner's app elsewhere"
    );
}
