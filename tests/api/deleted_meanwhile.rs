//! An account deleted while a request about it is in flight: between the request's read of
//! the account and its write of a row that belongs to it, a concurrent delete commits
//! (PostgreSQL runs them side by side). The request answers as it would for an account that
//! does not exist, never with a 500, and writes nothing.
//!
//! The race is made certain with a trigger that deletes the account just before the row is
//! inserted; the insert then fails its foreign key, and the failed statement takes the
//! trigger's delete back with it, so the account is still there afterwards (which the last
//! step uses to show that the trigger was the only thing in the way).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::console::{Browser, PASSWORD, account_with_invite};
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, status_and_json};

/// Makes every insert into `table` delete the row's account first.
fn delete_account_before_insert_into(db: &TestDb, table: &str) {
    db.execute(&match db.backend {
        Backend::Sqlite => format!(
            "CREATE TRIGGER gone_{table} BEFORE INSERT ON {table} \
             BEGIN DELETE FROM accounts WHERE id = NEW.account_id; END;"
        ),
        Backend::Postgres => format!(
            "CREATE OR REPLACE FUNCTION gone_meanwhile() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN DELETE FROM accounts WHERE id = NEW.account_id; RETURN NEW; END $$; \
             CREATE TRIGGER gone_{table} BEFORE INSERT ON {table} \
             FOR EACH ROW EXECUTE FUNCTION gone_meanwhile();"
        ),
    });
}

fn stop_deleting_before_insert_into(db: &TestDb, table: &str) {
    db.execute(&match db.backend {
        Backend::Sqlite => format!("DROP TRIGGER gone_{table};"),
        Backend::Postgres => format!("DROP TRIGGER gone_{table} ON {table};"),
    });
}

async fn admin_call(app: &TestApp, admin: &str, path: &str, body: Value) -> (u16, Value) {
    let request = app
        .http
        .request(Method::POST, app.url(path))
        .bearer_auth(admin)
        .json(&body);
    status_and_json(request.send().await.unwrap()).await
}

/// `POST /admin/accounts/gone/keys`.
async fn create_key(app: &TestApp, admin: &str) -> (u16, Value) {
    admin_call(
        app,
        admin,
        "/admin/accounts/gone/keys",
        json!({"name": "deploy"}),
    )
    .await
}

fn audit_actions(app: &TestApp, handle: &str) -> Vec<String> {
    let audit = app.cli_json(&["audit", "--account", handle, "--json"]);
    audit
        .as_array()
        .expect("a list of events")
        .iter()
        .map(|event| event["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn key_count(app: &TestApp, handle: &str) -> usize {
    let keys = app.cli_json(&["api-key", "list", "--account", handle, "--json"]);
    keys.as_array().expect("a list of keys").len()
}

async fn an_account_deleted_meanwhile_is_not_found_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let invite = account_with_invite(&app, "gone", "read", &[]);
    let browser = Browser::new(&app);
    let accepted = browser.accept_invite(&invite, PASSWORD).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    let audit_before = audit_actions(&app, "gone");

    // A key made through the admin API.
    delete_account_before_insert_into(&app.db, "api_keys");
    let (status, body) = create_key(&app, &admin).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("no account"),
        "{body}"
    );
    stop_deleting_before_insert_into(&app.db, "api_keys");

    // An invite link.
    delete_account_before_insert_into(&app.db, "account_invites");
    let (status, body) = admin_call(&app, &admin, "/admin/accounts/gone/invite", json!({})).await;
    assert_eq!(status, 404, "{body}");
    stop_deleting_before_insert_into(&app.db, "account_invites");

    // A pairing request gets the answer an unknown account gets, and stores nothing.
    delete_account_before_insert_into(&app.db, "pairing_challenges");
    let response = app
        .http
        .post(app.url("/v1/auth/challenges"))
        .json(&json!({"app_name": "Photo Sync", "account": "gone", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["challenge_id"].is_string(), "{body}");
    stop_deleting_before_insert_into(&app.db, "pairing_challenges");

    // An app authorization opened in the browser by the signed-in person.
    delete_account_before_insert_into(&app.db, "app_authorizations");
    let opened = browser
        .get("/console/authorize-app?session=6f1c2a3b-4d5e-4f60-8a71-92b3c4d5e6f7&name=Sync&permission=read")
        .await;
    assert_eq!(opened.status, StatusCode::NOT_FOUND, "{}", opened.body);
    stop_deleting_before_insert_into(&app.db, "app_authorizations");

    // A console sign-in whose account goes while the password is checked is refused.
    delete_account_before_insert_into(&app.db, "console_sessions");
    let signing_in = Browser::new(&app);
    let refused = signing_in.sign_in("gone", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("That handle and password do not match.")
    );
    assert!(
        refused
            .headers
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap_or_default().contains("tollgate_session")),
        "no session cookie"
    );
    stop_deleting_before_insert_into(&app.db, "console_sessions");

    assert_eq!(key_count(&app, "gone"), 0);
    assert_eq!(audit_actions(&app, "gone"), audit_before, "no audit event");
    let challenges = app.cli_json(&["challenge", "list", "--account", "gone", "--json"]);
    assert_eq!(challenges, json!([]), "no challenge stored");

    // Without the concurrent delete, the same requests succeed.
    let (status, body) = create_key(&app, &admin).await;
    assert_eq!(status, 201, "{body}");
    let signed_in = Browser::new(&app).sign_in("gone", PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
}

both_backends!(an_account_deleted_meanwhile_is_not_found_and_nothing_is_written);
