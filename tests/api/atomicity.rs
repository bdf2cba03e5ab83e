//! A mutating use case is one transaction with its audit row: when the audit insert fails
//! (a trigger on the test database makes it fail), neither the change nor the audit row is
//! left, whether the use case is called directly (as the CLI does) or over HTTP.

use serde_json::json;
use tollgate::crypto::signer::SigningAlgorithm;
use tollgate::db::audit::AuditFilter;
use tollgate::db::{self, DbConn};
use tollgate::domain::KeyState;
use tollgate::oauth::Scope;
use tollgate::service::api_keys::KeySpec;
use tollgate::service::audit::Actor;
use tollgate::service::clients::ClientSpec;
use tollgate::service::{accounts, api_keys, clients, signing_keys};

use crate::both_backends;
use crate::helpers::{Backend, TestDb, assert_server_error, spawn_app, stderr};

/// Makes every insert into `audit_events` fail with "audit down".
fn break_audit(db: &TestDb) {
    db.execute(match db.backend {
        Backend::Sqlite => {
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'audit down'); END;"
        }
        // Created in the test's schema, the first (and only) one on its search_path.
        Backend::Postgres => {
            "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit down'; END $$; \
             CREATE TRIGGER audit_down BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION audit_down();"
        }
    });
}

fn repair_audit(db: &TestDb) {
    db.execute(match db.backend {
        Backend::Sqlite => "DROP TRIGGER audit_down;",
        Backend::Postgres => "DROP TRIGGER audit_down ON audit_events; DROP FUNCTION audit_down();",
    });
}

/// A client's id, secret digest, disabled_at, tokens_not_before and updated_at.
type ClientState = (String, Vec<u8>, Option<i64>, Option<i64>, i64);
/// A signing key's kid, state, activated_at, retired_at and publish_until.
type SigningKeyState = (String, KeyState, Option<i64>, Option<i64>, Option<i64>);

/// Everything the use cases below could change, as read through the `db` layer.
#[derive(Debug, PartialEq)]
struct Snapshot {
    clients: Vec<ClientState>,
    accounts: Vec<(String, Option<i64>)>,
    /// id, revoked_at
    api_keys: Vec<(String, Option<i64>)>,
    signing_keys: Vec<SigningKeyState>,
    /// seq, action
    audit: Vec<(i64, String)>,
}

fn snapshot(conn: &mut DbConn) -> Snapshot {
    let accounts = db::accounts::list(conn).unwrap();
    let mut api_keys = Vec::new();
    for account in &accounts {
        for key in db::api_keys::of_account(conn, &account.id).unwrap() {
            api_keys.push((key.id, key.revoked_at));
        }
    }
    Snapshot {
        clients: db::clients::list(conn)
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    c.secret_digest,
                    c.disabled_at,
                    c.tokens_not_before,
                    c.updated_at,
                )
            })
            .collect(),
        accounts: accounts
            .into_iter()
            .map(|a| (a.id, a.disabled_at))
            .collect(),
        api_keys,
        signing_keys: db::keys::list(conn)
            .unwrap()
            .into_iter()
            .map(|k| {
                (
                    k.kid,
                    k.state,
                    k.activated_at,
                    k.retired_at,
                    k.publish_until,
                )
            })
            .collect(),
        audit: db::audit::list(conn, &AuditFilter::default(), 1000)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.action))
            .collect(),
    }
}

/// The use case failed, and because of the audit trigger (not, say, a missing row).
fn assert_audit_down<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) {
    match result {
        Ok(_) => panic!("{what} succeeded although its audit row could not be written"),
        Err(err) => assert!(
            err.to_string().contains("audit down"),
            "{what} failed for another reason: {err}"
        ),
    }
}

