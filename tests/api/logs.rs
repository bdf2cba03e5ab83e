//! What the server writes to its logs, read from the real binary's stdout and stderr (a
//! child process: the in-process test servers share one global subscriber, and only the
//! process's own output shows everything, `log` records of dependencies included).
//!
//! - the access log: method, route pattern, status, request id, and the client address
//!   from `X-Forwarded-For` only behind a trusted proxy;
//! - unknown log filters and formats are refused at start-up;
//! - a full session at TRACE, in both formats, writes no secret.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::console::{Browser, PASSWORD, shown_key};
use crate::helpers::{Backend, TEST_MASTER_KEY, TestDb, cli, stderr};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY_TYPE: &str = "urn:tollgate:params:oauth:token-type:api_key";

/// `tollgate serve` as a child process, its stdout and stderr in files.
struct LoggedServer {
    address: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl LoggedServer {
    /// Starts the binary on `db` with `config` (TOML) and `env`, on a random port.
    async fn start(db: &TestDb, config: &str, env: &[(&str, &str)]) -> Self {
        let dir = db.dir.path();
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let config_path = dir.join(format!("logged-{n}.toml"));
        std::fs::write(&config_path, config).unwrap();
        let (out, err) = (
            dir.join(format!("out-{n}.log")),
            dir.join(format!("err-{n}.log")),
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .arg("--config")
            .arg(&config_path)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for name in [
            "TOLLGATE_CONFIG",
            "TOLLGATE_LOG",
            "TOLLGATE_LOG_FORMAT",
            "TOLLGATE_METRICS_LISTEN",
            "TOLLGATE_BIND",
            "TOLLGATE_ISSUER",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command.envs(db.env()).envs(env.iter().copied());
        let child = command.spawn().expect("start tollgate");
        let mut server = Self {
            address: String::new(),
            child,
            out,
            err,
        };
        for _ in 0..300 {
            let logs = server.logs();
            if let Some(at) = logs.find("listening on http://") {
                let rest = &logs[at + "listening on ".len()..];
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '"')
                    .unwrap_or(rest.len());
                server.address = rest[..end].to_owned();
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("tollgate exited ({status}) before listening:\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tollgate did not start listening:\n{}", server.logs());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Everything written so far, stdout then stderr.
    fn logs(&self) -> String {
        let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        format!("{}{}", read(&self.out), read(&self.err))
    }

    /// Stops the server the way an operator does (SIGTERM), so that what it logs while
    /// shutting down is captured too; returns the whole output.
    async fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.logs();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `args` with the CLI on `db`, expecting success and `--json` output.
fn cli_json(db: &TestDb, args: &[&str]) -> Value {
    let output = cli(db, args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("--json prints JSON only")
}

#[tokio::test]
async fn unknown_log_filters_and_formats_are_refused_at_start_up() {
    let db = TestDb::new(Backend::Sqlite);
    let run = |env: &[(&str, &str)], config: &str| {
        let path = db.dir.path().join("refused.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .arg("--config")
            .arg(&path)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(db.dir.path())
            .env_remove("TOLLGATE_LOG")
            .env_remove("TOLLGATE_LOG_FORMAT")
            .envs(db.env())
            .envs(env.iter().copied());
        let output = command.output().unwrap();
        assert!(!output.status.success(), "started with {env:?} {config:?}");
        stderr(&output)
    };
    let said = run(&[("TOLLGATE_LOG", "verbose")], "");
    assert!(
        said.contains("TOLLGATE_LOG") && said.contains("\"verbose\""),
        "names the variable and the value: {said}"
    );
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");
    let said = run(&[("TOLLGATE_LOG", "info,tollgate=loud")], "");
    assert!(
        said.contains("TOLLGATE_LOG") && said.contains("\"loud\""),
        "{said}"
    );
    let said = run(&[], "[log]\nlevel = \"chatty\"\n");
    assert!(
        said.contains("log.level") && said.contains("\"chatty\""),
        "{said}"
    );
    let said = run(&[("TOLLGATE_LOG_FORMAT", "xml")], "");
    assert!(
        said.contains("TOLLGATE_LOG_FORMAT") && said.contains("\"xml\""),
        "{said}"
    );
    let said = run(&[], "[log]\nformat = \"yaml\"\n");
    assert!(
        said.contains("log.format") && said.contains("\"yaml\""),
        "{said}"
    );
    // Nothing was created for a start that was refused.
    assert!(!db.dir.path().join("tollgate.db").exists());
}

#[tokio::test]
async fn access_log_has_method_route_request_id_and_believes_only_trusted_proxies() {
    let http = reqwest::Client::new();
    // Text, nobody trusted: X-Forwarded-For is ignored.
    let db = TestDb::new(Backend::Sqlite);
    let server = LoggedServer::start(&db, "[server]\naccess_log = true\n", &[]).await;
    let answer = http
        .post(server.url("/oauth/token"))
        .header("x-request-id", "acc-1")
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let invite = http
        .get(server.url("/console/invite/SeCrEtInViTeToKeN123"))
        .header("x-request-id", "acc-3")
        .send()
        .await
        .unwrap();
    assert!(invite.status().is_client_error());
    let logs = server.stop().await;
    let line = logs
        .lines()
        .find(|l| l.contains("request_id=acc-1") && l.contains("answered"))
        .unwrap_or_else(|| panic!("no access line for acc-1:\n{logs}"));
    for part in [
        "client=127.0.0.1",
        "method=POST",
        "path=/oauth/token",
        "status=401",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(
        !logs.contains("203.0.113.9"),
        "an untrusted X-Forwarded-For is logged"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("request_id=acc-3") && l.contains("answered"))
        .unwrap_or_else(|| panic!("no access line for acc-3:\n{logs}"));
    assert!(
        line.contains("method=GET") && line.contains("path=/console/invite/{token}"),
        "{line}"
    );
    assert!(
        !logs.contains("SeCrEtInViTeToKeN123"),
        "a path's secret is logged"
    );

    // JSON, behind a trusted proxy range: the client is the rightmost untrusted hop.
    let db = TestDb::new(Backend::Sqlite);
    let server = LoggedServer::start(
        &db,
        "[server]\naccess_log = true\ntrusted_proxies = [\"127.0.0.0/8\"]\n[log]\nformat = \"json\"\n",
        &[("TOLLGATE_LOG", "debug")],
    )
    .await;
    let answer = http
        .post(server.url("/oauth/token"))
        .header("x-request-id", "acc-2")
        .header("x-forwarded-for", "198.51.100.7, 203.0.113.9, 127.0.0.5")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(answer.headers()["x-request-id"], "acc-2");
    let form = http
        .post(server.url("/console/sign-in"))
        .header("x-request-id", "acc-4")
        .header("x-forwarded-for", "203.0.113.9")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("handle=alice")
        .send()
        .await
        .unwrap();
    assert!(form.status().is_client_error());
    let logs = server.stop().await;
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() > 5, "{logs}");
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|l| l["spans"][0]["request_id"] == "acc-2")
        .collect();
    let access = of_request
        .iter()
        .find(|l| l["fields"]["message"] == "answered")
        .unwrap_or_else(|| panic!("no access line for acc-2:\n{logs}"));
    assert_eq!(access["target"], "tollgate::access");
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["fields"]["method"], "POST");
    assert_eq!(access["fields"]["path"], "/oauth/token");
    assert_eq!(access["fields"]["status"], 401);
    assert!(access["fields"]["duration_ms"].as_f64().is_some());
    assert_eq!(access["spans"][0]["client"], "203.0.113.9");
    assert_eq!(access["spans"][0]["name"], "request");
    // A line logged while a request is handled carries the request's span too (here the
    // console's DEBUG line for a form it refuses).
    let refused = lines
        .iter()
        .find(|l| l["fields"]["message"] == "console form refused")
        .unwrap_or_else(|| panic!("no line for the refused form:\n{logs}"));
    assert_eq!(refused["level"], "DEBUG");
    assert_eq!(refused["spans"][0]["request_id"], "acc-4", "{refused}");
    assert_eq!(refused["spans"][0]["client"], "203.0.113.9", "{refused}");
}

both_backends!(a_full_session_at_the_most_verbose_level_logs_no_secret);

/// Secrets met during the session, and what each is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        assert!(!value.is_empty(), "{what} is empty");
        self.0.push((what.to_owned(), value.to_owned()));
    }

    /// A client secret or an API key, whole and without its prefix.
    fn add_prefixed(&mut self, what: &str, value: &str, prefix: &str) {
        assert!(value.starts_with(prefix), "{what}: {value}");
        self.add(what, value);
        self.add(
            &format!("{what} (after its prefix)"),
            &value[prefix.len()..],
        );
    }

    /// A JWT, whole and its signature alone.
    fn add_jwt(&mut self, what: &str, token: &str) {
        self.add(what, token);
        let signature = token.rsplit('.').next().unwrap();
        self.add(&format!("{what} (signature)"), signature);
    }
}

/// `text` holds `code` as a token of its own: not inside a longer run of letters and
/// digits (a timestamp, an id) nor a decimal number (`5185.1797 milliseconds`).
fn holds_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let mut before = text[..at].chars().rev();
        let mut after = text[at + code.len()..].chars();
        let joins = |next: Option<char>, beyond: Option<char>| match next {
            Some(c) if c.is_ascii_alphanumeric() => true,
            Some('.') => beyond.is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        };
        !joins(before.next(), before.next()) && !joins(after.next(), after.next())
    })
}

#[test]
fn a_code_is_found_alone_but_not_inside_longer_numbers() {
    assert!(holds_code("code=5185 sent", "5185"));
    assert!(holds_code("the code is 5185.", "5185"));
    assert!(holds_code("\"5185\"", "5185"));
    assert!(!holds_code("expires in 5185.1797 milliseconds", "5185"));
    assert!(!holds_code("took 12.5185 s", "5185"));
    assert!(!holds_code("id=a5185 at 2026-12-02T15185", "5185"));
}

async fn a_full_session_at_the_most_verbose_level_logs_no_secret(backend: Backend) {
    for format in ["text", "json"] {
        let db = TestDb::new(backend);
        let config = format!(
            "[server]\naccess_log = true\n[log]\nlevel = \"trace\"\nformat = \"{format}\"\n"
        );
        let mut secrets = Secrets::default();
        // The database password, where there is one (PostgreSQL with trust authentication
        // ignores it, so one is made up).
        let mut database_url = db.url.clone();
        if backend == Backend::Postgres {
            let mut url = url::Url::parse(&db.url).unwrap();
            if url.password().is_none() {
                url.set_password(Some("Db-Pa55word-Xyz7")).unwrap();
            }
            secrets.add("database password", url.password().unwrap());
            database_url = url.to_string();
        }
        let server = LoggedServer::start(
            &db,
            &config,
            &[("TOLLGATE_LOG", "trace"), ("DATABASE_URL", &database_url)],
        )
        .await;
        let codes = session(&db, &server, &mut secrets).await;
        match backend {
            Backend::Postgres => secrets.add("master key", TEST_MASTER_KEY),
            Backend::Sqlite => {
                let key = std::fs::read_to_string(db.dir.path().join("master.key")).unwrap();
                secrets.add("master key", key.trim());
            }
        }
        let logs = server.stop().await;
        // The capture is real: TRACE lines of ours and of dependencies, every request.
        let trace = if format == "json" {
            "\"level\":\"TRACE\""
        } else {
            "TRACE"
        };
        assert!(logs.contains(trace), "no TRACE line in the {format} output");
        assert!(logs.contains("request_id"), "{format}: no request span");
        assert!(
            logs.matches("answered").count() >= 30,
            "{format}: fewer access lines than requests"
        );
        for (what, value) in &secrets.0 {
            assert!(
                !logs.contains(value.as_str()),
                "{format} logs hold the {what}"
            );
        }
        for (what, code) in &codes {
            let line = logs.lines().find(|line| holds_code(line, code));
            assert!(
                line.is_none(),
                "{format} logs hold the {what} {code}: {line:?}"
            );
        }
    }
}

/// Everything a deployment does with secrets, against `server`: clients and their tokens,
/// introspection, revocation, the admin API, an account with API keys, the console
/// (invite link, password, sign-in, a key, regeneration), pairing with its code, and token
/// exchange. Failed attempts are in it too, with wrong secrets that must not be logged
/// either. Returns the pairing codes (checked as whole tokens: four digits occur by
/// chance inside longer numbers).
async fn session(
    db: &TestDb,
    server: &LoggedServer,
    secrets: &mut Secrets,
) -> Vec<(String, String)> {
    let http = reqwest::Client::new();
    let url = |path: &str| server.url(path);

    // Clients (CLI) and tokens.
    let client = |name: &str, scope: &str| {
        let created = cli_json(
            db,
            &[
                "client", "create", "--name", name, "--scope", scope, "--json",
            ],
        );
        (
            created["client_id"].as_str().unwrap().to_owned(),
            created["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let (svc_id, svc_secret) = client("svc", "read write");
    let (rs_id, rs_secret) = client("rs", "introspect");
    let (ops_id, ops_secret) = client("ops", "admin");
    secrets.add_prefixed("client secret", &svc_secret, "tgs_");
    secrets.add_prefixed("resource server's client secret", &rs_secret, "tgs_");
    secrets.add_prefixed("operator client secret", &ops_secret, "tgs_");
    let token = |id: String, secret: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = url("/oauth/token");
        async move {
            let response = http
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let cc = || vec![("grant_type", "client_credentials".to_owned())];
    let (status, body) = token(svc_id.clone(), svc_secret.clone(), cc()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    secrets.add_jwt("access token", &access_token);
    let wrong_secret = format!("tgs_{}", "Wr0ngSecretWr0ngSecretWr0ngSecretWr0ngSecr");
    secrets.add("wrong client secret", &wrong_secret);
    let (status, _) = token(svc_id.clone(), wrong_secret.clone(), cc()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Credentials in the body (client_secret_post).
    let posted = http
        .post(url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &svc_id),
            ("client_secret", &svc_secret),
            ("scope", "read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let second_token = posted.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.add_jwt("second access token", &second_token);

    // Introspection and revocation.
    let introspect = |token: String| {
        let (http, url, id, secret) = (
            http.clone(),
            url("/oauth/introspect"),
            rs_id.clone(),
            rs_secret.clone(),
        );
        async move {
            http.post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(introspect(access_token.clone()).await["active"], true);
    assert_eq!(introspect("eyJnot.a.token".into()).await["active"], false);
    let revoked = http
        .post(url("/oauth/revoke"))
        .basic_auth(&svc_id, Some(&svc_secret))
        .form(&[("token", second_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(introspect(second_token.clone()).await["active"], false);

    // The admin API: a client and its secret's rotation, an account's invite link.
    let (status, body) = token(ops_id.clone(), ops_secret.clone(), cc()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = body["access_token"].as_str().unwrap().to_owned();
    secrets.add_jwt("admin access token", &admin);
    let admin_call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (http, url, admin) = (http.clone(), url(&path), admin.clone());
        async move {
            let mut request = http.request(method, url).bearer_auth(admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, created) = admin_call(
        reqwest::Method::POST,
        "/admin/clients".into(),
        Some(json!({"name": "payments", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let payments = created["client_id"].as_str().unwrap().to_owned();
    secrets.add_prefixed(
        "client secret from the admin API",
        created["client_secret"].as_str().unwrap(),
        "tgs_",
    );
    let (status, rotated) = admin_call(
        reqwest::Method::POST,
        format!("/admin/clients/{payments}/rotate-secret"),
        Some(json!({"grace_seconds": 300})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    secrets.add_prefixed(
        "rotated client secret",
        rotated["client_secret"].as_str().unwrap(),
        "tgs_",
    );
    cli_json(
        db,
        &[
            "account",
            "create",
            "--handle",
            "alice",
            "--scope",
            "read write keys",
            "--json",
        ],
    );
    let (status, link) = admin_call(
        reqwest::Method::POST,
        "/admin/accounts/alice/invite".into(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let link = link["url"].as_str().unwrap();
    let invite_path = link[link.find("/console/invite/").unwrap()..].to_owned();
    secrets.add(
        "invite token",
        invite_path.trim_start_matches("/console/invite/"),
    );

    // The console: the invite link sets the password; sign out, a wrong password, sign in.
    let browser = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base: server.address.clone(),
    };
    secrets.add("password", PASSWORD);
    let session_cookie = |page: &crate::console::Page| {
        let cookie = page.headers["set-cookie"].to_str().unwrap();
        let value = cookie
            .strip_prefix("tollgate_session=")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("a session cookie: {cookie}"));
        value.to_owned()
    };
    let accepted = browser.accept_invite(&invite_path, PASSWORD).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    secrets.add("session cookie (invite)", &session_cookie(&accepted));
    let keys = browser.get("/console/keys").await;
    let out = browser
        .post("/console/sign-out", &[("csrf", &keys.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let wrong_password = "incorrect mule battery staple";
    secrets.add("wrong password", wrong_password);
    let refused = browser.sign_in("alice", wrong_password).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let signed_in = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    secrets.add("session cookie (sign-in)", &session_cookie(&signed_in));
    let console_key = browser.create_key("deploy script", &["read"]).await;
    secrets.add_prefixed("API key from the console", &console_key, "tg_");
    let listed = cli_json(db, &["api-key", "list", "--account", "alice", "--json"]);
    let console_key_id = listed[0]["id"].as_str().unwrap().to_owned();
    let confirm = browser
        .get(&format!("/console/keys/{console_key_id}/regenerate"))
        .await;
    let regenerated = browser
        .post(
            &format!("/console/keys/{console_key_id}/regenerate"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.body);
    secrets.add_prefixed(
        "API key regenerated in the console",
        &shown_key(&regenerated.body),
        "tg_",
    );

    // API keys: made with the CLI, through the account API, regenerated, used, refused.
    let owner = cli_json(
        db,
        &[
            "api-key",
            "create",
            "--account",
            "alice",
            "--name",
            "owner",
            "--scope",
            "read write keys",
            "--json",
        ],
    )["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.add_prefixed("API key from the CLI", &owner, "tg_");
    let with_key = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut request = http.request(method, url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, laptop) = with_key(
        reqwest::Method::POST,
        "/api/v1/keys",
        &owner,
        Some(json!({"name": "laptop", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{laptop}");
    let laptop_key = laptop["api_key"].as_str().unwrap().to_owned();
    secrets.add_prefixed("API key from the account API", &laptop_key, "tg_");
    let laptop_id = laptop["id"].as_str().unwrap();
    let (status, fresh) = with_key(
        reqwest::Method::POST,
        &format!("/api/v1/keys/{laptop_id}/regenerate"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    let fresh_key = fresh["api_key"].as_str().unwrap().to_owned();
    secrets.add_prefixed("regenerated API key", &fresh_key, "tg_");
    let (status, _) = with_key(reqwest::Method::GET, "/api/v1/me", &fresh_key, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = with_key(reqwest::Method::GET, "/api/v1/me", &laptop_key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old key is revoked");
    assert_eq!(introspect(fresh_key.clone()).await["active"], true);

    // Pairing: the app asks, the owner reads the code, a wrong code, then the right one.
    let (status, asked) = {
        let response = http
            .post(url("/v1/auth/challenges"))
            .json(&json!({"app_name": "Photo Sync", "account": "alice", "scopes": ["read"]}))
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED, "{asked}");
    let challenge = asked["challenge_id"].as_str().unwrap().to_owned();
    let (status, pending) =
        with_key(reqwest::Method::GET, "/api/v1/challenges", &owner, None).await;
    assert_eq!(status, StatusCode::OK);
    let code = pending["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == challenge.as_str())
        .unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong_code = format!("{:04}", (code.parse::<u32>().unwrap() + 5_003) % 10_000);
    let redeem = |code: String| {
        let (http, url, challenge) = (http.clone(), url("/v1/auth/api_keys"), challenge.clone());
        async move {
            let response = http
                .post(url)
                .json(&json!({"challenge_id": challenge, "code": code}))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = redeem(wrong_code.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, paired) = redeem(code.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{paired}");
    let paired_key = paired["api_key"].as_str().unwrap().to_owned();
    secrets.add_prefixed("API key from pairing", &paired_key, "tg_");

    // Token exchange: the paired key for a short-lived token, and a bogus key refused.
    let exchange = |subject: String| {
        let (http, url) = (http.clone(), url("/oauth/token"));
        async move {
            let response = http
                .post(url)
                .form(&[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", subject.as_str()),
                    ("subject_token_type", API_KEY_TYPE),
                ])
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, exchanged) = exchange(paired_key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{exchanged}");
    secrets.add_jwt(
        "exchanged access token",
        exchanged["access_token"].as_str().unwrap(),
    );
    let bogus = format!("tg_{}", "B0gusKeyB0gusKeyB0gusKeyB0gusKeyB0gus");
    secrets.add("bogus API key", &bogus);
    let (status, _) = exchange(bogus).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = with_key(
        reqwest::Method::GET,
        "/admin/clients",
        "tg_NotAnAdminTokenAtAllNotAnAdminToken",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    secrets.add(
        "bearer sent to the admin API",
        "tg_NotAnAdminTokenAtAllNotAnAdminToken",
    );
    vec![
        ("pairing code".to_owned(), code),
        ("wrong pairing code".to_owned(), wrong_code),
    ]
}
