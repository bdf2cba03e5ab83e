//! The web console over HTTP, as a browser without JavaScript uses it: invite links,
//! passwords, sessions, CSRF, the API keys page. (The real-browser test is `browser.rs`.)

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app, stderr, stdout};

/// A browser: keeps cookies, does not follow redirects (tests look at them).
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The first `csrf` hidden field of the page.
    pub fn csrf(&self) -> String {
        field_value(&self.body, "csrf").expect("the page has a CSRF field")
    }

    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The `value` of the first input named `name`.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The API key a "key created" page shows once.
pub fn shown_key(html: &str) -> String {
    let start = html.find("value=\"tg_").expect("the page shows a key") + 7;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.address.clone(),
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::page(
            self.http
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Opens an invite link and sets the password: signed in afterwards.
    pub async fn accept_invite(&self, link_path: &str, password: &str) -> Page {
        let form = self.get(link_path).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            link_path,
            &[
                ("csrf", &csrf),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await
    }

    pub async fn sign_in(&self, handle: &str, password: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let csrf = form.csrf();
        self.post(
            "/console/sign-in",
            &[("csrf", &csrf), ("handle", handle), ("password", password)],
        )
        .await
    }

    /// Creates a key on the keys page; returns the key shown once.
    pub async fn create_key(&self, name: &str, scopes: &[&str]) -> String {
        let keys = self.get("/console/keys").await;
        assert_eq!(keys.status, StatusCode::OK);
        let csrf = keys.csrf();
        let mut form = vec![("csrf", csrf.as_str()), ("name", name)];
        form.extend(scopes.iter().map(|s| ("scope", *s)));
        let created = self.post("/console/keys", &form).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.body);
        assert!(created.body.contains("will not be shown again"));
        shown_key(&created.body)
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// An account made with the CLI, and the path of its invite link.
pub fn account_with_invite(app: &TestApp, handle: &str, scope: &str, extra: &[&str]) -> String {
    let mut args = vec!["account", "create", "--handle", handle, "--scope", scope];
    args.extend_from_slice(extra);
    let created = app.cli(&args);
    assert!(created.status.success(), "{}", stderr(&created));
    invite_path(app, handle)
}

pub fn invite_path(app: &TestApp, handle: &str) -> String {
    let link = app.cli_json(&["account", "invite", handle, "--json"]);
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/console/invite/").unwrap()..];
    path.to_owned()
}

/// A signed-in person with the given scopes.
pub async fn signed_in(app: &TestApp, handle: &str, scope: &str) -> Browser {
    let link = account_with_invite(app, handle, scope, &[]);
    let browser = Browser::new(app);
    let accepted = browser.accept_invite(&link, PASSWORD).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    browser
}

async fn me_status(app: &TestApp, key: &str) -> u16 {
    app.http
        .get(app.url("/api/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both_backends!(
    invite_sign_in_create_use_and_revoke_a_key,
    invite_links_work_once_and_expire,
    weak_passwords_are_refused_next_to_the_field,
    forged_forms_change_nothing,
    sign_in_gives_one_answer_and_blocks_after_failures,
    sessions_end_on_sign_out_idle_and_absolute_timeouts,
    disabling_an_account_signs_it_out_at_once,
    regenerate_replaces_the_secret_and_revokes_the_old_key,
    a_person_cannot_touch_another_accounts_keys,
);

async fn invite_sign_in_create_use_and_revoke_a_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let link = account_with_invite(&app, "ana", "read write", &[]);
    let browser = Browser::new(&app);

    // Signed out: pages send the browser to sign in, and back afterwards.
    let keys = browser.get("/console/keys").await;
    assert_eq!(keys.status, StatusCode::SEE_OTHER);
    assert_eq!(keys.location(), "/console/sign-in?next=%2Fconsole%2Fkeys");

    let accepted = browser.accept_invite(&link, PASSWORD).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    assert_eq!(accepted.location(), "/console/keys");
    let cookie = accepted.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tollgate_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "http issuer: no Secure flag");

    // Sign out, then in again with the chosen password.
    let keys = browser.get("/console/keys").await;
    assert!(keys.body.contains("No keys yet"));
    let out = browser
        .post("/console/sign-out", &[("csrf", &keys.csrf())])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        browser.get("/console/keys").await.status,
        StatusCode::SEE_OTHER
    );
    let signed_in = browser.sign_in("ANA", PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/console/keys");

    let key = browser.create_key("deploy script", &["read"]).await;
    assert_eq!(me_status(&app, &key).await, 200);
    let listed = browser.get("/console/keys").await;
    assert!(listed.body.contains("deploy script"));
    assert!(listed.body.contains("never"), "unused key says never used");
    assert!(!listed.body.contains(&key), "the list never shows the key");
    let key_id = app.cli_json(&["api-key", "list", "--account", "ana", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Revoke: a confirmation page, then the key stops working at once.
    let confirm = browser.get(&format!("/console/keys/{key_id}/revoke")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("stops working at once"));
    let revoked = browser
        .post(
            &format!("/console/keys/{key_id}/revoke"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(me_status(&app, &key).await, 401);
    let listed = browser.get(revoked.location()).await;
    assert!(listed.body.contains("Key revoked"));
    assert!(listed.body.contains("badge revoked"));

    // Delete for good.
    let confirm = browser.get(&format!("/console/keys/{key_id}/delete")).await;
    assert!(confirm.body.contains("cannot be undone"));
    browser
        .post(
            &format!("/console/keys/{key_id}/delete"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert!(
        browser
            .get("/console/keys")
            .await
            .body
            .contains("No keys yet")
    );

    let audit = app.cli_json(&["audit", "--account", "ana", "--json"]);
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    for action in [
        "api_key.created",
        "api_key.revoked",
        "api_key.deleted",
        "console.signed_in",
    ] {
        assert!(
            actions.contains(&(action, "console:ana")),
            "{action} by console:ana in {actions:?}"
        );
    }
}

async fn invite_links_work_once_and_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = account_with_invite(&app, "ben", "read", &[]);
    let second = invite_path(&app, "ben");
    let browser = Browser::new(&app);
    // A newer link replaces the older one.
    assert_eq!(browser.get(&first).await.status, StatusCode::NOT_FOUND);
    let accepted = browser.accept_invite(&second, PASSWORD).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    // Used once: gone.
    let again = Browser::new(&app).get(&second).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.body.contains("This link does not work"));

    // A fresh link (also a password reset) expires after console.invite_valid_hours.
    let reset = invite_path(&app, "ben");
    app.clock.advance(7 * 24 * 3600 + 1);
    assert_eq!(
        Browser::new(&app).get(&reset).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        Browser::new(&app)
            .get("/console/invite/not-a-token")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn weak_passwords_are_refused_next_to_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let link = account_with_invite(&app, "carla.developer", "read", &[]);
    let browser = Browser::new(&app);
    for (password, confirm, why) in [
        ("short", "short", "at least 12 characters"),
        (
            "Carla.Developer",
            "Carla.Developer",
            "must not be your handle",
        ),
        (PASSWORD, "something else entirely", "differ"),
    ] {
        let form = browser.get(&link).await;
        let refused = browser
            .post(
                &link,
                &[
                    ("csrf", &form.csrf()),
                    ("password", password),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}"
        );
        assert!(refused.body.contains(why), "{why}: {}", refused.body);
        assert!(refused.body.contains("aria-invalid=\"true\""));
    }
    // None of them used the link up.
    assert_eq!(
        browser.accept_invite(&link, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn forged_forms_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = signed_in(&app, "dora", "read").await;
    let csrf = browser.get("/console/keys").await.csrf();

    let wrong_token = browser
        .post(
            "/console/keys",
            &[("csrf", "forged"), ("name", "x"), ("scope", "read")],
        )
        .await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
    assert!(wrong_token.body.contains("nothing was changed"));

    // The right token from another site's page is refused too.
    let cross_site = browser
        .http
        .post(format!("{}/console/keys", browser.base))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "x"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let fetch_cross_site = browser
        .http
        .post(format!("{}/console/keys", browser.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("name", "x"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(fetch_cross_site.status(), StatusCode::FORBIDDEN);

    // Sign-out and sign-in are forms too.
    assert_eq!(
        browser
            .post("/console/sign-out", &[("csrf", "forged")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let stranger = Browser::new(&app);
    let login_csrf = stranger.post(
        "/console/sign-in",
        &[
            ("csrf", "no-cookie"),
            ("handle", "dora"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(login_csrf.await.status, StatusCode::FORBIDDEN);

    // Same origin with the right token works, and nothing was created before it.
    let same_origin = browser
        .http
        .post(format!("{}/console/keys", browser.base))
        .header("origin", browser.base.as_str())
        .form(&[("csrf", csrf.as_str()), ("name", "real"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), StatusCode::OK);
    let keys = app.cli_json(&["api-key", "list", "--account", "dora", "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["name"], "real");
}

async fn sign_in_gives_one_answer_and_blocks_after_failures(backend: Backend) {
    let app = spawn_app(backend).await;
    let _person = signed_in(&app, "eve", "read").await;
    let created = app.cli(&["account", "create", "--handle", "nopass", "--scope", "read"]);
    assert!(created.status.success());
    app.cli(&["account", "create", "--handle", "off", "--scope", "read"]);

    let browser = Browser::new(&app);
    let wrong = browser.sign_in("eve", "not the password at all").await;
    let unknown = browser.sign_in("nobody-here", PASSWORD).await;
    let no_password = browser.sign_in("nopass", PASSWORD).await;
    for page in [&wrong, &unknown, &no_password] {
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("That handle and password do not match."));
        assert!(
            page.headers
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().contains("tollgate_session"))
        );
    }

    // Four more failures (five in all) block the account, even for the right password...
    for _ in 0..4 {
        browser.sign_in("eve", "still not the password").await;
    }
    let blocked = browser.sign_in("eve", PASSWORD).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        blocked.body.contains("Too many failed sign-ins"),
        "{}",
        blocked.body
    );
    // ...until the block passes (30 s after the fifth failure).
    app.clock.advance(31);
    let after = browser.sign_in("eve", PASSWORD).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "{}", after.body);
}

async fn sessions_end_on_sign_out_idle_and_absolute_timeouts(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = signed_in(&app, "finn", "read").await;
    assert_eq!(browser.get("/console/keys").await.status, StatusCode::OK);

    // Idle for less than 30 minutes: still in; activity moves the idle deadline.
    for _ in 0..3 {
        app.clock.advance(25 * 60);
        assert_eq!(browser.get("/console/keys").await.status, StatusCode::OK);
    }
    // Idle for 30 minutes: out.
    app.clock.advance(30 * 60);
    assert_eq!(
        browser.get("/console/keys").await.status,
        StatusCode::SEE_OTHER
    );

    // However active, 12 hours after sign-in the session ends.
    let active = Browser::new(&app);
    assert_eq!(
        active.sign_in("finn", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    for _ in 0..(12 * 60 / 20) {
        app.clock.advance(20 * 60);
        if active.get("/console/keys").await.status != StatusCode::OK {
            break;
        }
    }
    assert_eq!(
        active.get("/console/keys").await.status,
        StatusCode::SEE_OTHER
    );

    // Sign-out ends the session on the server, not only in the browser: the old cookie
    // value no longer works.
    let person = Browser::new(&app);
    let signed_in = person.sign_in("finn", PASSWORD).await;
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap().to_owned();
    let value = cookie.split(';').next().unwrap().to_owned();
    let csrf = person.get("/console/keys").await.csrf();
    person.post("/console/sign-out", &[("csrf", &csrf)]).await;
    let replayed = app
        .http
        .get(app.url("/console/keys"))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
}

async fn disabling_an_account_signs_it_out_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = signed_in(&app, "gus", "read").await;
    assert_eq!(browser.get("/console/keys").await.status, StatusCode::OK);
    let disabled = app.cli(&["account", "disable", "gus"]);
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    assert_eq!(
        browser.get("/console/keys").await.status,
        StatusCode::SEE_OTHER
    );
    // And cannot sign in again while disabled.
    assert_eq!(
        Browser::new(&app).sign_in("gus", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    app.cli(&["account", "enable", "gus"]);
    assert_eq!(
        Browser::new(&app).sign_in("gus", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn regenerate_replaces_the_secret_and_revokes_the_old_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = signed_in(&app, "hal", "read write").await;
    let keys = browser.get("/console/keys").await;
    let csrf = keys.csrf();
    let created = browser
        .post(
            "/console/keys",
            &[
                ("csrf", csrf.as_str()),
                ("name", "nightly"),
                ("scope", "read"),
                ("expires_in_days", "30"),
            ],
        )
        .await;
    let old_key = shown_key(&created.body);
    let listed = app.cli_json(&["api-key", "list", "--account", "hal", "--json"]);
    let old_id = listed[0]["id"].as_str().unwrap().to_owned();

    let confirm = browser
        .get(&format!("/console/keys/{old_id}/regenerate"))
        .await;
    assert!(confirm.body.contains("same name, scopes and lifetime"));
    let regenerated = browser
        .post(
            &format!("/console/keys/{old_id}/regenerate"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(regenerated.status, StatusCode::OK);
    let new_key = shown_key(&regenerated.body);
    assert_ne!(new_key, old_key);
    assert_eq!(me_status(&app, &old_key).await, 401);
    assert_eq!(me_status(&app, &new_key).await, 200);

    let listed = app.cli_json(&["api-key", "list", "--account", "hal", "--json"]);
    let fresh = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "active")
        .unwrap();
    assert_eq!(fresh["name"], "nightly");
    assert_eq!(fresh["scopes"], serde_json::json!(["read"]));
    assert!(fresh["expires_at"].is_string(), "keeps a 30-day lifetime");
    // A revoked key cannot be regenerated.
    let again = browser
        .post(
            &format!("/console/keys/{old_id}/regenerate"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

async fn a_person_cannot_touch_another_accounts_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let ivy = signed_in(&app, "ivy", "read").await;
    let _jon = signed_in(&app, "jon", "read").await;
    let jon_key = app.cli(&[
        "api-key",
        "create",
        "--account",
        "jon",
        "--name",
        "x",
        "--json",
    ]);
    assert!(jon_key.status.success(), "{}", stderr(&jon_key));
    let jon_key: serde_json::Value = serde_json::from_str(&stdout(&jon_key)).unwrap();
    let id = jon_key["id"].as_str().unwrap();
    let csrf = ivy.get("/console/keys").await.csrf();
    for action in ["revoke", "delete", "regenerate"] {
        let path = format!("/console/keys/{id}/{action}");
        assert_eq!(ivy.get(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            ivy.post(&path, &[("csrf", &csrf)]).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        me_status(&app, jon_key["api_key"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let browser = signed_in(&app, "kim", "read").await;
    let keys = browser.get("/console/keys").await;
    let css_path = {
        let start = keys.body.find("/console/static/console.").unwrap();
        let end = keys.body[start..].find('"').unwrap() + start;
        keys.body[start..end].to_owned()
    };
    let anonymous = Browser::new(&app);
    let pages = [
        browser.get("/console/keys").await,
        browser.get("/console/").await,
        browser.get("/console/no-such-page").await,
        browser.get(&css_path).await,
        browser.post("/console/keys", &[("csrf", "forged")]).await,
        anonymous.get("/console/sign-in").await,
        anonymous.get("/console/keys").await,
        anonymous.get("/console/invite/nope").await,
    ];
    for page in &pages {
        let header = |name: &str| {
            page.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
    }
    // Pages are private; versioned assets are cached forever.
    assert_eq!(pages[0].headers["cache-control"], "no-store");
    assert!(
        pages[3].headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(!pages[0].body.contains("<script>"), "no inline script");
    assert!(!pages[0].body.contains("style="), "no inline style");
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, "[console]\nenabled = false\n").await;
    let response = app
        .http
        .get(app.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

/// The current code of the authenticator app holding `secret` (base32), at the app's time.
fn totp_code(app: &TestApp, secret: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).build().unwrap();
    totp.generate(u64::try_from(app.clock.now()).unwrap())
        .to_string()
}

both_backends!(second_factor_totp_and_recovery_codes);

async fn second_factor_totp_and_recovery_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = signed_in(&app, "lea", "read").await;
    let setup = browser.get("/console/account/second-factor").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.body.contains("data:image/svg+xml;base64,"), "QR code");
    let secret = {
        let start = setup.body.find("id=\"totp-secret\" value=\"").unwrap() + 24;
        let end = setup.body[start..].find('"').unwrap() + start;
        setup.body[start..end].to_owned()
    };
    // A wrong first code leaves it off.
    let wrong = browser
        .post(
            "/console/account/second-factor",
            &[("csrf", &setup.csrf()), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let on = browser
        .post(
            "/console/account/second-factor",
            &[("csrf", &setup.csrf()), ("code", &totp_code(&app, &secret))],
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert!(on.body.contains("will not be shown again"));
    let recovery: Vec<String> = {
        let start = on.body.find("class=\"mono\">").unwrap() + 13;
        let end = on.body[start..].find("</textarea>").unwrap() + start;
        on.body[start..end].lines().map(str::to_owned).collect()
    };
    assert_eq!(recovery.len(), 10);

    // Signing in now takes a code; until then no page is open.
    let again = Browser::new(&app);
    let first_step = again.sign_in("lea", PASSWORD).await;
    assert_eq!(first_step.location(), "/console/sign-in/second-factor");
    assert_eq!(
        again.get("/console/keys").await.location(),
        "/console/sign-in/second-factor"
    );
    let step = again.get("/console/sign-in/second-factor").await;
    // The code used to turn it on is spent: the same code again is refused (RFC 6238 §5.2).
    let replay = again
        .post(
            "/console/sign-in/second-factor",
            &[("csrf", &step.csrf()), ("code", &totp_code(&app, &secret))],
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.clock.advance(30);
    let done = again
        .post(
            "/console/sign-in/second-factor",
            &[("csrf", &step.csrf()), ("code", &totp_code(&app, &secret))],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(again.get("/console/keys").await.status, StatusCode::OK);

    // A recovery code works once instead of the app's code.
    let lost_phone = Browser::new(&app);
    lost_phone.sign_in("lea", PASSWORD).await;
    let step = lost_phone.get("/console/sign-in/second-factor").await;
    let used = lost_phone
        .post(
            "/console/sign-in/second-factor",
            &[("csrf", &step.csrf()), ("code", &recovery[0])],
        )
        .await;
    assert_eq!(used.status, StatusCode::SEE_OTHER);
    let twice = Browser::new(&app);
    twice.sign_in("lea", PASSWORD).await;
    let step = twice.get("/console/sign-in/second-factor").await;
    let reused = twice
        .post(
            "/console/sign-in/second-factor",
            &[("csrf", &step.csrf()), ("code", &recovery[0])],
        )
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Guessing codes meets the sign-in block.
    for _ in 0..4 {
        twice
            .post(
                "/console/sign-in/second-factor",
                &[("csrf", &step.csrf()), ("code", "123456")],
            )
            .await;
    }
    assert_eq!(
        twice.get("/console/keys").await.location(),
        "/console/sign-in?next=%2Fconsole%2Fkeys",
        "blocked: the half-signed-in session ended"
    );

    // Off again, with a current code.
    app.clock.advance(60);
    let account = browser.get("/console/account").await;
    assert!(account.body.contains("9 recovery codes left"));
    let off = browser
        .post(
            "/console/account/second-factor/disable",
            &[
                ("csrf", &account.csrf()),
                ("code", &totp_code(&app, &secret)),
            ],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    app.clock.advance(15 * 60);
    assert_eq!(
        Browser::new(&app).sign_in("lea", PASSWORD).await.location(),
        "/console/keys"
    );
}

both_backends!(account_page_changes_password_and_ends_other_sessions);

async fn account_page_changes_password_and_ends_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let laptop = signed_in(&app, "max", "read").await;
    let phone = Browser::new(&app);
    phone.sign_in("max", PASSWORD).await;
    let account = laptop.get("/console/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert_eq!(
        account.body.matches("/end\"").count(),
        1,
        "one other session"
    );
    assert!(
        account.body.contains("console.signed_in"),
        "own audit events"
    );

    let wrong_current = laptop
        .post(
            "/console/account/password",
            &[
                ("csrf", &account.csrf()),
                ("current", "not it at all"),
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong_current.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong_current.body.contains("current password is not right"));
    let changed = laptop
        .post(
            "/console/account/password",
            &[
                ("csrf", &account.csrf()),
                ("current", PASSWORD),
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER);
    assert_eq!(laptop.get("/console/keys").await.status, StatusCode::OK);
    assert_eq!(
        phone.get("/console/keys").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        Browser::new(&app).sign_in("max", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("max", "a brand new passphrase")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // Ending one other session from the list.
    let account = laptop.get("/console/account").await;
    let start = account.body.find("/console/account/sessions/").unwrap();
    let end = account.body[start..].find('"').unwrap() + start;
    let ended = laptop
        .post(&account.body[start..end], &[("csrf", &account.csrf())])
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    let others = laptop.get("/console/account").await;
    assert_eq!(others.body.matches("/end\"").count(), 0);
}

async fn post_json(app: &TestApp, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

both_backends!(
    the_app_requests_page_shows_codes_that_redeem_and_denies,
    apps_authorized_in_the_browser_collect_their_key_once,
);

async fn the_app_requests_page_shows_codes_that_redeem_and_denies(backend: Backend) {
    let app = spawn_app(backend).await;
    let browser = signed_in(&app, "nia", "read write").await;
    assert!(
        browser
            .get("/console/apps")
            .await
            .body
            .contains("No app is asking")
    );

    let (status, asked) = post_json(
        &app,
        "/v1/auth/challenges",
        serde_json::json!({"app_name": "Photo Sync", "account": "nia", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201, "{asked}");
    let challenge = asked["challenge_id"].as_str().unwrap().to_owned();
    let apps = browser.get("/console/apps").await;
    assert!(apps.body.contains("Photo Sync"));
    assert!(
        apps.body.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    let code = {
        let start = apps.body.find("class=\"code-big\"").unwrap();
        let start = apps.body[start..].find('>').unwrap() + start + 1;
        apps.body[start..start + 4].to_owned()
    };
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    let (status, redeemed) = post_json(
        &app,
        "/v1/auth/api_keys",
        serde_json::json!({"challenge_id": challenge, "code": code}),
    )
    .await;
    assert_eq!(status, 201, "{redeemed}");
    assert_eq!(
        me_status(&app, redeemed["api_key"].as_str().unwrap()).await,
        200
    );
    assert!(
        browser
            .get("/console/apps")
            .await
            .body
            .contains("No app is asking")
    );

    // Deny another request: its code stops working.
    let (_, asked) = post_json(
        &app,
        "/v1/auth/challenges",
        serde_json::json!({"app_name": "Bad App", "account": "nia", "scopes": ["write"]}),
    )
    .await;
    let challenge = asked["challenge_id"].as_str().unwrap().to_owned();
    let apps = browser.get("/console/apps").await;
    let denied = browser
        .post(
            &format!("/console/apps/{challenge}/deny"),
            &[("csrf", &apps.csrf())],
        )
        .await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    let (status, _) = post_json(
        &app,
        "/v1/auth/api_keys",
        serde_json::json!({"challenge_id": challenge, "code": "0000"}),
    )
    .await;
    assert_eq!(status, 400);
    let audit = app.cli_json(&["audit", "--account", "nia", "--json"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "challenge.denied" && e["actor"] == "console:nia")
    );
}

async fn apps_authorized_in_the_browser_collect_their_key_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let session = "0f8e4b6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    let check = |session: &'static str| {
        let app = &app;
        async move {
            post_json(
                app,
                &format!("/api/v1/app-sessions/{session}/check"),
                serde_json::json!({}),
            )
            .await
        }
    };
    let authorize = format!(
        "/console/authorize-app?session={session}&name=Note%20Taker&permission=read,write,delete&callback=https%3A%2F%2Fnotes.example%2Fdone"
    );

    // Signed out: sign in first, then back to the request.
    let link = account_with_invite(&app, "ola", "read write", &[]);
    let browser = Browser::new(&app);
    let asked = browser.get(&authorize).await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    let next = asked.location().to_owned();
    assert!(
        next.starts_with("/console/sign-in?next=%2Fconsole%2Fauthorize-app"),
        "{next}"
    );
    browser.accept_invite(&link, PASSWORD).await;
    assert_eq!(
        check(session).await,
        (200, serde_json::json!({"ok": false}))
    );

    let page = browser.get(&authorize).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Note Taker"));
    assert!(page.body.contains("notes.example"));
    assert!(
        page.body.contains("Not granted"),
        "delete is not the account's"
    );
    let approved = browser
        .post(
            "/console/authorize-app",
            &[
                ("csrf", &page.csrf()),
                ("session", session),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK);
    assert!(
        approved
            .body
            .contains(&format!("https://notes.example/done?session={session}")),
        "{}",
        approved.body
    );

    let (status, granted) = check(session).await;
    assert_eq!(status, 200);
    assert_eq!(granted["ok"], true, "{granted}");
    assert_eq!(granted["account"]["handle"], "ola");
    let key = granted["api_key"].as_str().unwrap();
    assert_eq!(me_status(&app, key).await, 200);
    assert_eq!(
        granted["key"]["scopes"],
        serde_json::json!(["read", "write"])
    );
    // Once only; the session id cannot be reused for another authorization.
    assert_eq!(
        check(session).await,
        (200, serde_json::json!({"ok": false}))
    );
    assert_eq!(
        browser.get(&authorize).await.status,
        StatusCode::BAD_REQUEST
    );

    // Denied: nothing to collect.
    let denied_session = "11111111-2222-4333-8444-555555555555";
    let ask = format!("/console/authorize-app?session={denied_session}&name=Spy&permission=read");
    let page = browser.get(&ask).await;
    browser
        .post(
            "/console/authorize-app",
            &[
                ("csrf", &page.csrf()),
                ("session", denied_session),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(check(denied_session).await.1["ok"], false);

    // Expired: approved too late to collect.
    let late_session = "99999999-2222-4333-8444-555555555555";
    let ask = format!("/console/authorize-app?session={late_session}&name=Slow&permission=read");
    let page = browser.get(&ask).await;
    browser
        .post(
            "/console/authorize-app",
            &[
                ("csrf", &page.csrf()),
                ("session", late_session),
                ("decision", "approve"),
            ],
        )
        .await;
    app.clock.advance(15 * 60 + 1);
    assert_eq!(check(late_session).await.1["ok"], false);

    // Bad requests are refused on the page, before anything is stored.
    for bad in [
        "/console/authorize-app?session=1&name=x&permission=read",
        "/console/authorize-app?session=22222222-2222-4333-8444-555555555555&name=x&permission=read&callback=javascript%3Aalert(1)",
        "/console/authorize-app?session=22222222-2222-4333-8444-555555555555&name=x&permission=admin",
    ] {
        assert_eq!(
            browser.get(bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

both_backends!(a_session_works_on_every_instance_and_ends_on_all);

async fn a_session_works_on_every_instance_and_ends_on_all(backend: Backend) {
    let db = crate::helpers::TestDb::new(backend);
    let a = crate::helpers::spawn_app_on(db.clone(), "").await;
    let b = crate::helpers::spawn_app_on(db.clone(), "").await;
    let on_a = signed_in(&a, "pia", "read").await;
    // The same browser (cookies are per host, not per port) on the other instance.
    let on_b = Browser {
        http: on_a.http.clone(),
        base: b.address.clone(),
    };
    let keys = on_b.get("/console/keys").await;
    assert_eq!(keys.status, StatusCode::OK, "signed in on b too");
    // A key made on b is listed on a; signing out on b ends the session on a.
    on_b.create_key("made on b", &["read"]).await;
    assert!(on_a.get("/console/keys").await.body.contains("made on b"));
    let csrf = on_b.get("/console/keys").await.csrf();
    on_b.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(
        on_a.get("/console/keys").await.status,
        StatusCode::SEE_OTHER
    );
}
