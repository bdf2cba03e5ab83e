//! The in-memory view (`tollgate::cache`): warm lookups make no database round trip, and
//! every change — made on another instance, by the CLI, or while the feed was down — is
//! acted on within the stated bound of one second, on both backends.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, cli, postgres_url, spawn_app_on, stderr};

/// The bound the README states for a change to reach every instance.
const BOUND: Duration = Duration::from_secs(1);

/// Polls `check` every 5 ms; how long it took to hold, or None if not within `BOUND`.
async fn took<F, Fut>(mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > BOUND {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn token_status(app: &TestApp, id: &str, secret: &str) -> u16 {
    app.http
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn me_status(app: &TestApp, key: &str) -> u16 {
    app.http
        .get(app.url("/api/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// (hits, misses, times the view was forgotten or not trusted).
fn cache_counts(app: &TestApp) -> (u64, u64, u64) {
    let cache = app.cache();
    let stats = &cache.stats;
    (
        cache.hits(),
        cache.misses(),
        stats.resyncs.load(Ordering::Relaxed) + stats.stale.load(Ordering::Relaxed),
    )
}

/// Instances of one deployment share the issuer (behind one public URL).
const SHARED_ISSUER: &str = "[server]\nissuer = \"https://auth.example.test\"\n";

fn new_key(db: &TestDb, handle: &str) -> (String, String) {
    let output = cli(
        db,
        &[
            "api-key",
            "create",
            "--account",
            handle,
            "--name",
            "k",
            "--json",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let key: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        key["id"].as_str().unwrap().to_owned(),
        key["api_key"].as_str().unwrap().to_owned(),
    )
}

/// Runs the CLI without waiting for any server to see the change.
fn cli_ok(db: &TestDb, args: &[&str]) {
    let output = cli(db, args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
}

async fn warm_requests_are_answered_from_memory(backend: Backend) {
    let db = TestDb::new(backend);
    let app = spawn_app_on(db.clone(), "").await;
    let client = app.create_client("svc", "read", &[]);
    let caller = app.create_client("rs", "introspect", &[]);
    app.cli_json(&[
        "account", "create", "--handle", "ann", "--scope", "read", "--json",
    ]);
    let (_, key) = new_key(&db, "ann");
    // The key's creation, seen by the feed after the warm-up, would evict it once.
    app.cache().catch_up_blocking();
    // Warm up: the first of each reads the database.
    let token = app.access_token(&client, &[]).await;
    assert_eq!(app.introspect_as(&caller, &token).await["active"], true);
    assert_eq!(me_status(&app, &key).await, 200);
    assert_eq!(me_status(&app, &key).await, 200);

    // Another test on the same PostgreSQL database may make every feed start over (see
    // `a_lost_listening_session_forgets_the_view`), and a machine busy enough to delay the
    // feed past its lease makes lookups read the database meanwhile (as they must):
    // measure in a window without either.
    let mut measured = false;
    for _ in 0..5 {
        let (_, _, resyncs_before) = cache_counts(&app);
        // Refills whatever a start-over just before this window forgot.
        app.access_token(&client, &[]).await;
        assert_eq!(app.introspect_as(&caller, &token).await["active"], true);
        assert_eq!(me_status(&app, &key).await, 200);
        let (hits_before, misses_before, _) = cache_counts(&app);
        for _ in 0..20 {
            app.access_token(&client, &[]).await;
            assert_eq!(app.introspect_as(&caller, &token).await["active"], true);
            assert_eq!(me_status(&app, &key).await, 200);
        }
        let (hits, misses, resyncs) = cache_counts(&app);
        if resyncs != resyncs_before {
            continue;
        }
        assert_eq!(
            misses, misses_before,
            "warm lookups never read the database"
        );
        assert!(hits >= hits_before + 20 * 5, "{hits_before} -> {hits}");

        // An unknown client id is read once, then remembered as unknown.
        for _ in 0..10 {
            assert_eq!(token_status(&app, "no-such-client", "x").await, 401);
        }
        if cache_counts(&app).2 != resyncs {
            continue;
        }
        assert_eq!(cache_counts(&app).1, misses + 1);
        measured = true;
        break;
    }
    assert!(measured, "the view kept being forgotten");
    // ... until a client with that id appears.
    db.execute(&format!(
        "INSERT INTO clients (id, name, secret_digest, scopes, audiences, grant_types, created_at, updated_at) \
         SELECT 'no-such-client', 'copy', secret_digest, scopes, audiences, grant_types, created_at, updated_at \
         FROM clients WHERE id = '{}'",
        client.id
    ));
    let seen =
        took(|| async { token_status(&app, "no-such-client", &client.secret).await == 200 }).await;
    assert!(seen.is_some(), "a client created with plain SQL is found");
}

async fn changes_on_one_instance_reach_the_other_within_a_second(backend: Backend) {
    let db = TestDb::new(backend);
    let a = spawn_app_on(db.clone(), SHARED_ISSUER).await;
    let b = spawn_app_on(db.clone(), SHARED_ISSUER).await;
    let client = a.create_client("svc", "read", &[]);
    let caller = a.create_client("rs", "introspect", &[]);
    a.cli_json(&[
        "account",
        "create",
        "--handle",
        "ann",
        "--scope",
        "read keys",
        "--json",
    ]);
    let (key_id, key) = new_key(&db, "ann");
    let (_, other_key) = new_key(&db, "ann");
    let token = b.access_token(&client, &[]).await;
    // B warm: every lookup below is in its memory.
    assert_eq!(b.introspect_as(&caller, &token).await["active"], true);
    assert_eq!(me_status(&b, &key).await, 200);
    assert_eq!(me_status(&b, &other_key).await, 200);

    // A token revoked on A.
    let revoked = a
        .http
        .post(a.url("/oauth/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let delay = took(|| async { b.introspect_as(&caller, &token).await["active"] == false }).await;
    assert!(
        delay.is_some(),
        "a revocation on A holds on B within {BOUND:?}"
    );

    // An API key revoked on A.
    let response = a
        .http
        .post(a.url(&format!("/api/v1/keys/{key_id}/revoke")))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        took(|| async { me_status(&b, &key).await == 401 })
            .await
            .is_some()
    );

    // A client disabled on A (admin API).
    let admin_client = a.create_client("ops", "admin", &[]);
    let admin = a.access_token(&admin_client, &[]).await;
    assert_eq!(token_status(&b, &client.id, &client.secret).await, 200);
    let disabled = a
        .http
        .post(a.url(&format!("/admin/clients/{}/disable", client.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    // On A at once: the request that changed it waited for A's own view.
    assert_eq!(token_status(&a, &client.id, &client.secret).await, 401);
    let delay = took(|| async { token_status(&b, &client.id, &client.secret).await == 401 }).await;
    assert!(
        delay.is_some(),
        "a client disabled on A is refused by B within {BOUND:?}"
    );

    // An account disabled on A: its remaining key stops on B.
    assert_eq!(me_status(&b, &other_key).await, 200);
    let disabled = a
        .http
        .post(a.url("/admin/accounts/ann/disable"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    assert!(
        took(|| async { me_status(&b, &other_key).await == 401 })
            .await
            .is_some()
    );
}

async fn cli_changes_reach_a_running_server_within_a_second(backend: Backend) {
    let db = TestDb::new(backend);
    let app = spawn_app_on(db.clone(), "").await;
    let client = app.create_client("svc", "read", &[]);
    let caller = app.create_client("rs", "introspect", &[]);
    let token = app.access_token(&client, &[]).await;
    assert_eq!(app.introspect_as(&caller, &token).await["active"], true);

    // A secret rotated without grace: the old one stops, the new one works.
    let output = cli(&db, &["client", "rotate-secret", &client.id, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rotated: Value = serde_json::from_slice(&output.stdout).unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let delay =
        took(|| async { token_status(&app, &client.id, &client.secret).await == 401 }).await;
    assert!(delay.is_some(), "the old secret stops within {BOUND:?}");
    assert_eq!(token_status(&app, &client.id, &new_secret).await, 200);

    // All tokens of the client revoked in bulk.
    cli_ok(&db, &["client", "revoke-tokens", &client.id]);
    assert!(
        took(|| async { app.introspect_as(&caller, &token).await["active"] == false })
            .await
            .is_some()
    );

    // The client deleted.
    cli_ok(&db, &["client", "delete", &client.id]);
    assert!(
        took(|| async { token_status(&app, &client.id, &new_secret).await == 401 })
            .await
            .is_some()
    );

    // An account's key revoked, an account disabled.
    cli_ok(
        &db,
        &["account", "create", "--handle", "bo", "--scope", "read"],
    );
    let (key_id, key) = new_key(&db, "bo");
    let (_, second) = new_key(&db, "bo");
    assert!(
        took(|| async { me_status(&app, &key).await == 200 })
            .await
            .is_some()
    );
    assert_eq!(me_status(&app, &second).await, 200);
    cli_ok(&db, &["api-key", "revoke", &key_id]);
    assert!(
        took(|| async { me_status(&app, &key).await == 401 })
            .await
            .is_some()
    );
    cli_ok(&db, &["account", "disable", "bo"]);
    assert!(
        took(|| async { me_status(&app, &second).await == 401 })
            .await
            .is_some()
    );
    cli_ok(&db, &["account", "enable", "bo"]);
    assert!(
        took(|| async { me_status(&app, &second).await == 200 })
            .await
            .is_some()
    );
}

both_backends!(warm_requests_are_answered_from_memory);
both_backends!(changes_on_one_instance_reach_the_other_within_a_second);
both_backends!(cli_changes_reach_a_running_server_within_a_second);

/// PostgreSQL: the listening session is killed; changes made before it is back are
/// still acted on (the view is forgotten and rebuilt, not trusted).
#[tokio::test]
async fn a_lost_listening_session_forgets_the_view() {
    if postgres_url().is_none() {
        return;
    }
    let db = TestDb::new(Backend::Postgres);
    let app = spawn_app_on(db.clone(), "").await;
    let client = app.create_client("svc", "read", &[]);
    assert_eq!(token_status(&app, &client.id, &client.secret).await, 200);
    // Every change feed's session on this server: other tests' feeds reconnect too,
    // which is what they must survive anyway.
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'tollgate-change-feed'",
    );
    cli_ok(&db, &["client", "disable", &client.id]);
    let delay =
        took(|| async { token_status(&app, &client.id, &client.secret).await == 401 }).await;
    assert!(
        delay.is_some(),
        "refused within {BOUND:?} though the feed was lost"
    );
    assert!(
        took(|| async { app.cache().is_fresh() }).await.is_some(),
        "the feed reconnects"
    );
}
