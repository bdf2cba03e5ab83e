//! Keep attacking: at least 10,000 generated malformed requests (seeded, so a failure can be
//! replayed) against a live server on each backend, over raw TCP so that framing can be
//! broken too. Fails on any 5xx, on any error answer that is not JSON, and on any hang.
//!
//! Rules: every answer must come within the timeout (or the connection must be closed);
//! an answer of 4xx must carry a JSON body with an `error` member, except an empty-bodied
//! 400/431 from the HTTP layer for a request whose framing could not be parsed (it has no
//! route to answer it), and HEAD answers, which have no body by definition.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::both_backends;
use crate::helpers::{Backend, spawn_app};
use crate::surface::PATHS;

const REQUESTS: usize = 10_000;
const WORKERS: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(10);

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Credentials the junk may carry, so that it also reaches past authentication.
struct Credentials {
    admin: String,
    api_key: String,
    client_basic: String,
}

/// One generated request: its bytes, whether its framing is broken on purpose, and whether
/// to close the write side early (a truncated body).
struct Junk {
    bytes: Vec<u8>,
    broken_framing: bool,
    method: String,
    what: String,
}

fn junk_path(rng: &mut Rng) -> String {
    let mut path = rng.pick(PATHS).to_owned();
    match rng.below(12) {
        0 => path.push_str("/extra"),
        1 => path.push_str("?limit=abc&account=%zz&client=%C3"),
        2 => path.push_str("?access_token=x&i=y"),
        3 => path = path.replace('/', "//"),
        4 => path.push_str("/%00%ff%2e%2e/.."),
        5 => path.push_str(&format!("?{}", "a=1&".repeat(rng.below(2000)))),
        6 => path.push_str(&"x".repeat(rng.below(9000))),
        7 => path.push_str("?limit=-1"),
        8 => path.push_str("?limit=99999999999999999999"),
        9 => path = path.to_uppercase(),
        _ => {}
    }
    path
}

fn junk_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(20) {
        0 => Vec::new(),
        1 => {
            let len = rng.below(300);
            rng.bytes(len)
        }
        2 => b"{\"name\": \"x\", \"scopes\": [".to_vec(),
        3 => {
            let depth = 1 + rng.below(5000);
            let mut body = "[".repeat(depth);
            body.push_str(&"]".repeat(depth));
            body.into_bytes()
        }
        4 => vec![b'a'; 4096 + rng.below(300_000)],
        5 => b"grant_type=client_credentials&scope=%zz%C3%28&client_id=%FF".to_vec(),
        6 => b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x&subject_token_type=urn%3Atollgate%3Aparams%3Aoauth%3Atoken-type%3Aapi_key".to_vec(),
        7 => b"token=abc&token_type_hint=%22&token=def".to_vec(),
        8 => br#"{"app_name": 1, "account": null, "scopes": {"a": []}}"#.to_vec(),
        9 => br#"{"challenge_id": "x", "code": "12\u0000"}"#.to_vec(),
        10 => br#"{"name": "k", "scopes": "keys", "expires_in": -5, "i": 7}"#.to_vec(),
        11 => br#"{"name": "\ud800", "scope": "a\"b", "grant_types": ["x"], "audiences": [""]}"#
            .to_vec(),
        12 => b"\xef\xbb\xbf{\"name\":\"bom\"}".to_vec(),
        13 => "{\"name\": \"é\"}".encode_utf16().flat_map(u16::to_le_bytes).collect(),
        14 => br#"{"handle": "a", "display_name": "x", "scope": "admin keys"}"#.to_vec(),
        15 => b"\x00\x00\x00".to_vec(),
        16 => format!("{{\"name\": \"{}\"}}", "n".repeat(70_000)).into_bytes(),
        17 => br#"{"enabled": "yes", "ttl_seconds": 1e400}"#.to_vec(),
        18 => b"a=%&b=%G0&c=%e9".to_vec(),
        _ => br#"{"name":"x","name":"y"}"#.to_vec(),
    }
}

