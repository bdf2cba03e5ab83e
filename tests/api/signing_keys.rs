//! Signing key rotation: announce before use, and never a key the servers cannot open.

use serde_json::Value;
use tollgate::crypto::sealed::MasterKey;
use tollgate::db;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, stderr};

/// (kid, algorithm, state, sealed key) of every stored key.
fn stored_keys(app: &TestApp) -> Vec<(String, String, String, Vec<u8>)> {
    db::keys::list(&mut app.db.conn())
        .unwrap()
        .into_iter()
        .map(|k| {
            (
                k.kid,
                k.algorithm.as_str().to_owned(),
                k.state.as_str().to_owned(),
                k.sealed_private_key,
            )
        })
        .collect()
}

fn keys_in(app: &TestApp, state: &str) -> Vec<(String, String)> {
    stored_keys(app)
        .into_iter()
        .filter(|k| k.2 == state)
        .map(|k| (k.0, k.1))
        .collect()
}

/// The CLI on this database, but with another master key.
fn cli_with_master(db: &TestDb, master: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .args(args)
        .current_dir(db.dir.path())
        .env_remove("TOLLGATE_CONFIG");
    for (name, value) in db.env() {
        command.env(name, value);
    }
    command.env("TOLLGATE_MASTER_KEY", master);
    command.output().expect("run tollgate")
}

async fn a_wrong_master_key_writes_no_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = stored_keys(&app);
    let audit_before = db::audit::list(&mut app.db.conn(), &Default::default(), 1000)
        .unwrap()
        .len();
    let wrong = MasterKey::generate_encoded();
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa2048-test-only.pem"
    );
    for args in [
        &["signing-key", "rotate"][..],
        &["signing-key", "rotate", "--immediately"],
        &["signing-key", "rotate", "--algorithm", "EdDSA"],
        &[
            "signing-key",
            "import",
            "--algorithm",
            "RS256",
            "--pem",
            pem,
        ],
        &[
            "signing-key",
            "import",
            "--algorithm",
            "RS256",
            "--pem",
            pem,
            "--immediately",
        ],
    ] {
        let output = cli_with_master(&app.db, &wrong, args);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(
            stderr(&output).contains("master key does not open the stored signing key"),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stored_keys(&app), before, "{args:?} wrote nothing");
    }
    let audit_after = db::audit::list(&mut app.db.conn(), &Default::default(), 1000)
        .unwrap()
        .len();
    assert_eq!(audit_before, audit_after, "and recorded nothing");
    // The right key still works, and the server keeps serving.
    let rotated = app.cli_json(&["signing-key", "rotate", "--json"]);
    assert_eq!(rotated["state"], "active");

    // The server's own paths: start-up with no `next` key to publish refuses as well.
    let master = app.db.master_key();
    let mut conn = app.db.conn();
    db::keys::delete_next(&mut conn).unwrap();
    let before = stored_keys(&app);
    let wrong = MasterKey::parse(&MasterKey::generate_encoded()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let refused = tollgate::service::signing_keys::ensure_signing_key(
        &mut conn,
        &wrong,
        tollgate::crypto::signer::SigningAlgorithm::ES256,
        60,
        now,
    );
    assert!(
        matches!(
            refused,
            Err(tollgate::service::signing_keys::KeyServiceError::WrongMasterKey(_))
        ),
        "{refused:?}"
    );
    let refused = tollgate::service::signing_keys::rotate_if_due(
        &mut conn,
        &wrong,
        tollgate::crypto::signer::SigningAlgorithm::ES256,
        0,
        60,
        now,
    );
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(stored_keys(&app), before);
    tollgate::service::signing_keys::ensure_signing_key(
        &mut conn,
        &master,
        tollgate::crypto::signer::SigningAlgorithm::ES256,
        60,
        now,
    )
    .unwrap();
    assert_eq!(keys_in(&app, "next").len(), 1);
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get_json("/.well-known/jwks.json").await.1;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn rotation_always_pre_publishes_unless_immediately(backend: Backend) {
    let app = spawn_app(backend).await;
    let (active, next) = (keys_in(&app, "active"), keys_in(&app, "next"));
    assert_eq!((active.len(), next.len()), (1, 1));

    // Another algorithm: the published ES256 `next` key signs, an EdDSA key is published.
    let rotated = app.cli_json(&["signing-key", "rotate", "--algorithm", "EdDSA", "--json"]);
    assert_eq!(rotated["kid"], next[0].0.as_str());
    assert_eq!(keys_in(&app, "active"), next);
    let eddsa = keys_in(&app, "next");
    assert_eq!(eddsa[0].1, "EdDSA");
    assert!(
        crate::helpers::eventually(5, || async { jwks_kids(&app).await.contains(&eddsa[0].0) })
            .await,
        "the EdDSA key is published before it signs"
    );

    // Import without --immediately: the imported key replaces the pending `next` key.
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
        "--json",
    ]);
    assert_eq!(imported["state"], "next");
    assert_eq!(
        keys_in(&app, "active"),
        next,
        "the active key did not change"
    );
    let rsa = imported["kid"].as_str().unwrap().to_owned();
    assert_eq!(keys_in(&app, "next"), [(rsa.clone(), "RS256".to_owned())]);
    let rotated = app.cli_json(&["signing-key", "rotate", "--json"]);
    assert_eq!(rotated["kid"], rsa.as_str());
    assert_eq!(keys_in(&app, "next")[0].1, "ES256");

    // --immediately: a new key signs at once; the `next` key of that algorithm stays.
    let pending = keys_in(&app, "next");
    let now = app.cli_json(&["signing-key", "rotate", "--immediately", "--json"]);
    assert_eq!(now["state"], "active");
    assert_ne!(now["kid"], pending[0].0.as_str());
    assert_eq!(keys_in(&app, "next"), pending);
    // ... and of another algorithm, the pending `next` key is replaced by one of it.
    let now = app.cli_json(&[
        "signing-key",
        "rotate",
        "--immediately",
        "--algorithm",
        "EdDSA",
        "--json",
    ]);
    assert_eq!(now["algorithm"], "EdDSA");
    assert_eq!(keys_in(&app, "next")[0].1, "EdDSA");
    assert_eq!(keys_in(&app, "active").len(), 1);

    // With no `next` key (a damaged or old database), a rotation only publishes one.
    db::keys::delete_next(&mut app.db.conn()).unwrap();
    let active = keys_in(&app, "active");
    let published = app.cli_json(&["signing-key", "rotate", "--json"]);
    assert_eq!(published["state"], "next");
    assert_eq!(keys_in(&app, "active"), active);

    // The admin API pre-publishes too.
    let next = keys_in(&app, "next");
    let admin = app.admin_token().await;
    let response = app
        .http
        .post(app.url("/admin/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kid"], next[0].0.as_str());
}

both_backends!(
    a_wrong_master_key_writes_no_key,
    rotation_always_pre_publishes_unless_immediately,
);
