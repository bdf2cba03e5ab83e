//! The CLI as a subprocess on the same database as a running server, and restarts.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestDb, cli, eventually, spawn_app, spawn_app_on, stderr, stdout};

async fn cli_manages_clients_and_the_server_sees_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client(
        "worker",
        "read write",
        &["--audience", "https://api.example.com", "--ttl", "60"],
    );

    let output = app.cli(&["client", "list", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list[0]["client_id"], client.id.as_str());
    assert!(
        !stdout(&output).contains(&client.secret),
        "list never shows a secret"
    );

    let output = app.cli(&["client", "show", &client.id, "--json"]);
    assert!(
        output.status.success(),
        "{:?} {}",
        output.status,
        stderr(&output)
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        shown["audiences"],
        serde_json::json!(["https://api.example.com"])
    );
    assert_eq!(shown["token_ttl"], 60);

    let human = app.cli(&["client", "list"]);
    assert!(stdout(&human).contains("worker"));

    app.token(&client, &[]).await;
    assert!(app.cli(&["client", "disable", &client.id]).status.success());
    let refused = app
        .token_request(Some(&client), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        refused.status(),
        401,
        "a disable through the CLI holds at once"
    );
    assert!(app.cli(&["client", "enable", &client.id]).status.success());
    app.token(&client, &[]).await;

    let rotated = app.cli_json(&[
        "client",
        "rotate-secret",
        &client.id,
        "--grace",
        "60",
        "--json",
    ]);
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    app.token(&client, &[]).await;
    let renewed = crate::helpers::Client {
        id: client.id.clone(),
        secret: new_secret,
    };
    app.token(&renewed, &[]).await;

    assert!(app.cli(&["client", "delete", &client.id]).status.success());
    let refused = app
        .token_request(Some(&renewed), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(refused.status(), 401);

    let missing = app.cli(&["client", "show", "no-such-client"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no client"),
        "{}",
        stderr(&missing)
    );
    let bad_scope = app.cli(&["client", "create", "--name", "x", "--scope", "bad\"scope"]);
    assert!(!bad_scope.status.success());
    assert_eq!(
        stderr(&bad_scope).lines().count(),
        1,
        "one clear line: {}",
        stderr(&bad_scope)
    );
}

async fn cli_key_rotation_reaches_the_running_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("svc", "read", &[]);
    let old_token = app.access_token(&client, &[]).await;
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .unwrap()
        .kid
        .unwrap();

    // A change of algorithm goes through `next` like any key: the first rotation activates
    // the pre-published ES256 key and publishes an EdDSA one, the second activates that.
    let first = app.cli_json(&["signing-key", "rotate", "--algorithm", "EdDSA", "--json"]);
    assert_eq!(first["algorithm"], "ES256");
    assert_eq!(first["state"], "active");
    let next: Vec<Value> = app
        .cli_json(&["signing-key", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "next")
        .cloned()
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["algorithm"], "EdDSA");
    let rotated = app.cli_json(&["signing-key", "rotate", "--algorithm", "EdDSA", "--json"]);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated["algorithm"], "EdDSA");
    assert_eq!(new_kid, next[0]["kid"], "the published key became active");

    let switched = eventually(5, || async {
        let token = app.access_token(&client, &[]).await;
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref() == Some(new_kid.as_str())
    })
    .await;
    assert!(
        switched,
        "the server signs with the rotated key within a few seconds"
    );
    let new_token = app.access_token(&client, &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    app.verify(&new_token, &app.address)
        .await
        .expect("new token verifies");
    app.verify(&old_token, &app.address)
        .await
        .expect("old token verifies");

    let output = app.cli(&["signing-key", "list", "--json"]);
    let keys: Value = serde_json::from_slice(&output.stdout).unwrap();
    let states: Vec<(&str, &str)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(new_kid.as_str(), "active")));
    assert!(states.contains(&(old_kid.as_str(), "retired")));
    assert!(states.contains(&(first["kid"].as_str().unwrap(), "retired")));
}

async fn restart_keeps_clients_and_keys(backend: Backend) {
    let db = TestDb::new(backend);
    let config = "[server]\nissuer = \"https://tollgate.test\"\n";
    let app = spawn_app_on(db.clone(), config).await;
    let client = app.create_client("svc", "read", &[]);
    let token = app.access_token(&client, &[]).await;
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    app.stop().await;
    drop(app);

    let app = spawn_app_on(db, config).await;
    let again = app.access_token(&client, &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&again).unwrap().kid.unwrap(),
        kid,
        "same signing key"
    );
    app.verify(&token, "https://tollgate.test")
        .await
        .expect("token from before the restart verifies");
}

