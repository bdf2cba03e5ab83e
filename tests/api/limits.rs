//! Limits: request head and body timeouts, the connection caps (total and per address), throttling of failed client
//! authentication, owner-only data files, and a full SQLite database.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestDb, form_encode, spawn_app_on, spawn_app_with};

/// Sends `bytes` on a fresh connection, then reads until the server closes it (or
/// `patience` passes). Returns what was read and how long it took.
async fn raw_exchange(address: &str, bytes: &[u8], patience: Duration) -> (String, Duration) {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.expect("connect");
    let started = Instant::now();
    stream.write_all(bytes).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(patience, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server held the connection for {patience:?}: {}",
        String::from_utf8_lossy(&answer)
    );
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn json_body_of(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body.trim()).unwrap_or_else(|_| panic!("a JSON body in {answer:?}"))
}

#[tokio::test]
async fn a_stalled_body_gets_a_json_408_within_the_body_timeout_while_others_are_served() {
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\nrequest_body_timeout_ms = 600\nrequest_head_timeout_ms = 600\n",
    )
    .await;
    let token = app.admin_token().await;
    // Every way a handler reads a body: our own reader (token), `web::Bytes` (account
    // API), `web::Json` (admin API, after its bearer check), and a chunked body.
    let requests = [
        "POST /oauth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=".to_owned(),
        "POST /api/v1/keys HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":\"x".to_owned(),
        format!("POST /admin/clients HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":\"x"),
        "POST /oauth/introspect HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntoken\r\n".to_owned(),
    ];
    let stalled: Vec<_> = requests
        .iter()
        .map(|request| {
            let (address, request) = (app.address.clone(), request.clone());
            tokio::spawn(async move {
                raw_exchange(&address, request.as_bytes(), Duration::from_secs(10)).await
            })
        })
        .collect();
    // Meanwhile normal clients are served at once.
    for _ in 0..5 {
        let started = Instant::now();
        let (status, _) = app.get_json("/health/live").await;
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    for (request, task) in requests.iter().zip(stalled) {
        let (answer, took) = task.await.expect("stalled client");
        let line = request.lines().next().unwrap_or_default().to_owned()
            + if request.contains("chunked") {
                " (chunked)"
            } else {
                ""
            };
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{line}: expected 408, got {answer:?}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{line}: {answer:?}"
        );
        assert_eq!(json_body_of(&answer)["error"], "invalid_request", "{line}");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{line}: answered after {took:?}"
        );
    }
    // A head that never ends is cut by the head timeout (actix's own 408, then close).
    let (answer, took) = raw_exchange(
        &app.address,
        b"POST /oauth/token HTTP/1.1\r\nHost: t\r\nX-Slow",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(took < Duration::from_secs(3), "head held for {took:?}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_and_are_then_served() {
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\nmax_connections = 2\nrequest_head_timeout_ms = 1000\n",
    )
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    // Two idle connections take every slot.
    let idle = [
        TcpStream::connect(&host).await.expect("connect"),
        TcpStream::connect(&host).await.expect("connect"),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(app.url("/health/live"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served once a slot frees");
    let waited = started.elapsed();
    assert_eq!(response.status(), 200);
    // Served only after the idle connections timed out, not refused.
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    drop(idle);
}

/// Reads one response (head and `Content-Length` body) from a keep-alive connection.
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(read > 0, "closed before a whole response: {text:?}");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Waits until the server closes `stream` (end of file or reset); returns how long it took.
async fn closed_within(stream: &mut TcpStream, patience: Duration) -> Duration {
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(patience, stream.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the server held the connection for {patience:?}: {}",
        String::from_utf8_lossy(&rest)
    );
    started.elapsed()
}

#[tokio::test]
async fn a_stalled_second_request_head_on_a_keep_alive_connection_is_cut_at_the_head_timeout() {
    // The reviewer's reproducer, scaled to a cap of 4: each connection gets one answer,
    // then sends `G` and stops. Before the fix they held every slot forever.
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\nrequest_head_timeout_ms = 500\nrequest_body_timeout_ms = 500\nmax_connections = 4\nworkers = 1\n",
    )
    .await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&host).await.expect("connect");
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let answer = read_one_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        stream.write_all(b"G").await.expect("write");
        stalled.push(stream);
    }
    let started = Instant::now();
    // A new client is served once the stalled ones are cut, not never.
    let response = reqwest::Client::new()
        .get(app.url("/health/live"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served once the stalled connections are closed");
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );
    for stream in &mut stalled {
        let took = closed_within(stream, Duration::from_secs(3)).await;
        assert!(took < Duration::from_secs(2), "closed after {took:?}");
    }
    // A keep-alive client that sends its requests in time keeps its connection.
    let mut stream = TcpStream::connect(&host).await.expect("connect");
    for _ in 0..3 {
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let answer = read_one_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_body_the_handler_does_not_read_does_not_hold_the_connection() {
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\nrequest_head_timeout_ms = 500\nrequest_body_timeout_ms = 500\n",
    )
    .await;
    // The reviewer's reproducer (a chunked POST to an unknown path, then nothing) and the
    // other answers that never read the body: a GET handler, 405, a failed bearer check,
    // and a `Content-Length` body left short.
    let requests = [
        (
            "404",
            "POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "200",
            "GET /health/live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ),
        (
            "405",
            "PUT /oauth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "401",
            "POST /admin/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
        ),
        (
            "404",
            "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        ),
    ];
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut open = Vec::new();
    for (status, request) in requests {
        let mut stream = TcpStream::connect(&host).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let answer = read_one_response(&mut stream).await;
        let line = request.lines().next().unwrap_or_default();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{line}: {answer:?}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{line}: {answer:?}"
        );
        open.push((line.to_owned(), stream));
    }
    // Meanwhile normal clients are served at once.
    let (status, _) = app.get_json("/health/live").await;
    assert_eq!(status, 200);
    for (line, stream) in &mut open {
        // Keep trickling chunks: the server must not keep draining them.
        let _ = stream.write_all(b"1\r\nx\r\n").await;
        let took = closed_within(stream, Duration::from_secs(5)).await;
        assert!(
            took < Duration::from_secs(3),
            "{line}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn a_request_not_answered_within_the_request_timeout_loses_its_connection() {
    // The watchdog's backstop for a request that is being handled: here the body deadline
    // (5 s) is set longer than the request timeout (700 ms), so the stalled body is cut by
    // the watchdog, unanswered.
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\nrequest_body_timeout_ms = 5000\nrequest_timeout_ms = 700\n",
    )
    .await;
    let (answer, took) = raw_exchange(
        &app.address,
        b"POST /oauth/token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.is_empty(), "{answer:?}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    // Requests answered in time are not affected.
    let (status, _) = app.get_json("/health/live").await;
    assert_eq!(status, 200);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\nrequest_head_timeout_ms = 3000\nmax_connections = 10\nmax_connections_per_address = 2\n",
    )
    .await;
    let server: std::net::SocketAddr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let connect_from = |source: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("source"))
            .expect("bind");
        socket.connect(server).await.expect("connect")
    };
    let request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two idle connections from 127.0.0.1 take its share.
    let mut held = vec![
        connect_from("127.0.0.1").await,
        connect_from("127.0.0.1").await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third from the same address is closed at once, unanswered.
    let mut third = connect_from("127.0.0.1").await;
    let _ = third.write_all(request).await;
    let took = closed_within(&mut third, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    // Another address is served.
    let mut other = connect_from("127.0.0.2").await;
    other.write_all(request).await.expect("write");
    let answer = read_one_response(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // The held connections still work, and a closed one frees its slot.
    held[0].write_all(request).await.expect("write");
    let answer = read_one_response(&mut held[0]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    drop(held.remove(1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from("127.0.0.1").await;
    again.write_all(request).await.expect("write");
    let answer = read_one_response(&mut again).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_per_client_and_address() {
    let app = spawn_app_with(
        Backend::Sqlite,
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [limits]\nauth_failures_per_client_and_address = 3\nauth_failures_per_address = 6\n\
         auth_failure_window_seconds = 60\n",
    )
    .await;
    let victim = app.create_client("victim", "read", &[]);
    let other = app.create_client("other", "read introspect", &[]);
    let token_from = |address: &str, id: &str, secret: &str| {
        app.http
            .post(app.url("/oauth/token"))
            .header("x-forwarded-for", address)
            .basic_auth(form_encode(id), Some(form_encode(secret)))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let attacker = "198.51.100.66";
    // Correct requests never count.
    for _ in 0..10 {
        let response = token_from(attacker, &other.id, &other.secret)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    for _ in 0..3 {
        let response = token_from(attacker, &victim.id, "wrong").await.unwrap();
        assert_eq!(response.status(), 401);
    }
    // The pair is locked for failures: a guesser sees only 429s...
    {
        let secret = "still wrong";
        let response = token_from(attacker, &victim.id, secret).await.unwrap();
        assert_eq!(response.status(), 429);
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((50..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("try again")
        );
    }
    // ...while the right secret still works, even from that address (a shared NAT or proxy
    // must not lock a client out).
    let response = token_from(attacker, &victim.id, &victim.secret)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The victim from its own address is not locked out, and neither is another client
    // from the attacker's address (under the per-address budget).
    let response = token_from("203.0.113.10", &victim.id, &victim.secret)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = token_from(attacker, &other.id, &other.secret)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Failures at revocation and introspection count too (and so do throttled ones: 4 from
    // this address so far); past the per-address budget the whole address waits.
    for _ in 0..2 {
        let response = app
            .http
            .post(app.url("/oauth/introspect"))
            .header("x-forwarded-for", attacker)
            .basic_auth(&other.id, Some("wrong"))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .header("x-forwarded-for", attacker)
        .basic_auth(&other.id, Some("wrong again"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let response = token_from(attacker, &victim.id, "wrong").await.unwrap();
    assert_eq!(
        response.status(),
        429,
        "the whole address waits for failures"
    );
    let response = token_from(attacker, &other.id, &other.secret)
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "right secrets still pass");
    let response = token_from("203.0.113.11", &other.id, &other.secret)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // IPv6 addresses count per /64.
    for n in 0..6 {
        let address = format!("2001:db8:7:7::{n:x}");
        let id = if n < 3 { &victim.id } else { &other.id };
        let response = token_from(&address, id, "wrong").await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = token_from("2001:db8:7:7:ffff::1", &other.id, "wrong")
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_path = data.join("tollgate.db");
    let overrides = tollgate::config::Overrides {
        bind: Some("127.0.0.1:0".into()),
        database_url: Some(format!("sqlite://{}", db_path.display())),
        log_level: Some("warn".into()),
        ..Default::default()
    };
    let settings = tollgate::config::Settings::from_parts(Default::default(), &overrides).unwrap();
    let app = tollgate::startup::Application::build(settings)
        .await
        .unwrap();
    let handle = app.handle();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&db_path), 0o600, "database file");
    for suffix in ["-wal", "-shm"] {
        let path = data.join(format!("tollgate.db{suffix}"));
        assert_eq!(mode(&path), 0o600, "{suffix}");
    }
    assert_eq!(mode(&data.join("master.key")), 0o600, "master key");
    handle.stop(true).await;
}

#[tokio::test]
async fn a_full_sqlite_database_answers_503_and_readiness_says_so() {
    let db = TestDb::new(Backend::Sqlite);
    // Migrate once without a cap, then restart capped a few pages above the current size.
    let first = spawn_app_on(db.clone(), "").await;
    first.stop().await;
    #[derive(diesel::QueryableByName)]
    struct Pages {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        page_count: i64,
    }
    let pages = diesel::sql_query("PRAGMA page_count")
        .get_result::<Pages>(&mut db.conn())
        .unwrap()
        .page_count;
    let cap = ((pages + 4) * 4096).max(65_536);
    let app = spawn_app_on(db, &format!("[database]\nsqlite_max_size_bytes = {cap}\n")).await;
    let service = app.create_client("svc", "read", &[]);
    let admin = app.admin_token().await;
    let filler = "x".repeat(150);
    let mut refused = None;
    for n in 0..2_000 {
        let response = app
            .http
            .post(app.url("/admin/clients"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("{filler}{n}"), "scopes": "read"}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            201 => continue,
            status => {
                refused = Some((status, response.json::<Value>().await.unwrap()));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the capped database fills up");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let (status, body) = app.get_json("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["database"], "refusing writes");
    // Reads go on: tokens are issued, keys published.
    let token = app.token(&service, &[]).await;
    assert!(token["access_token"].is_string());
    let (status, _) = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
}