fn generate(rng: &mut Rng, port: u16, credentials: &Credentials) -> Junk {
    let method = rng
        .pick(&[
            "GET", "GET", "POST", "POST", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS",
            "TRACE", "FOO", "get",
        ])
        .to_owned();
    let path = junk_path(rng);
    let body = junk_body(rng);
    let mut headers: Vec<(String, Vec<u8>)> =
        vec![("Host".into(), format!("127.0.0.1:{port}").into_bytes())];
    if rng.chance(70) {
        let content_type: &str = rng.pick(&[
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "application/json; charset=latin1",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded; charset=\"",
            "",
            "application/jsonx",
        ]);
        headers.push(("Content-Type".into(), content_type.as_bytes().to_vec()));
    }
    if rng.chance(70) {
        let basic_junk = format!("Basic {}", STANDARD.encode(rng.bytes(12)));
        let authorization: Vec<u8> = match rng.below(11) {
            0 => format!("Bearer {}", credentials.admin).into_bytes(),
            1 => format!("Bearer {}", credentials.api_key).into_bytes(),
            2 => credentials.client_basic.clone().into_bytes(),
            3 => b"Bearer".to_vec(),
            4 => b"Bearer a.b.c".to_vec(),
            5 => basic_junk.into_bytes(),
            6 => b"Basic !!!".to_vec(),
            7 => format!("Bearer {}", "x".repeat(12_000)).into_bytes(),
            8 => b"Bearer \xff\xfe".to_vec(),
            9 => b"Negotiate abc".to_vec(),
            _ => Vec::new(),
        };
        headers.push(("Authorization".into(), authorization));
    }
    if rng.chance(10) {
        headers.push(("Tollgate-Version".into(), b"1999-01-01\xe9".to_vec()));
    }
    if rng.chance(10) {
        headers.push(("X-Forwarded-For".into(), b"::1, 999.1.1.1, junk".to_vec()));
    }
    if rng.chance(3) {
        headers.push(("X-Huge".into(), vec![b'h'; 20_000 + rng.below(60_000)]));
    }
    if rng.chance(2) {
        for i in 0..(50 + rng.below(100)) {
            headers.push((format!("X-Many-{i}"), b"1".to_vec()));
        }
    }
    if rng.chance(3) {
        headers.push(("Expect".into(), b"100-continue".to_vec()));
    }
    let mut broken_framing = false;
    let mut send_len = body.len();
    match rng.below(20) {
        // Truncated: more declared than sent, then the write side closes.
        0 => {
            headers.push((
                "Content-Length".into(),
                (body.len() + 1 + rng.below(1000)).to_string().into_bytes(),
            ));
        }
        // Fewer declared than sent: the rest is read as a next (junk) request.
        1 if !body.is_empty() => {
            headers.push((
                "Content-Length".into(),
                (body.len() / 2).to_string().into_bytes(),
            ));
        }
        2 => {
            broken_framing = true;
            headers.push(("Content-Length".into(), b"12abc".to_vec()));
        }
        3 => {
            broken_framing = true;
            headers.push(("Content-Length".into(), body.len().to_string().into_bytes()));
            headers.push(("Transfer-Encoding".into(), b"chunked".to_vec()));
        }
        4 => {
            broken_framing = true;
            headers.push(("Content-Length".into(), b"-1".to_vec()));
        }
        5 => {
            // Chunked with a bad chunk size.
            headers.push(("Transfer-Encoding".into(), b"chunked".to_vec()));
            let mut chunked = b"zz\r\n".to_vec();
            chunked.extend_from_slice(&body);
            return finish(method, &path, headers, chunked, true, rng);
        }
        6 => {
            // No length at all.
            send_len = body.len();
        }
        _ => headers.push(("Content-Length".into(), body.len().to_string().into_bytes())),
    }
    let body = body[..send_len].to_vec();
    finish(method, &path, headers, body, broken_framing, rng)
}

fn finish(
    method: String,
    path: &str,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    mut broken_framing: bool,
    rng: &mut Rng,
) -> Junk {
    let mut bytes = Vec::new();
    let request_line = match rng.below(60) {
        0 => {
            broken_framing = true;
            format!("{method} {path}\r\n")
        }
        1 => {
            broken_framing = true;
            format!("{method} {path} HTTP/9.9\r\n")
        }
        2 => {
            broken_framing = true;
            format!("{method}  {path} HTTP/1.1\r\n")
        }
        3 => {
            broken_framing = true;
            format!("{method} {path}\x01 HTTP/1.1\r\n")
        }
        _ => format!("{method} {path} HTTP/1.1\r\n"),
    };
    bytes.extend_from_slice(request_line.as_bytes());
    let mut big_head = false;
    for (name, value) in &headers {
        big_head |= value.len() > 16 * 1024 || headers.len() > 96;
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    // Header values with bytes the HTTP layer refuses before routing.
    broken_framing |= big_head
        || headers
            .iter()
            .any(|(_, v)| v.iter().any(|b| *b < 0x20 && *b != b'\t'));
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    bytes.extend_from_slice(&body);
    let what = format!(
        "{} {}{}",
        method,
        &path[..path.len().min(80)],
        if broken_framing {
            " (broken framing)"
        } else {
            ""
        }
    );
    Junk {
        bytes,
        broken_framing,
        method,
        what,
    }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends one request and reads the first answer; `Ok(None)` when the server closed without
/// answering, `Err` on a hang.
fn exchange(port: u16, junk: &Junk) -> Result<Option<Answer>, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).ok();
    stream.set_write_timeout(Some(TIMEOUT)).ok();
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = stream.write_all(&junk.bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer within {:?}", started.elapsed()));
            }
            // Reset after an early answer: keep what came.
            Err(_) => break,
        }
    }
    if received.is_empty() {
        return Ok(None);
    }
    parse_answer(&received, junk.method == "HEAD").map(Some)
}