async fn migrate_command_and_clear_start_up_errors(backend: Backend) {
    let db = TestDb::new(backend);
    let output = cli(&db, &["migrate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("migrations applied"));
    // Idempotent.
    assert!(cli(&db, &["migrate"]).status.success());

    let bad_config = db.dir.path().join("bad.toml");
    std::fs::write(&bad_config, "[server]\nbind = \"not an address\"\n").unwrap();
    let output = cli(
        &db,
        &["--config", bad_config.to_str().unwrap(), "client", "list"],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("server.bind"), "{err}");
}

#[tokio::test]
async fn unreachable_database_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("TOLLGATE_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: cannot"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["client", "list"])
        .current_dir(dir.path())
        .env("DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("database.url"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn embedded_default_creates_database_and_private_master_key() {
    let db = TestDb::new(Backend::Sqlite);
    let app = spawn_app_on(db.clone(), "").await;
    let key_file = db.dir.path().join("master.key");
    assert!(db.sqlite_path().unwrap().exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The signing key is stored sealed: its JWK is public, the private key never appears.
    let client = app.create_client("svc", "read", &[]);
    app.token(&client, &[]).await;
    let master = std::fs::read_to_string(&key_file).unwrap();
    let master_key = tollgate::crypto::sealed::MasterKey::parse(&master).unwrap();
    let keys = {
        let url = tollgate::db::DbUrl::parse(&db.url).unwrap();
        let mut conn = tollgate::db::Db::connect_one(&url).unwrap();
        tollgate::db::keys::list(&mut conn).unwrap()
    };
    assert_eq!(keys.len(), 2, "the active and the next key");
    let bytes = std::fs::read(db.sqlite_path().unwrap()).unwrap();
    // The rows may still be in the write-ahead log, or already checkpointed out of it.
    let wal = std::fs::read(db.dir.path().join("tollgate.db-wal")).unwrap_or_default();
    let stored = |needle: &[u8]| {
        [&bytes, &wal]
            .iter()
            .any(|haystack| haystack.windows(needle.len()).any(|w| w == needle))
    };
    // Positive controls: the files searched do hold the rows written above.
    assert!(
        stored(client.id.as_bytes()),
        "the client row is in the files"
    );
    for key in &keys {
        assert!(stored(&key.sealed_private_key), "sealed key {}", key.kid);
        let der = master_key
            .open(&key.sealed_private_key, key.kid.as_bytes())
            .unwrap();
        // No 32 bytes of the private key document (which holds the scalar) appear.
        let pieces: std::collections::HashSet<&[u8]> = der.windows(32).collect();
        for haystack in [&bytes, &wal] {
            assert!(
                !haystack.windows(32).any(|w| pieces.contains(w)),
                "private key {} stored in the clear",
                key.kid
            );
        }
    }
    assert!(!stored(client.secret.as_bytes()), "secret not stored");
    assert!(!stored(master.trim().as_bytes()), "master key not stored");
}

async fn imported_rsa_key_signs_rs256_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.create_client("svc", "read", &[]);
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
    assert_eq!(imported["algorithm"], "RS256");
    let kid = imported["kid"].as_str().unwrap().to_owned();
    let switched = eventually(5, || async {
        let token = app.access_token(&client, &[]).await;
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref() == Some(kid.as_str())
    })
    .await;
    assert!(switched, "the server signs with the imported key");
    let token = app.access_token(&client, &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    app.verify(&token, &app.address)
        .await
        .expect("RS256 token verifies with the JWKS");
    let jwks: Value = app.get_json("/.well-known/jwks.json").await.1;
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    assert_eq!((rsa["kty"].as_str(), rsa.get("d")), (Some("RSA"), None));

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
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    let output = app.cli(&["signing-key", "rotate", "--algorithm", "HS256"]);
    assert!(!output.status.success(), "HMAC is not on the allow-list");
}

#[tokio::test]
async fn flags_beat_environment_beat_file() {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (flag_port, env_port, file_port) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!("[server]\nbind = \"127.0.0.1:{file_port}\"\n"),
    )
    .unwrap();
    let spawn = |args: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .current_dir(dir.path())
            .env("TOLLGATE_CONFIG", &config)
            .env("TOLLGATE_BIND", format!("127.0.0.1:{env_port}"))
            .env("DATABASE_URL", "sqlite::memory:")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let http = reqwest::Client::new();
    let answers = |port: u16| {
        let http = http.clone();
        async move {
            http.get(format!("http://127.0.0.1:{port}/health/live"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    };
    let mut with_flag = spawn(&[
        "serve".into(),
        "--bind".into(),
        format!("127.0.0.1:{flag_port}"),
    ]);
    assert!(eventually(20, || answers(flag_port)).await, "the flag wins");
    assert!(!answers(env_port).await && !answers(file_port).await);
    with_flag.kill().unwrap();
    with_flag.wait().unwrap();
    let mut with_env = spawn(&["serve".into()]);
    assert!(
        eventually(20, || answers(env_port)).await,
        "the environment beats the file"
    );
    with_env.kill().unwrap();
    with_env.wait().unwrap();
}

both_backends!(
    imported_rsa_key_signs_rs256_tokens,
    cli_manages_clients_and_the_server_sees_it,
    cli_key_rotation_reaches_the_running_server,
    restart_keeps_clients_and_keys,
    migrate_command_and_clear_start_up_errors,
);
