//! Metrics on their own listener, and request ids: scraped and read over HTTP from the
//! running server. (What the logs hold is `logs.rs`.)

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, Client, TestApp, spawn_app, spawn_app_with};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY_TYPE: &str = "urn:tollgate:params:oauth:token-type:api_key";

both_backends!(
    metrics_count_tokens_failures_routes_and_describe_the_pool_and_key,
    metrics_are_off_unless_configured,
    request_ids_are_kept_when_plain_and_generated_otherwise,
);

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics.as_ref().expect("metrics.listen is set");
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "the Prometheus text format"
    );
    response.text().await.unwrap()
}

/// The value of one series (`name{labels}` exactly as exposed, labels sorted by name).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.starts_with(' ').then(|| rest.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

async fn metrics_count_tokens_failures_routes_and_describe_the_pool_and_key(backend: Backend) {
    let app = spawn_app_with(backend, "[metrics]\nlisten = \"127.0.0.1:0\"\n").await;
    let issued_cc = "tollgate_tokens_issued_total{grant_type=\"client_credentials\"}";
    let issued_te = format!("tollgate_tokens_issued_total{{grant_type=\"{TOKEN_EXCHANGE}\"}}");
    let token_ok =
        "tollgate_http_requests_total{method=\"POST\",route=\"/oauth/token\",status=\"200\"}";
    let invalid_client =
        "tollgate_http_errors_total{error=\"invalid_client\",route=\"/oauth/token\"}";

    let before = scrape(&app).await;
    assert_eq!(value(&before, issued_cc), 0.0);
    assert_eq!(value(&before, &issued_te), 0.0);
    assert_eq!(value(&before, "tollgate_db_pool_max_connections"), 4.0);
    assert_eq!(value(&before, "tollgate_db_up"), 1.0);
    assert_eq!(value(&before, "tollgate_db_pool_waiting"), 0.0);
    let age_before = value(&before, "tollgate_signing_key_age_seconds");
    assert!((0.0..60.0).contains(&age_before), "{age_before}");
    assert!(!before.contains(token_ok), "no request yet");

    // Two client credentials tokens, one exchange, one wrong secret.
    let client = app.create_client("svc", "read", &[]);
    app.access_token(&client, &[]).await;
    app.access_token(&client, &[]).await;
    app.cli_json(&[
        "account", "create", "--handle", "ada", "--scope", "read", "--json",
    ]);
    let key = app.cli_json(&[
        "api-key",
        "create",
        "--account",
        "ada",
        "--name",
        "k",
        "--scope",
        "read",
        "--json",
    ])["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let exchanged = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", key.as_str()),
            ("subject_token_type", API_KEY_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(exchanged.status(), 200);
    let wrong = Client {
        id: client.id.clone(),
        secret: format!("{}x", client.secret),
    };
    let refused = app
        .token_request(Some(&wrong), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(refused.status(), 401);
    // A route with a parameter, and a path that matches no route.
    let admin = app.admin_token().await;
    let shown = app
        .http
        .get(app.url(&format!("/admin/clients/{}", client.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    let missing = app
        .http
        .get(app.url("/no/such/path/sk_live_probe"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.clock.advance(1_000);

    let after = scrape(&app).await;
    // + the admin client's token.
    assert_eq!(value(&after, issued_cc), 3.0);
    assert_eq!(value(&after, &issued_te), 1.0);
    assert_eq!(value(&after, token_ok), 4.0);
    assert_eq!(value(&after, invalid_client), 1.0);
    assert_eq!(
        value(
            &after,
            "tollgate_http_requests_total{method=\"POST\",route=\"/oauth/token\",status=\"401\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tollgate_http_request_duration_seconds_count{method=\"POST\",route=\"/oauth/token\"}"
        ),
        5.0
    );
    assert!(
        value(
            &after,
            "tollgate_http_request_duration_seconds_sum{method=\"POST\",route=\"/oauth/token\"}"
        ) > 0.0
    );
    // Routes by pattern, never by raw path: no ids, no junk paths.
    assert_eq!(
        value(
            &after,
            "tollgate_http_requests_total{method=\"GET\",route=\"/admin/clients/{id}\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tollgate_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tollgate_http_errors_total{error=\"not_found\",route=\"unmatched\"}"
        ),
        1.0
    );
    assert!(!after.contains(&client.id), "a raw path became a label");
    assert!(
        !after.contains("sk_live_probe"),
        "a raw path became a label"
    );
    // The pool has served requests; the key has aged with the clock.
    assert!(value(&after, "tollgate_db_pool_connections") >= 1.0);
    assert!(
        value(&after, "tollgate_db_pool_idle_connections")
            <= value(&after, "tollgate_db_pool_connections")
    );
    assert!(value(&after, "tollgate_signing_key_age_seconds") >= age_before + 1_000.0);
    // The in-memory view: forgotten whole once, when its change feed first connected, and
    // its lookups counted; it may have been asked before that feed's first round.
    assert!(value(&after, "tollgate_cache_resyncs_total") >= 1.0);
    assert!(
        value(&after, "tollgate_cache_stale_lookups_total")
            >= value(&before, "tollgate_cache_stale_lookups_total")
    );

    // The API listener does not serve the metrics, and the metrics listener nothing else.
    let (status, _) = app.get_json("/metrics").await;
    assert_eq!(status, 404);
    let base = app.metrics.as_ref().unwrap();
    let other = reqwest::get(format!("{base}/oauth/token")).await.unwrap();
    assert_eq!(other.status(), 404);
    let posted = reqwest::Client::new()
        .post(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);
}

async fn metrics_are_off_unless_configured(backend: Backend) {
    let app = spawn_app(backend).await;
    assert!(app.metrics.is_none());
    let (status, body) = app.get_json("/metrics").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

async fn request_ids_are_kept_when_plain_and_generated_otherwise(backend: Backend) {
    let app = spawn_app(backend).await;
    let get = |path: &'static str, id: Option<String>| {
        let app = &app;
        async move {
            let mut request = app.http.get(app.url(path));
            if let Some(id) = id {
                request = request.header("x-request-id", id);
            }
            let response = request.send().await.unwrap();
            let header = response
                .headers()
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                response.status().as_u16(),
                header.expect("X-Request-Id on every answer"),
            )
        }
    };
    // Kept: a proxy's id follows the request, on successes and on errors alike.
    let plain = "req-7f3a:2026/1=ok@edge.1".to_owned();
    assert_eq!(
        get("/health/live", Some(plain.clone())).await,
        (200, plain.clone())
    );
    assert_eq!(
        get("/nowhere", Some(plain.clone())).await,
        (404, plain.clone())
    );
    // Generated when absent, new each time.
    let (_, first) = get("/health/live", None).await;
    let (_, second) = get("/health/live", None).await;
    assert_ne!(first, second);
    assert!(first.len() >= 16 && first.chars().all(|c| c.is_ascii_alphanumeric()));
    // Replaced when too long or holding anything but the safe characters.
    for bad in [
        "a".repeat(129),
        "two words".into(),
        "x\"y".into(),
        "a;b".into(),
    ] {
        let (_, got) = get("/health/live", Some(bad.clone())).await;
        assert_ne!(got, bad);
        assert!(got.chars().all(|c| c.is_ascii_alphanumeric()), "{got}");
    }
    // On the OAuth endpoints too.
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("x-request-id", "tok-1")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-request-id"], "tok-1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}
