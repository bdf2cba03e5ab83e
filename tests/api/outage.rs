//! Database outages against a PostgreSQL server this test starts itself (initdb/pg_ctl from
//! the installed PostgreSQL, in a temp directory, on a free port; never the shared one):
//! stopped, frozen (SIGSTOP) and read-only. The server must answer 503 fast, keep serving
//! what it holds in memory, and resume within about a second of the database coming back.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate::config::{FileSettings, Overrides, Settings};
use tollgate::startup::Application;

use crate::helpers::{TEST_MASTER_KEY, form_encode};

/// The newest installed PostgreSQL's `bin` directory.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A PostgreSQL cluster of our own; stopped (and thawed first) when dropped.
struct OwnPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    fn start(bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        // initdb refuses to run as root: run the tools as the `postgres` user then.
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the temp dir to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            bin,
            data,
            port,
            as_postgres,
            _dir: dir,
        };
        cluster.tool(
            "initdb",
            &[
                "-D",
                &cluster.data.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn tool(&self, name: &str, args: &[&str]) {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{name} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.data.display()
        );
        let log = self.data.join("server.log");
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
    }

    fn stop_immediately(&self) {
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data.to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The postmaster and every process it started.
    fn processes(&self) -> Vec<u32> {
        let Some(postmaster) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if parent == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    fn signal(&self, signal: &str, pids: &[u32]) {
        if pids.is_empty() {
            return;
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(pids.iter().map(u32::to_string))
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pids:?}");
    }

    /// Holds an exclusive lock on `table` for `hold` from another session (on a thread of
    /// its own); returns once the lock is taken.
    fn lock_table_for(&self, table: &str, hold: Duration) -> std::thread::JoinHandle<()> {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let (url, table) = (self.url(), table.to_owned());
        let (taken, is_taken) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut conn = diesel::pg::PgConnection::establish(&url).expect("connect");
            conn.batch_execute(&format!(
                "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
            ))
            .expect("lock");
            taken.send(()).expect("signal");
            std::thread::sleep(hold);
            conn.batch_execute("COMMIT").expect("unlock");
        });
        is_taken.recv().expect("the lock is taken");
        holder
    }

    /// Runs each statement on its own (ALTER SYSTEM refuses a transaction block).
    fn sql(&self, statements: &[&str]) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut conn = diesel::pg::PgConnection::establish(&self.url()).expect("connect");
        for statement in statements {
            conn.batch_execute(statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let pids = self.processes();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .args(pids.iter().map(u32::to_string))
                .status();
            let program = self.bin.join("pg_ctl");
            let data = self.data.to_string_lossy().into_owned();
            let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
            let _ = if self.as_postgres {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&program)
                    .args(args)
                    .output()
            } else {
                Command::new(&program).args(args).output()
            };
        }
    }
}