async fn a_failed_audit_write_leaves_neither_change_nor_audit_row(backend: Backend) {
    let app = spawn_app(backend).await;
    let ops = app.create_client("ops", "admin", &[]);
    let admin = app.access_token(&ops, &[]).await;
    let victim = app.create_client("victim", "read", &[]);
    let output = app.cli(&["account", "create", "--handle", "alice", "--scope", "read"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let key = app.cli_json(&[
        "api-key",
        "create",
        "--account",
        "alice",
        "--name",
        "deploy",
        "--scope",
        "read",
        "--json",
    ]);
    let key_id = key["id"].as_str().unwrap().to_owned();

    let master = app.db.master_key();
    let mut conn = app.db.conn();
    let before = snapshot(&mut conn);
    assert_eq!(before.api_keys, [(key_id.clone(), None)]);
    let mut states: Vec<&str> = before.signing_keys.iter().map(|k| k.1.as_str()).collect();
    states.sort_unstable();
    assert_eq!(states, ["active", "next"]);

    break_audit(&app.db);
    let (actor, now) = (Actor::cli(), app.clock.now());
    let spec = ClientSpec {
        name: "new".into(),
        scopes: Scope::parse("read").unwrap(),
        audiences: vec![],
        token_ttl: None,
        grant_types: vec![],
    };
    assert_audit_down(
        clients::create(&mut conn, &actor, &spec, now),
        "clients::create",
    );
    assert_audit_down(
        clients::set_disabled(&mut conn, &actor, &victim.id, true, now),
        "clients::set_disabled",
    );
    assert_audit_down(
        clients::rotate_secret(&mut conn, &actor, &victim.id, 0, now),
        "clients::rotate_secret",
    );
    assert_audit_down(
        accounts::create(
            &mut conn,
            &actor,
            &accounts::NewAccount {
                handle: "bob",
                display_name: None,
                scopes: &Scope::parse("read").unwrap(),
                operator: false,
            },
            now,
        ),
        "accounts::create",
    );
    let key_spec = KeySpec {
        name: "another".into(),
        scopes: None,
        expires_in: None,
    };
    assert_audit_down(
        api_keys::create_for(&mut conn, &actor, "alice", &key_spec, now),
        "api_keys::create_for",
    );
    assert_audit_down(
        api_keys::revoke(&mut conn, &actor, &key_id, api_keys::Within::Any, now),
        "api_keys::revoke",
    );
    assert_audit_down(
        signing_keys::rotate(
            &mut conn,
            &actor,
            &master,
            SigningAlgorithm::ES256,
            60,
            now,
            signing_keys::Activation::PrePublished,
        ),
        "signing_keys::rotate",
    );

    // Over HTTP: the same failure is an opaque 500, and nothing is left either.
    let created = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "over-http", "scopes": "read"}))
        .send()
        .await
        .unwrap();
    assert_server_error(created, "POST /admin/clients").await;
    let rotated = app
        .http
        .post(app.url("/admin/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_server_error(rotated, "POST /admin/keys/rotate").await;
    let disabled = app
        .http
        .post(app.url(&format!("/admin/clients/{}/disable", victim.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_server_error(disabled, "POST /admin/clients/{id}/disable").await;

    repair_audit(&app.db);
    assert_eq!(
        snapshot(&mut conn),
        before,
        "nothing changed, nothing audited"
    );
    // The client is still enabled and its old secret still gets a token.
    let token = app.access_token(&victim, &[]).await;
    assert!(!token.is_empty());

    // With the trigger gone the same use case goes through, with exactly one audit row:
    // the failures above were the trigger's doing.
    clients::set_disabled(&mut conn, &actor, &victim.id, true, app.clock.now()).unwrap();
    let after = snapshot(&mut conn);
    assert_eq!(after.audit.len(), before.audit.len() + 1);
    assert_eq!(after.audit[0].1, "client.disabled");
    assert!(
        after
            .clients
            .iter()
            .any(|c| c.0 == victim.id && c.2.is_some())
    );
}

both_backends!(a_failed_audit_write_leaves_neither_change_nor_audit_row);
