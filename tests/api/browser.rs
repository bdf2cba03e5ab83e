//! The console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), along the paths people take: invite → password → keys; create a key and use
//! it; approve an app by its pairing code; authorize an app in the browser (MiAuth).
//! Every page visited is saved as a screenshot under `target/console-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (Debian; `.ci/run` installs them). Without them the
//! test says so and passes, unless `TOLLGATE_REQUIRE_BROWSER=1` (set by `.ci/run`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::console::{PASSWORD, account_with_invite};
use crate::helpers::{Backend, TestApp, spawn_app};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Option<Driver> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "TOLLGATE_REQUIRE_BROWSER=1 but {CHROMEDRIVER} or {CHROMIUM} is missing"
        );
        eprintln!("skipping the browser test: install chromium and chromium-driver");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start on port {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=en-US"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    // Finding an element waits for it to appear (pages load after a click returns).
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            None,
            None,
            Some(Duration::from_secs(10)),
        ))
        .await
        .unwrap();
    client
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves what the browser shows now as `NN-name.png`.
async fn snap(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn fill(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn path_of(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

/// Waits (up to 10 s) until the browser shows `path`: a click on a submit button returns
/// before the form's answer has arrived.
async fn wait_for_path(client: &Client, path: &str) {
    for _ in 0..200 {
        if path_of(client).await == path {
            // The URL changes when the answer starts; let the document finish.
            client.find(Locator::Css("main")).await.unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the browser did not reach {path}; it shows {}",
        path_of(client).await
    );
}

async fn me(app: &TestApp, key: &str) -> u16 {
    app.http
        .get(app.url("/api/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_person_uses_the_console_in_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let client = browser(&driver).await;
    let outcome = person_path(&app, &client).await;
    client.close().await.unwrap();
    outcome
}

async fn person_path(app: &TestApp, client: &Client) {
    // The invite link, as the operator hands it over.
    let link = account_with_invite(app, "ana", "read write", &[]);
    client.goto(&app.url("/console/")).await.unwrap();
    assert_eq!(path_of(client).await, "/console/sign-in");
    snap(client, "01-sign-in").await;

    client.goto(&app.url(&link)).await.unwrap();
    snap(client, "02-invite").await;
    fill(client, "password", "short").await;
    fill(client, "confirm", "short").await;
    // The browser's own minlength check stops a too-short password before it is sent;
    // the server's check is covered in console.rs. Use a good one.
    fill(client, "password", PASSWORD).await;
    fill(client, "confirm", PASSWORD).await;
    click(client, "form button[type=submit]").await;
    wait_for_path(client, "/console/keys").await;
    snap(client, "03-keys-empty").await;

    // Create a key: shown once, with a Copy button (the script is allowed by the CSP).
    fill(client, "name", "deploy script").await;
    client
        .find(Locator::Css("input[name=scope][value=write]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(client, "expires_in_days", "90").await;
    click(client, "form[action='/console/keys'] button[type=submit]").await;
    let shown = client.find(Locator::Id("new-key")).await.unwrap();
    let key = shown.prop("value").await.unwrap().unwrap();
    assert!(key.starts_with("tg_"));
    let copy = client.find(Locator::Css("[data-copy]")).await.unwrap();
    assert!(
        copy.is_displayed().await.unwrap(),
        "the script showed the Copy button"
    );
    snap(client, "04-key-created").await;
    assert_eq!(me(app, &key).await, 200);
    let me_body: serde_json::Value = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me_body["scopes"], json!(["read"]), "{me_body}");

    click(client, "a.button").await;
    client.find(Locator::Id("name")).await.unwrap();
    let listed = client.source().await.unwrap();
    assert!(listed.contains("deploy script"), "the new key is listed");
    snap(client, "05-keys-list").await;

    // An app asks to pair; the code on the page redeems it.
    let asked: serde_json::Value = app
        .http
        .post(app.url("/v1/auth/challenges"))
        .json(&json!({"app_name": "Photo Sync", "account": "ana", "scopes": ["read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client.goto(&app.url("/console/apps")).await.unwrap();
    let code = client
        .find(Locator::Css(".code-big"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    snap(client, "06-app-requests").await;
    let redeemed = app
        .http
        .post(app.url("/v1/auth/api_keys"))
        .json(&json!({"challenge_id": asked["challenge_id"], "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), 201);

    // An app that can open a browser: MiAuth.
    let session = "3d1b7c2e-5f4a-4b6c-9d8e-7f6a5b4c3d2e";
    client
        .goto(&app.url(&format!(
            "/console/authorize-app?session={session}&name=Note%20Taker&permission=read"
        )))
        .await
        .unwrap();
    snap(client, "07-authorize-app").await;
    click(client, "form input[value=approve] ~ button").await;
    client.find(Locator::Css("main .notice.ok")).await.unwrap();
    snap(client, "08-app-approved").await;
    let checked: serde_json::Value = app
        .http
        .post(app.url(&format!("/api/v1/app-sessions/{session}/check")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(checked["ok"], true, "{checked}");

    // Revoke the first key through its confirmation page.
    client.goto(&app.url("/console/keys")).await.unwrap();
    client
        .find(Locator::XPath(
            "//tr[td[contains(., 'deploy script')]]//a[contains(@href, '/revoke')]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    snap(client, "09-revoke-confirm").await;
    click(client, "form button.danger").await;
    wait_for_path(client, "/console/keys").await;
    assert!(client.source().await.unwrap().contains("Key revoked"));
    assert_eq!(me(app, &key).await, 401);
    snap(client, "10-key-revoked").await;

    client.goto(&app.url("/console/account")).await.unwrap();
    snap(client, "11-account").await;

    // Phone-sized: the same page, readable without sideways scrolling.
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&app.url("/console/keys")).await.unwrap();
    let overflow = client
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    snap(client, "12-keys-phone").await;
    assert_eq!(overflow, json!(false), "no horizontal scrolling on a phone");
}

#[tokio::test]
async fn an_operator_creates_a_client_in_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await;
    let client = browser(&driver).await;
    let outcome = operator_path(&app, &client).await;
    client.close().await.unwrap();
    outcome
}

async fn operator_path(app: &TestApp, client: &Client) {
    let link = account_with_invite(app, "olga", "read", &["--operator"]);
    client.goto(&app.url(&link)).await.unwrap();
    snap(client, "18-operator-invite").await;
    fill(client, "password", PASSWORD).await;
    fill(client, "confirm", PASSWORD).await;
    click(client, "form button[type=submit]").await;
    wait_for_path(client, "/console/keys").await;
    snap(client, "19-operator-keys").await;

    client
        .goto(&app.url("/console/operator/clients"))
        .await
        .unwrap();
    snap(client, "20-operator-clients").await;
    fill(client, "name", "billing service").await;
    fill(client, "scopes", "read write").await;
    click(
        client,
        "form[action='/console/operator/clients'] button[type=submit]",
    )
    .await;
    let id = client
        .find(Locator::Id("client-id"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    let secret = client
        .find(Locator::Id("client-secret"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    snap(client, "21-operator-client-secret").await;

    // The new client gets a token at once.
    let token = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);

    client
        .goto(&app.url("/console/operator/signing-keys"))
        .await
        .unwrap();
    snap(client, "22-operator-signing-keys").await;
    client
        .goto(&app.url("/console/operator/accounts"))
        .await
        .unwrap();
    snap(client, "23-operator-accounts").await;
    client
        .goto(&app.url("/console/operator/audit"))
        .await
        .unwrap();
    let audit = client.source().await.unwrap();
    assert!(audit.contains("client.created") && audit.contains("console:olga"));
    snap(client, "24-operator-audit").await;
}