struct Server {
    address: String,
    http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Server {
    async fn start(url: &str) -> Self {
        let mut file: FileSettings = toml::from_str(
            "[server]\nworkers = 1\n\
             [database]\npool_size = 4\nconnection_timeout_seconds = 1\nstatement_timeout_ms = 500\n",
        )
        .expect("config");
        file.signing.key_refresh_ms = 200;
        let overrides = Overrides {
            bind: Some("127.0.0.1:0".into()),
            database_url: Some(url.to_owned()),
            master_key: Some(TEST_MASTER_KEY.to_owned()),
            log_level: Some("warn".into()),
            ..Overrides::default()
        };
        tollgate::telemetry::init("warn");
        let settings = Settings::from_parts(file, &overrides).expect("settings");
        let app = Application::build(settings).await.expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Self {
            address,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            handle,
        }
    }

    async fn token(&self, id: &str, secret: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.address))
            .basic_auth(form_encode(id), Some(form_encode(secret)))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// 40 token requests at once: each answer, and how long the slowest took.
    async fn burst(&self, id: &str, secret: &str) -> (Vec<(u16, Value)>, Duration) {
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let request = self
                .http
                .post(format!("{}/oauth/token", self.address))
                .basic_auth(form_encode(id), Some(form_encode(secret)))
                .form(&[("grant_type", "client_credentials")]);
            set.spawn(async move {
                let response = request.send().await.expect("token request");
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            });
        }
        let answers = set.join_all().await;
        (answers, started.elapsed())
    }

    /// `count` token requests at once; each answer.
    async fn flood(&self, id: &str, secret: &str, count: usize) -> Vec<(u16, Value)> {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..count {
            let request = self
                .http
                .post(format!("{}/oauth/token", self.address))
                .basic_auth(form_encode(id), Some(form_encode(secret)))
                .form(&[("grant_type", "client_credentials")]);
            set.spawn(async move {
                let response = request.send().await.expect("token request");
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            });
        }
        set.join_all().await
    }

    /// Polls the token endpoint until it issues a token; how long that took.
    async fn recovery(&self, id: &str, secret: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.token(id, secret).await.0 == 200 {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "no token within {limit:?} of the database coming back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn assert_all_unavailable(answers: &[(u16, Value)], what: &str) {
    for (status, body) in answers {
        assert_eq!(*status, 503, "{what}: {body}");
        assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    }
}

fn create_client(url: &str) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "client", "create", "--name", "svc", "--scope", "read", "--json",
        ])
        .env("DATABASE_URL", url)
        .env("TOLLGATE_MASTER_KEY", TEST_MASTER_KEY)
        .env_remove("TOLLGATE_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run tollgate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    (
        json["client_id"].as_str().expect("id").to_owned(),
        json["client_secret"].as_str().expect("secret").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    tollgate_no_postgres_bin,
    ignore = "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
)]
async fn postgres_stopped_frozen_or_read_only_gives_fast_503s_and_recovers_within_a_second() {
    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "TOLLGATE_REQUIRE_POSTGRES=1 but no PostgreSQL under /usr/lib/postgresql/*/bin"
        );
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql/*/bin");
        return;
    };
    let pg = OwnPostgres::start(bin);
    // The server sets the database up; the CLI only works on one that is.
    let server = Server::start(&pg.url()).await;
    let (id, secret) = create_client(&pg.url());
    assert_eq!(server.token(&id, &secret).await.0, 200);
    assert_eq!(server.get("/health/ready").await.0, 200);

    // 0. Local overload on a healthy database is not an outage: with the clients table
    // locked for 2 s, a flood of token requests fills the pool (4 connections, each query
    // cancelled at 500 ms) and waits past the 1 s checkout timeout. Those requests get
    // 503s of their own, but the breaker stays closed: /health/ready, whose pooled check
    // cannot run within its 1 s bound, still says 200 (it would be 503 at once with the
    // breaker open), and tokens are issued again the moment the lock goes.
    // A client never used yet: the in-memory view cannot answer for it, so every request
    // of the flood reads the (locked) table.
    let (cold_id, cold_secret) = create_client(&pg.url());
    let locked = pg.lock_table_for("clients", Duration::from_secs(2));
    let flood = server.flood(&cold_id, &cold_secret, 80);
    let ready = async {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(server.get("/health/ready").await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        statuses
    };
    let (answers, ready) = tokio::join!(flood, ready);
    for (status, body) in &ready {
        assert_eq!(*status, 200, "readiness under local overload: {body}");
    }
    assert!(
        answers.iter().any(|(status, _)| *status == 503),
        "the flood should have run out of connections"
    );
    for (status, body) in &answers {
        assert!(*status == 200 || *status == 503, "{status}: {body}");
        if *status == 503 {
            assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        }
    }
    locked.join().expect("lock holder");
    let (status, body) = server.token(&cold_id, &cold_secret).await;
    assert_eq!(status, 200, "served right after the overload: {body}");
    assert_eq!(server.get("/health/ready").await.0, 200);

    // 1. Stopped: every one of 40 concurrent requests gets a fast 503.
    pg.stop_immediately();
    let (answers, took) = server.burst(&id, &secret).await;
    assert_all_unavailable(&answers, "stopped");
    assert!(took < Duration::from_secs(3), "40 requests took {took:?}");
    let started = Instant::now();
    let (status, body) = server.get("/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // What the server holds in memory is still served.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/health/live",
    ] {
        assert_eq!(server.get(path).await.0, 200, "{path}");
    }
    pg.pg_ctl_start();
    let back = server.recovery(&id, &secret, Duration::from_secs(3)).await;
    eprintln!("recovered {back:?} after PostgreSQL restarted");
    assert_eq!(server.get("/health/ready").await.0, 200);

    // 2. Frozen: once the in-memory view's lease has run out (nothing can change while
    // the database is frozen, but this instance cannot know that nobody else reaches it),
    // the first request waits out its bound, the rest fail at once.
    let pids = pg.processes();
    pg.signal("STOP", &pids);
    tokio::time::sleep(tollgate::cache::LEASE + Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, body) = server.token(&id, &secret).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "first request on a frozen database took {:?}",
        started.elapsed()
    );
    let (answers, took) = server.burst(&id, &secret).await;
    assert_all_unavailable(&answers, "frozen");
    assert!(took < Duration::from_secs(1), "40 requests took {took:?}");
    let started = Instant::now();
    assert_eq!(server.get("/health/ready").await.0, 503);
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(server.get("/.well-known/jwks.json").await.0, 200);
    pg.signal("CONT", &pids);
    let back = server.recovery(&id, &secret, Duration::from_secs(3)).await;
    eprintln!("recovered {back:?} after PostgreSQL was thawed");
    assert_eq!(server.get("/health/ready").await.0, 200);

    // 3. Read-only (as after a fail-over to a replica): writes 503, reads go on.
    pg.sql(&[
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ]);
    let token = {
        // The reload reaches each session at its next command; poll until a write fails.
        let mut refused = None;
        for _ in 0..50 {
            let (status, body) = server.token(&id, &secret).await;
            assert_eq!(status, 200, "reads go on: {body}");
            let access = body["access_token"].as_str().expect("token").to_owned();
            let response = server
                .http
                .post(format!("{}/oauth/revoke", server.address))
                .basic_auth(&id, Some(&secret))
                .form(&[("token", access.as_str())])
                .send()
                .await
                .expect("revoke");
            if response.status() != 200 {
                refused = Some((response.status().as_u16(), response.json::<Value>().await));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        refused.expect("a write refused by the read-only database")
    };
    let (status, body) = (token.0, token.1.expect("JSON"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let (status, body) = server.get("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "refusing writes");
    pg.sql(&[
        "ALTER SYSTEM RESET default_transaction_read_only",
        "SELECT pg_reload_conf()",
    ]);
    server.handle.stop(true).await;
    drop(pg);
}

/// On a healthy database, local overload never opens the breaker: slow multi-statement
/// closures holding the whole pool past the suspicion point, a flood that times out at
/// checkout, a readiness-style short bound. Each is a 503 for that caller only. And a panic
/// inside a database closure is a bug: 500 (`server_error`), not a 503, and no outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    tollgate_no_postgres_bin,
    ignore = "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"
)]
async fn on_a_healthy_database_overload_and_panics_never_open_the_breaker() {
    use actix_web::{ResponseError, body::MessageBody};
    use tollgate::db::{Db, DbError, DbUrl, PoolOptions};

    let Some(bin) = postgres_bin() else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "TOLLGATE_REQUIRE_POSTGRES=1 but no PostgreSQL under /usr/lib/postgresql/*/bin"
        );
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql/*/bin");
        return;
    };
    let pg = OwnPostgres::start(bin);
    let url = DbUrl::parse(&pg.url()).expect("url");
    let options = PoolOptions {
        max_size: 2,
        connection_timeout: Duration::from_millis(200),
        statement_timeout: Duration::from_millis(500),
        ..PoolOptions::default()
    };
    let db = Db::connect(&url, &options).expect("pool");

    // Two slow closures take both connections for 1.2 s (each statement well within its
    // timeout), past the point where a long wait raises a suspicion.
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let db = db.clone();
        slow.spawn(async move {
            db.run_within(Duration::from_secs(5), |conn| {
                for _ in 0..4 {
                    tollgate::db::ping(conn)?;
                    std::thread::sleep(Duration::from_millis(300));
                }
                Ok::<_, DbError>(())
            })
            .await
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A flood meanwhile, and a check with a short bound of its own: none gets a connection.
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let db = db.clone();
        flood.spawn(async move { db.run(tollgate::db::ping).await });
    }
    let short: Result<(), DbError> = db
        .run_within(Duration::from_millis(100), tollgate::db::ping)
        .await;
    let err = short.expect_err("no connection within 100 ms");
    assert!(err.is_unavailable() && !err.is_outage(), "{err}");
    let mut refused = 0;
    for answer in flood.join_all().await {
        if let Err(err) = answer {
            assert!(err.is_unavailable() && !err.is_outage(), "{err}");
            refused += 1;
        }
    }
    assert!(refused > 0, "the flood should have run out of connections");
    for answer in slow.join_all().await {
        answer.expect("slow closures finish");
    }
    assert_eq!(db.health().times_opened(), 0, "overload opened the breaker");
    assert!(!db.health().is_down());
    let ok: Result<(), DbError> = db.run(tollgate::db::ping).await;
    ok.expect("served at once afterwards");

    let result: Result<(), DbError> = db
        .run(|conn| {
            tollgate::db::ping(conn)?;
            panic!("a bug inside a database closure")
        })
        .await;
    let err = result.expect_err("the closure panicked");
    assert!(matches!(err, DbError::Panicked), "{err}");
    assert_eq!(db.health().times_opened(), 0, "a bug is not an outage");
    let response = tollgate::http::error::HttpError::Store(err).error_response();
    assert_eq!(response.status().as_u16(), 500);
    let body = response.into_body().try_into_bytes().expect("body");
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["error"], "server_error");
    // The pool serves the next caller as before.
    let ok: Result<(), DbError> = db.run(tollgate::db::ping).await;
    ok.expect("ping");
    drop(db);
    drop(pg);
}