/// The first answer in `received` (a HEAD answer has no body, whatever its length says).
fn parse_answer(received: &[u8], head_request: bool) -> Result<Answer, String> {
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "no complete head: {:?}",
                String::from_utf8_lossy(&received[..received.len().min(200)])
            )
        })?;
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &received[end + 4..];
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = match length {
        _ if head_request => Vec::new(),
        Some(len) => rest[..len.min(rest.len())].to_vec(),
        None => rest.to_vec(),
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn check(junk: &Junk, answer: &Answer) -> Result<(), String> {
    if answer.status >= 500 {
        return Err(format!(
            "{}: {} {:?}",
            junk.what,
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    if answer.status < 400 {
        return Ok(());
    }
    let framing_refusal = junk.broken_framing && matches!(answer.status, 400 | 431 | 413);
    if answer.body.is_empty() && (junk.method == "HEAD" || framing_refusal) {
        return Ok(());
    }
    let json: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|_| {
        format!(
            "{}: {} with a non-JSON body {:?} ({:?})",
            junk.what,
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]),
            answer.headers
        )
    })?;
    if !json["error"].is_string() {
        return Err(format!(
            "{}: {} without an error member: {json}",
            junk.what, answer.status
        ));
    }
    let description = json["error_description"].as_str().unwrap_or_default();
    if !tollgate::oauth::error::is_rfc_text(description) {
        return Err(format!(
            "{}: error_description outside the RFC set: {description:?}",
            junk.what
        ));
    }
    Ok(())
}

async fn junk_requests_get_json_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let client = app.create_client("svc", "read", &[]);
    app.cli_json(&[
        "account",
        "create",
        "--handle",
        "alice",
        "--scope",
        "keys read",
        "--json",
    ]);
    let key = app.cli_json(&[
        "api-key",
        "create",
        "--account",
        "alice",
        "--name",
        "k",
        "--scope",
        "keys",
        "--json",
    ]);
    let credentials = Arc::new(Credentials {
        admin: app.admin_token().await,
        api_key: key["api_key"].as_str().unwrap().to_owned(),
        client_basic: format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", client.id, client.secret))
        ),
    });
    let seed: u64 = std::env::var("TOLLGATE_JUNK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_7011_6A7E);
    let started = Instant::now();
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let (answered, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (credentials, failures) = (credentials.clone(), failures.clone());
            let (answered, closed) = (answered.clone(), closed.clone());
            tokio::task::spawn_blocking(move || {
                let mut rng = Rng(seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                for _ in 0..REQUESTS.div_ceil(WORKERS) {
                    let junk = generate(&mut rng, port, &credentials);
                    let verdict = match exchange(port, &junk) {
                        Ok(Some(answer)) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                            check(&junk, &answer)
                        }
                        Ok(None) => {
                            closed.fetch_add(1, Ordering::Relaxed);
                            if junk.broken_framing {
                                Ok(())
                            } else {
                                Err(format!("{}: closed without an answer", junk.what))
                            }
                        }
                        Err(why) => Err(format!("{}: {why}", junk.what)),
                    };
                    if let Err(failure) = verdict {
                        failures.lock().unwrap().push(failure);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    let (answered, closed) = (
        answered.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
    );
    assert!(answered + closed >= REQUESTS, "{answered} + {closed}");
    assert!(
        failures.is_empty(),
        "{} of {} junk requests (seed {seed:#x}) got a wrong answer, e.g.:\n{}",
        failures.len(),
        answered + closed,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The server still serves real clients afterwards.
    let (status, _) = app.get_json("/health/ready").await;
    assert_eq!(status, 200);
    eprintln!(
        "junk: {answered} answered, {closed} closed without answer, in {:?}",
        started.elapsed()
    );
}

both_backends!(junk_requests_get_json_answers);
