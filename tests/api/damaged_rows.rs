//! A stored value that does not parse (a scope list breaking RFC 6749 §3.3, an unknown key
//! state) is an error everywhere it is read: an opaque 500, never a token without scopes,
//! a 401 or a silently shorter list.

use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use serde_json::Value;
use tollgate::db::{self, DbError};
use tollgate::domain::{CorruptRow, KeyState};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, assert_server_error, spawn_app, stderr};

/// `UPDATE <table> SET <column> = value WHERE <key> = id`, bypassing the domain layer.
fn damage(app: &TestApp, table: &str, column: &str, key: &str, id: &str, value: &str) {
    let changed = diesel::sql_query(format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2"))
        .bind::<Text, _>(value)
        .bind::<Text, _>(id)
        .execute(&mut app.db.conn())
        .unwrap();
    assert_eq!(changed, 1, "{table} {id}");
    // Plain SQL is seen through the change feed, within milliseconds: wait for it.
    app.cache().catch_up_blocking();
}

fn assert_corrupt<T>(result: Result<T, DbError>, table: &str, id: &str) {
    match result {
        Err(DbError::Corrupt(CorruptRow {
            table: found_table,
            id: found_id,
            ..
        })) => assert_eq!((found_table, found_id.as_str()), (table, id)),
        Err(other) => panic!("{table} {id}: expected a damaged row, got {other}"),
        Ok(_) => panic!("{table} {id}: a damaged row was read as if it were fine"),
    }
}

async fn get(app: &TestApp, path: &str, bearer: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
}

async fn a_damaged_client_scope_is_a_server_error_never_no_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    for bad in ["read  write", "read \"write\"", " read"] {
        let client = app.create_client("svc", "read write", &[]);
        damage(&app, "clients", "scopes", "id", &client.id, bad);

        for form in [
            vec![("grant_type", "client_credentials")],
            vec![("grant_type", "client_credentials"), ("scope", "read")],
        ] {
            let response = app.token_request(Some(&client), &form).await;
            assert_eq!(response.status(), 500, "{bad:?} {form:?}");
            assert_eq!(response.headers()["cache-control"], "no-store");
            assert_eq!(response.headers()["pragma"], "no-cache");
            assert!(!response.headers().contains_key("www-authenticate"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "server_error", "{bad:?}: {body}");
            assert!(body.get("access_token").is_none());
        }
        assert_server_error(get(&app, "/admin/clients", &admin).await, "list").await;
        let one = format!("/admin/clients/{}", client.id);
        assert_server_error(get(&app, &one, &admin).await, "get").await;
        assert_corrupt(
            db::clients::find(&mut app.db.conn(), &client.id),
            "clients",
            &client.id,
        );
        assert_corrupt(db::clients::list(&mut app.db.conn()), "clients", &client.id);

        // Repaired, the same client gets its token again: the 500 was the damage.
        damage(&app, "clients", "scopes", "id", &client.id, "read write");
        let token = app.token(&client, &[]).await;
        assert_eq!(token["scope"], "read write");
        let listed = get(&app, "/admin/clients", &admin).await;
        assert_eq!(listed.status(), 200);
    }
}

async fn a_damaged_api_key_scope_is_a_server_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let output = app.cli(&[
        "account",
        "create",
        "--handle",
        "alice",
        "--scope",
        "read keys",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let created = app.cli_json(&[
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
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["api_key"].as_str().unwrap(),
    );
    let me = get(&app, "/api/v1/me", key).await;
    assert_eq!(me.status(), 200, "the key works before the damage");

    damage(&app, "api_keys", "scopes", "id", id, "read  keys");
    assert_server_error(get(&app, "/api/v1/me", key).await, "/api/v1/me").await;
    assert_server_error(
        get(&app, "/admin/accounts/alice/keys", &admin).await,
        "admin key list",
    )
    .await;
    let mut conn = app.db.conn();
    let account = db::accounts::by_handle(&mut conn, "alice")
        .unwrap()
        .unwrap();
    assert_corrupt(
        db::api_keys::of_account(&mut conn, &account.id),
        "api_keys",
        id,
    );
    assert_corrupt(db::api_keys::by_id(&mut conn, id), "api_keys", id);
}

async fn a_damaged_signing_key_state_is_a_server_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token().await;
    let mut conn = app.db.conn();
    let next = db::keys::list(&mut conn)
        .unwrap()
        .into_iter()
        .find(|k| k.state == KeyState::Next)
        .expect("a pre-published key")
        .kid;
    damage(&app, "signing_keys", "state", "kid", &next, "bogus");

    assert_corrupt(db::keys::list(&mut conn), "signing_keys", &next);
    assert_corrupt(db::keys::fingerprint(&mut conn), "signing_keys", &next);
    assert_corrupt(db::keys::find(&mut conn, &next), "signing_keys", &next);
    assert_server_error(get(&app, "/admin/keys", &admin).await, "/admin/keys").await;
    let output = app.cli(&["signing-key", "list"]);
    assert!(!output.status.success(), "the CLI does not list around it");
    let message = stderr(&output);
    assert!(
        message.contains("damaged row") && message.contains(&next),
        "{message}"
    );
}

both_backends!(
    a_damaged_client_scope_is_a_server_error_never_no_scope,
    a_damaged_api_key_scope_is_a_server_error,
    a_damaged_signing_key_state_is_a_server_error,
);
