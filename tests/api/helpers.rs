//! Test harness: a database per test (a temp dir for SQLite, a schema for PostgreSQL), the
//! real application on a random port, and clients to talk to it.

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use serde_json::Value;
use tempfile::TempDir;
use tollgate::app::Clock;
use tollgate::config::{FileSettings, Overrides, Settings};
use tollgate::crypto::sealed::MasterKey;
use tollgate::db::{Db, DbConn, DbUrl};
use tollgate::startup::Application;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Expands each named `async fn name(backend: Backend)` into a `sqlite` and a `postgres`
/// test. Built without TEST_DATABASE_URL, the postgres case is `#[ignore]`d (build.rs sets
/// `tollgate_no_postgres`), so `cargo test` reports it as ignored rather than passed;
/// with TOLLGATE_REQUIRE_POSTGRES=1 (CI) it is never ignored and fails without a database.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
                #[tokio::test]
                #[cfg_attr(
                    tollgate_no_postgres,
                    ignore = "no TEST_DATABASE_URL: PostgreSQL not tested"
                )]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// The PostgreSQL server to test against, if any. Without TLS unless the URL asks for it
/// (`sslmode=`): the apps the tests start are never stopped, so their change-feed threads
/// are still in libpq's TLS reads when the test binary exits, and OpenSSL's exit handler
/// freeing its state under them crashed the binary (SIGSEGV) after every test had passed.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(if url.contains("sslmode=") {
            url
        } else {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}sslmode=disable")
        }),
        _ => {
            assert!(
                std::env::var("TOLLGATE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "TOLLGATE_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"
            );
            None
        }
    }
}

/// A fixed master key for tests (PostgreSQL needs one; SQLite tests use the key file).
pub const TEST_MASTER_KEY: &str =
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// One test's database, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: TempDir,
    admin_url: Option<String>,
    schema: Option<String>,
}

impl TestDb {
    pub fn new(backend: Backend) -> Arc<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
                Arc::new(Self {
                    backend,
                    url,
                    dir,
                    admin_url: None,
                    schema: None,
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_url().expect(
                    "TEST_DATABASE_URL is not set, but this test binary was built with it: \
                     run `cargo test` without it to skip the PostgreSQL cases (as ignored)",
                );
                let schema = format!(
                    "tollgate_test_{}",
                    tollgate::crypto::secrets::random_id()
                        .to_lowercase()
                        .replace(['-', '_'], "")
                );
                let mut conn =
                    PgConnection::establish(&admin_url).expect("connect to TEST_DATABASE_URL");
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .expect("create schema");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=--search_path%3D{schema}");
                Arc::new(Self {
                    backend,
                    url,
                    dir,
                    admin_url: Some(admin_url),
                    schema: Some(schema),
                })
            }
        }
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (self.backend == Backend::Sqlite).then(|| self.dir.path().join("tollgate.db"))
    }

    /// Environment for the server and the CLI on this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("DATABASE_URL", self.url.clone())];
        if self.backend == Backend::Postgres {
            env.push(("TOLLGATE_MASTER_KEY", TEST_MASTER_KEY.to_owned()));
        }
        env
    }

    /// A connection of its own (no pool) to this database, to arrange or inspect rows
    /// through the `db` layer while the server runs.
    pub fn conn(&self) -> DbConn {
        Db::connect_one(&DbUrl::parse(&self.url).expect("test database URL"))
            .expect("connect to the test database")
    }

    /// Runs raw SQL (one or more statements) on this database: damage, triggers.
    pub fn execute(&self, sql: &str) {
        self.conn()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The master key the server and the CLI use on this database.
    pub fn master_key(&self) -> MasterKey {
        tollgate::startup::load_master_key(&settings(self, "").master_key).expect("master key")
    }

    pub fn overrides(&self) -> Overrides {
        Overrides {
            bind: Some("127.0.0.1:0".into()),
            database_url: Some(self.url.clone()),
            master_key: (self.backend == Backend::Postgres).then(|| TEST_MASTER_KEY.to_owned()),
            ..Overrides::default()
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(admin_url), Some(schema)) = (&self.admin_url, &self.schema)
            && let Ok(mut conn) = PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut conn);
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub issuer: String,
    pub db: Arc<TestDb>,
    pub http: reqwest::Client,
    /// The server's clock: move it forward instead of sleeping until a token expires.
    pub clock: Clock,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, when `metrics.listen` is set.
    pub metrics: Option<String>,
    handle: ServerHandle,
    state: Arc<tollgate::app::AppState>,
}

/// Settings for a test server: defaults, plus the test database, plus `file` (TOML).
pub fn settings(db: &TestDb, file: &str) -> Settings {
    let mut parsed: FileSettings = toml::from_str(file).expect("test config");
    // One worker keeps parallel tests light; a short refresh keeps CLI-to-server tests quick.
    parsed.server.workers = 1;
    parsed.signing.key_refresh_ms = 200;
    let mut overrides = db.overrides();
    overrides.log_level = Some("warn".into());
    Settings::from_parts(parsed, &overrides).expect("test settings")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_on(TestDb::new(backend), "").await
}

pub async fn spawn_app_with(backend: Backend, config: &str) -> TestApp {
    spawn_app_on(TestDb::new(backend), config).await
}

