//! The audit trail: what signing key changes record, and filters that match nothing.

use serde_json::{Value, json};
use tollgate::db;
use tollgate::db::audit::AuditFilter;
use tollgate::domain::AuditEvent;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app};

/// Events with a `seq` above `after`, oldest first.
fn events_since(app: &TestApp, after: i64) -> Vec<AuditEvent> {
    let mut events = db::audit::list(&mut app.db.conn(), &AuditFilter::default(), 1000).unwrap();
    events.retain(|e| e.seq > after);
    events.reverse();
    events
}

fn last_seq(app: &TestApp) -> i64 {
    db::audit::list(&mut app.db.conn(), &AuditFilter::default(), 1)
        .unwrap()
        .first()
        .map_or(0, |e| e.seq)
}

fn active_kid(app: &TestApp) -> String {
    db::keys::in_state(&mut app.db.conn(), tollgate::domain::KeyState::Active)
        .unwrap()
        .expect("an active key")
        .kid
}

/// Exactly one event was written, and it is this one.
fn assert_one_key_event(
    events: &[AuditEvent],
    action: &str,
    actor: &str,
    kid: &str,
    retired: &str,
) {
    let summary: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.subject_id.as_deref()))
        .collect();
    assert_eq!(summary, [(action, actor, Some(kid))]);
    let event = &events[0];
    assert_eq!((&event.account_id, &event.client_id), (&None, &None));
    assert_eq!(event.details["active"], kid);
    assert_eq!(event.details["retired"], retired);
}

async fn signing_key_rotation_and_import_are_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let ops = app.create_client("ops", "admin", &[]);
    let admin = app.access_token(&ops, &[]).await;

    // The first key, made at start-up, is on record too.
    let startup = db::audit::list(&mut app.db.conn(), &AuditFilter::default(), 1000).unwrap();
    let startup: Vec<(&str, &str)> = startup
        .iter()
        .filter(|e| e.action.starts_with("signing_key."))
        .map(|e| (e.action.as_str(), e.actor.as_str()))
        .collect();
    assert_eq!(startup, [("signing_key.rotated", "system")]);

    let (seq, old) = (last_seq(&app), active_kid(&app));
    let rotated = app.cli_json(&["signing-key", "rotate", "--json"]);
    let kid = rotated["kid"].as_str().unwrap();
    assert_eq!(kid, active_kid(&app));
    assert_one_key_event(
        &events_since(&app, seq),
        "signing_key.rotated",
        "cli",
        kid,
        &old,
    );

    let (seq, old) = (last_seq(&app), active_kid(&app));
    let response = app
        .http
        .post(app.url("/admin/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let rotated: Value = response.json().await.unwrap();
    let kid = rotated["kid"].as_str().unwrap();
    assert_one_key_event(
        &events_since(&app, seq),
        "signing_key.rotated",
        &format!("admin:{}", ops.id),
        kid,
        &old,
    );

    let (seq, old) = (last_seq(&app), active_kid(&app));
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa2048-test-only.pem"
    );
    let imported = app.cli_json(&[
        "signing-key",
        "import",
        "--algorithm",
        "RS256",
        "--pem",
        pem,
        "--immediately",
        "--json",
    ]);
    let kid = imported["kid"].as_str().unwrap();
    assert_eq!(imported["algorithm"], "RS256");
    let events = events_since(&app, seq);
    assert_one_key_event(&events, "signing_key.imported", "cli", kid, &old);
    assert_eq!(events[0].details["how"], "imported and activated");

    // A refused import records nothing.
    let seq = last_seq(&app);
    let not_pem = app.db.dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let output = app.cli(&[
        "signing-key",
        "import",
        "--algorithm",
        "RS256",
        "--pem",
        not_pem.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(events_since(&app, seq).is_empty());
}

/// An RS256 import pre-publishes an ES256 `next` key (ring cannot generate RSA); the event
/// still names the algorithm of the key that was imported.
#[tokio::test]
async fn the_import_event_names_the_imported_algorithm() {
    let app = spawn_app(Backend::Sqlite).await;
    let seq = last_seq(&app);
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa2048-test-only.pem"
    );
    app.cli_json(&[
        "signing-key",
        "import",
        "--algorithm",
        "RS256",
        "--pem",
        pem,
        "--json",
    ]);
    let events = events_since(&app, seq);
    assert_eq!(events[0].action, "signing_key.imported");
    assert_eq!(
        events[0].details["algorithm"], "RS256",
        "{}",
        events[0].details
    );
}

/// PostgreSQL refuses a NUL byte in a text parameter: such a filter matches nothing,
/// on both backends alike (it was a 500 on PostgreSQL).
async fn audit_filters_with_a_nul_byte_match_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let get = |query: &str| {
        app.http
            .get(app.url(&format!("/admin/audit?{query}")))
            .bearer_auth(&admin)
            .send()
    };
    let all = get("").await.unwrap();
    assert_eq!(all.status(), 200);
    let all: Value = all.json().await.unwrap();
    assert!(!all["events"].as_array().unwrap().is_empty(), "{all}");

    let response = get("client=%00").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"events": []})
    );
    let response = get("client=ops%00").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"events": []})
    );
    // An account filter names a handle; one with a NUL byte is simply unknown.
    let response = get("account=%00").await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "not_found"
    );
}

both_backends!(
    signing_key_rotation_and_import_are_audited,
    audit_filters_with_a_nul_byte_match_nothing,
);
