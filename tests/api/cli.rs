//! The CLI as a subprocess on the same database as a running server, and restarts.

use std::process::{Command, Output};

use serde_json::Value;
use tollgate::db::DbUrl;

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

/// The `tollgate` binary in `dir`, with only the given database environment (no config
/// file, no DATABASE_URL or master key from the test's own environment).
fn tollgate_in(dir: &std::path::Path, env: &[(&str, String)], args: &[&str]) -> Output {
    tollgate_command(dir, env, args, false)
        .output()
        .expect("run tollgate")
}

fn tollgate_command(
    dir: &std::path::Path,
    env: &[(&str, String)],
    args: &[&str],
    unprivileged: bool,
) -> Command {
    let binary = env!("CARGO_BIN_EXE_tollgate");
    // Root passes every permission check: drop the capabilities that make it do so, so
    // that a file's mode applies to this process as to any other user.
    let mut command = if unprivileged && rustix::process::geteuid().is_root() {
        let mut command = Command::new("setpriv");
        command
            .arg("--bounding-set=-dac_override,-dac_read_search,-fowner")
            .arg("--")
            .arg(binary);
        command
    } else {
        Command::new(binary)
    };
    command
        .args(args)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("TOLLGATE_MASTER_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Issue 11: run from the wrong directory, or with a mistyped URL, a management command
/// used to create and use a new, empty database. Now it names the database it looked for
/// and how to point at the right one, and creates nothing; `migrate` still creates it, and
/// a command that changes the database says which one on stderr.
async fn management_commands_never_create_a_database(backend: Backend) {
    let db = TestDb::new(backend);
    let described = DbUrl::parse(&db.url).unwrap().describe();
    let commands: &[&[&str]] = &[
        &["client", "list"],
        &["client", "create", "--name", "svc", "--scope", "read"],
        &["signing-key", "list"],
        &["signing-key", "rotate"],
        &["account", "create", "--handle", "ana", "--scope", "read"],
        &["api-key", "list", "--account", "ana"],
        &["challenge", "list", "--account", "ana"],
        &["audit"],
    ];
    for args in commands {
        let output = cli(&db, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let err = stderr(&output);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        match backend {
            Backend::Sqlite => {
                assert!(
                    err.contains(&format!("no database at {described}")),
                    "{err}"
                );
                assert!(described.starts_with("sqlite:///"), "an absolute path");
                assert!(!db.sqlite_path().unwrap().exists(), "{args:?} created it");
            }
            Backend::Postgres => {
                assert!(
                    err.contains(&format!(
                        "{described} (database.url from DATABASE_URL) holds no Tollgate tables"
                    )),
                    "{err}"
                );
                assert!(
                    !tollgate::db::has_schema(&mut db.conn()).unwrap(),
                    "{args:?} set it up"
                );
            }
        }
        for hint in [
            "--database-url",
            "DATABASE_URL",
            "--config",
            "tollgate migrate",
        ] {
            assert!(err.contains(hint), "{args:?} names {hint}: {err}");
        }
    }
    if backend == Backend::Sqlite {
        assert_eq!(
            std::fs::read_dir(db.dir.path()).unwrap().count(),
            0,
            "nothing written beside it either (no master key)"
        );
        // No URL at all: the default, relative to the working directory, which says so.
        let output = tollgate_in(db.dir.path(), &[], &["client", "list"]);
        let err = stderr(&output);
        let default = db.dir.path().join("data/tollgate.db");
        assert!(
            err.contains(&format!("no database at sqlite://{}", default.display())),
            "{err}"
        );
        assert!(err.contains("has no config/default.toml"), "{err}");
        assert!(
            !db.dir.path().join("data").exists(),
            "no data/ directory made"
        );
    } else {
        // A database that does not exist on the server.
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_path("/tollgate_no_such_database");
        let output = tollgate_in(
            db.dir.path(),
            &[("DATABASE_URL", url.to_string())],
            &["client", "list"],
        );
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            err.contains("database \"tollgate_no_such_database\" does not exist"),
            "{err}"
        );
        assert!(err.contains("--database-url"), "{err}");
    }

    // `migrate` creates it; then the commands work, and the ones that change it say so.
    let output = cli(&db, &["migrate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = cli(
        &db,
        &["client", "create", "--name", "svc", "--scope", "read"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output).trim(),
        format!("changed database {described}"),
        "says which database it changed, and nothing else"
    );
    let output = cli(&db, &["client", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "",
        "a read changes nothing and says nothing"
    );
    assert!(stdout(&output).contains("svc"));

    // The management commands read the issuer from the environment, as the server does:
    // an invite link names the public URL.
    let mut env = db.env();
    env.push(("TOLLGATE_ISSUER", "https://auth.example.test".to_owned()));
    let output = tollgate_in(
        db.dir.path(),
        &env,
        &["account", "create", "--handle", "ana"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let output = tollgate_in(db.dir.path(), &env, &["account", "invite", "ana"]);
    assert!(
        stdout(&output).starts_with("https://auth.example.test/console/invite/"),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

/// Nor the master key: once the database holds signing keys, a missing key file means the
/// command was pointed at the wrong place, and a new key would be the wrong one.
#[tokio::test]
async fn a_management_command_never_makes_a_new_master_key_for_sealed_keys() {
    let db = TestDb::new(Backend::Sqlite);
    let key_file = db.dir.path().join("master.key");
    assert!(cli(&db, &["migrate"]).status.success());
    // Nothing sealed yet: the first rotation makes the key file, as a first start would.
    let output = cli(&db, &["signing-key", "rotate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(key_file.exists());

    std::fs::rename(&key_file, db.dir.path().join("elsewhere.key")).unwrap();
    for args in [
        &["signing-key", "rotate"][..],
        &["challenge", "list", "--account", "ana"],
    ] {
        let output = cli(&db, args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("no master key file at {}", key_file.display())),
            "{args:?}: {err}"
        );
        assert!(err.contains("TOLLGATE_MASTER_KEY_FILE"), "{err}");
        assert!(!key_file.exists(), "{args:?} made a new master key");
    }
    // Pointed at the key, the same command works.
    let moved = db.dir.path().join("elsewhere.key");
    let mut env = db.env();
    env.push(("TOLLGATE_MASTER_KEY_FILE", moved.display().to_string()));
    let output = tollgate_in(db.dir.path(), &env, &["signing-key", "rotate"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn the_changed_database_is_named_without_its_password() {
    let url = DbUrl::parse(
        "postgres://tollgate:s3cr%40t@db.internal:5433/tollgate?sslmode=require&password=x",
    )
    .unwrap();
    let described = url.describe();
    assert_eq!(
        described,
        "postgres://tollgate:***@db.internal:5433/tollgate?sslmode=require&password=***"
    );
    let relative = DbUrl::parse("sqlite://data/t.db").unwrap().describe();
    let expected = std::env::current_dir().unwrap().join("data/t.db");
    assert_eq!(relative, format!("sqlite://{}", expected.display()));
}

/// Issue 11: SQLite said only "Unable to open the database file". Now the message says it
/// is a permission problem and names the file or directory, for the server and the CLI.
#[tokio::test]
async fn a_permission_problem_says_so_and_names_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("tollgate.db");
    let env = [("DATABASE_URL", format!("sqlite://{}", file.display()))];
    let output = tollgate_in(dir.path(), &env, &["migrate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = |args: &[&str]| {
        tollgate_command(dir.path(), &env, args, true)
            .output()
            .expect("run tollgate")
    };
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    // The database file: not readable and writable.
    mode(&file, 0o400);
    for args in [&["client", "list"][..], &["serve", "--bind", "127.0.0.1:0"]] {
        let output = run(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("permission denied"), "{args:?}: {err}");
        assert!(
            err.contains(&format!("cannot read and write {}", file.display())),
            "{args:?}: {err}"
        );
        assert!(err.contains("mode 0400"), "{args:?}: {err}");
    }
    mode(&file, 0o600);

    // The directory, where SQLite must create its -wal and -shm files.
    for sidecar in ["tollgate.db-wal", "tollgate.db-shm"] {
        let _ = std::fs::remove_file(data.join(sidecar));
    }
    mode(&data, 0o500);
    let output = run(&["client", "list"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("permission denied: this user")
            && err.contains(&format!("may not write in {}", data.display())),
        "{err}"
    );

    // A new database in a directory this user may not write in.
    let new = data.join("more/new.db");
    let output = tollgate_command(
        dir.path(),
        &[("DATABASE_URL", format!("sqlite://{}", new.display()))],
        &["serve", "--bind", "127.0.0.1:0"],
        true,
    )
    .output()
    .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "permission denied: cannot create the database {}",
            new.display()
        )) && err.contains(&format!("write in the directory {} (", data.display())),
        "{err}"
    );
    mode(&data, 0o700);
    // Positive control: with the modes back, the same commands work.
    assert!(run(&["client", "list"]).status.success());
}

/// Issue 11: a wrongly typed config value did not name its key, and a missing --config
/// file repeated the OS error twice.
#[test]
fn config_errors_name_the_key_the_file_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(&config, "[database]\n# a comment\npool_size = \"many\"\n").unwrap();
    let env = [("DATABASE_URL", "sqlite::memory:".to_owned())];
    let output = tollgate_in(
        dir.path(),
        &env,
        &["--config", config.to_str().unwrap(), "client", "list"],
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&config.display().to_string()),
        "names the file: {err}"
    );
    assert!(
        err.contains("line 3: database.pool_size: invalid type"),
        "names the key: {err}"
    );

    // A value of the right type that does not validate: the key and where it came from.
    std::fs::write(&config, "[server]\nbind = \"nowhere\"\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let output = tollgate_in(
        dir.path(),
        &env,
        &["--config", config_arg, "client", "list"],
    );
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "error: invalid setting server.bind in {config_arg}: "
        )),
        "{err}"
    );
    let mut with_bind = env.to_vec();
    with_bind.push(("TOLLGATE_BIND", "elsewhere".to_owned()));
    let output = tollgate_in(
        dir.path(),
        &with_bind,
        &["--config", config_arg, "client", "list"],
    );
    let err = stderr(&output);
    assert!(
        err.starts_with("error: invalid setting server.bind (from --bind or TOLLGATE_BIND): "),
        "{err}"
    );

    let output = tollgate_in(
        dir.path(),
        &env,
        &["--config", "missing.toml", "client", "list"],
    );
    let err = stderr(&output);
    assert_eq!(
        err.trim(),
        "error: cannot read config file missing.toml (from --config or TOLLGATE_CONFIG): \
         No such file or directory (os error 2)"
    );
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// Issue 11: `audit --limit 0` printed one event. It is refused, as are values past the
/// largest page.
#[test]
fn audit_refuses_a_limit_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    for limit in ["--limit=0", "--limit=-1", "--limit=1001"] {
        let output = tollgate_in(dir.path(), &[], &["audit", limit]);
        assert_eq!(output.status.code(), Some(2), "a usage error");
        assert!(stderr(&output).contains("1..=1000"), "{}", stderr(&output));
        assert!(
            !dir.path().join("data").exists(),
            "refused before any database"
        );
    }
}

/// Issue 11: many commands and flags had no help text. Every command and argument has
/// one, a sentence; commands start with an imperative verb from one short list, and every
/// `--json` says what it prints.
#[test]
fn every_command_and_argument_has_help() {
    use clap::CommandFactory;
    const VERBS: &[&str] = &[
        "Run",
        "Create",
        "Manage",
        "List",
        "Show",
        "Disable",
        "Enable",
        "Delete",
        "Revoke",
        "Rotate",
        "Import",
        "Print",
        "Make",
        "Take",
        "Regenerate",
        "Deny",
        "Approve",
    ];
    // clap drops the period of a one-sentence help; the text starts like a sentence.
    fn is_sentence(text: &str) -> bool {
        text.starts_with(|c: char| c.is_ascii_uppercase()) && text.len() > 8
    }
    fn walk(command: &clap::Command, path: &str, problems: &mut Vec<String>, seen: &mut usize) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            *seen += 1;
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(ToString::to_string);
            match help {
                None => problems.push(format!("{path}: argument {id} has no help")),
                Some(help) if !is_sentence(&help) => {
                    problems.push(format!("{path}: help of {id} is not a sentence: {help:?}"))
                }
                Some(help)
                    if id == "json" && !(help.starts_with("Print") && help.contains("JSON")) =>
                {
                    problems.push(format!("{path}: --json says {help:?}"))
                }
                Some(_) => {}
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let path = format!("{path} {}", sub.get_name());
            *seen += 1;
            match sub.get_about().map(ToString::to_string) {
                None => problems.push(format!("{path}: no help")),
                Some(about) => {
                    let verb = about.split_whitespace().next().unwrap_or_default();
                    if !is_sentence(&about) || !VERBS.contains(&verb) {
                        problems.push(format!("{path}: {about:?}"));
                    }
                }
            }
            walk(sub, &path, problems, seen);
        }
    }
    let mut root = tollgate::cli::Cli::command();
    root.build();
    let (mut problems, mut seen) = (Vec::new(), 0);
    walk(&root, "tollgate", &mut problems, &mut seen);
    assert!(
        seen > 80,
        "walked the whole tree ({seen} commands and arguments)"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The rendered help agrees with the README on what a rotation does.
    let rotate = root
        .find_subcommand_mut("signing-key")
        .and_then(|c| c.find_subcommand_mut("rotate"))
        .unwrap()
        .render_long_help()
        .to_string();
    for phrase in ["next", "retires", "--immediately", "master key"] {
        assert!(rotate.contains(phrase), "{phrase}: {rotate}");
    }
}

both_backends!(management_commands_never_create_a_database);