/// Starts the real application on a random port, on an existing test database.
pub async fn spawn_app_on(db: Arc<TestDb>, config: &str) -> TestApp {
    tollgate::telemetry::init("warn");
    let app = Application::build(settings(&db, config))
        .await
        .expect("application builds");
    let port = app.port();
    let issuer = app.issuer().to_owned();
    let handle = app.handle();
    let clock = app.clock();
    let metrics = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        issuer,
        db,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        clock,
        metrics,
        handle,
        state,
    }
}

/// A client as created through the CLI or the admin API.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }

    /// Runs the `tollgate` binary against this app's database.
    /// Runs the CLI on this server's database; returns once the server has read the
    /// change feed past what the command did (the server sees another process's change
    /// within milliseconds; `cache_propagation` tests that bound itself).
    pub fn cli(&self, args: &[&str]) -> Output {
        let output = cli(&self.db, args);
        self.state.cache.catch_up_blocking();
        output
    }

    /// The server's in-memory view of clients, keys, accounts and revocations.
    pub fn cache(&self) -> &tollgate::cache::HotCache {
        &self.state.cache
    }

    /// Runs a `--json` CLI command that must succeed; its output, parsed.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.cli(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).expect("--json prints JSON only")
    }

    /// Creates a client with the CLI (`--json`), so the CLI is exercised on every backend.
    pub fn create_client(&self, name: &str, scope: &str, extra: &[&str]) -> Client {
        let mut args = vec![
            "client", "create", "--name", name, "--scope", scope, "--json",
        ];
        args.extend_from_slice(extra);
        let output = self.cli(&args);
        assert!(
            output.status.success(),
            "client create failed ({:?}): {} {}",
            output.status,
            stderr(&output),
            stdout(&output)
        );
        let json: Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON only");
        Client {
            id: json["client_id"].as_str().expect("client_id").to_owned(),
            secret: json["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        }
    }

    /// `POST /oauth/token` with a raw form body and HTTP Basic credentials.
    pub async fn token_request(
        &self,
        client: Option<&Client>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/oauth/token")).form(form);
        if let Some(client) = client {
            request =
                request.basic_auth(form_encode(&client.id), Some(form_encode(&client.secret)));
        }
        request.send().await.expect("token request")
    }

    /// A token for `client`, asserting success.
    pub async fn token(&self, client: &Client, form: &[(&str, &str)]) -> Value {
        let mut full = vec![("grant_type", "client_credentials")];
        full.extend_from_slice(form);
        let response = self.token_request(Some(client), &full).await;
        assert_eq!(response.status(), 200, "token request failed");
        response.json().await.expect("token JSON")
    }

    pub async fn access_token(&self, client: &Client, form: &[(&str, &str)]) -> String {
        self.token(client, form).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// An operator client with the admin scope and a token for it.
    pub async fn admin_token(&self) -> String {
        let ops = self.create_client("ops", "admin", &[]);
        self.access_token(&ops, &[]).await
    }

    /// `POST /oauth/introspect` as the resource server `caller` (Basic), as JSON.
    pub async fn introspect_as(&self, caller: &Client, token: &str) -> Value {
        self.http
            .post(self.url("/oauth/introspect"))
            .basic_auth(&caller.id, Some(&caller.secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspection request")
            .json()
            .await
            .expect("introspection JSON")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks JSON")
    }

    /// Verifies `token` the way a resource server would: key from the JWKS by `kid`,
    /// ES256/EdDSA only, `iss`, `aud`, `exp` required. Returns the claims.
    pub async fn verify(&self, token: &str, audience: &str) -> Result<Value, String> {
        tollgate_verify::jwt_provider::install();
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let allowed = [
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::Algorithm::RS256,
        ];
        if !allowed.contains(&header.alg) {
            return Err(format!("algorithm {:?} not allowed", header.alg));
        }
        let kid = header.kid.ok_or("no kid")?;
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(&kid)
            .ok_or_else(|| format!("kid {kid} not in JWKS"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        // The algorithm comes from the allow-list above, and the key's family must match it.
        let validation_alg = header.alg;
        let mut validation = jsonwebtoken::Validation::new(validation_alg);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat", "nbf"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

/// The status and JSON body of an API answer; a 204 must have an empty body (as `Null`).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    if status == 204 {
        let body = response.bytes().await.expect("body");
        assert!(body.is_empty(), "204 with a body: {body:?}");
        return (status, Value::Null);
    }
    (status, response.json().await.expect("a JSON body"))
}

/// Asserts an RFC 6749 §5.2 error answer: status, code, description, no-store headers, and
/// `WWW-Authenticate: Basic` exactly for `invalid_client`. Returns the body.
pub async fn assert_oauth_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{code}");
    assert_eq!(response.headers()["pragma"], "no-cache", "{code}");
    if code == "invalid_client" {
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"tollgate\"",
            "RFC 6749 §5.2: 401 names the scheme"
        );
    } else {
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "{code}: no authentication challenge"
        );
    }
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"], code);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
}

pub fn cli(db: &TestDb, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .args(args)
        .current_dir(db.dir.path())
        .env_remove("TOLLGATE_CONFIG");
    for (name, value) in db.env() {
        command.env(name, value);
    }
    command.output().expect("run tollgate")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
pub fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The JSON payload of a JWT, without verifying it.
pub fn jwt_payload(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// Polls `check` until it returns true or `seconds` pass.
pub async fn eventually<F, Fut>(seconds: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Asserts the opaque answer to a server-side failure: 500, `server_error`, a fixed
/// description (never the cause), not cacheable.
pub async fn assert_server_error(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 500, "{what}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(
        body,
        serde_json::json!({"error": "server_error", "error_description": "internal server error"}),
        "{what}"
    );
}
