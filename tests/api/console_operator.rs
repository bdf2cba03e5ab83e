//! The operators' pages of the web console (`/console/operator/…`), as a browser without
//! JavaScript uses them: clients, signing keys, accounts, the audit trail; who may see
//! them; CSRF; and the audit events they write (actor `console:<handle>`).

use reqwest::StatusCode;
use serde_json::Value;
use tollgate::service::audit::{self, Actor, Event};

use crate::both_backends;
use crate::console::{Browser, PASSWORD, Page, account_with_invite, signed_in};
use crate::helpers::{Backend, Client, TestApp, assert_oauth_error, jwt_payload, spawn_app};

/// An operator, signed in.
async fn operator(app: &TestApp, handle: &str) -> Browser {
    let link = account_with_invite(app, handle, "read", &["--operator"]);
    let browser = Browser::new(app);
    let accepted = browser.accept_invite(&link, PASSWORD).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    browser
}

/// The `value` of the input with this `id`.
fn value_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}

/// The first link whose target starts with `prefix` (HTML entities for `&` undone).
fn link_to(html: &str, prefix: &str) -> Option<String> {
    let html = html.replace("&#38;", "&").replace("&amp;", "&");
    let marker = format!("href=\"{prefix}");
    let start = html.find(&marker)? + 6;
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Creates a client on the clients page; the page that shows its secret once.
async fn create_client(browser: &Browser, form: &[(&str, &str)]) -> Page {
    let list = browser.get("/console/operator/clients").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let csrf = list.csrf();
    let mut full = vec![("csrf", csrf.as_str())];
    full.extend_from_slice(form);
    browser.post("/console/operator/clients", &full).await
}

fn shown_client(page: &Page) -> Client {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("will not be shown again"));
    Client {
        id: value_of(&page.body, "client-id"),
        secret: value_of(&page.body, "client-secret"),
    }
}

/// `client_secret_post`, as the brief of the console asks a fresh client to do.
async fn token_status(app: &TestApp, client: &Client) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Confirms an action: GETs its page (which must say `says`), POSTs its form.
async fn confirm(browser: &Browser, path: &str, says: &str, extra: &[(&str, &str)]) -> Page {
    let ask = browser.get(path).await;
    assert_eq!(ask.status, StatusCode::OK, "{}", ask.body);
    assert!(ask.body.contains(says), "{says:?} not in {}", ask.body);
    let csrf = ask.csrf();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(extra);
    browser.post(path, &form).await
}

/// The audit trail as the CLI prints it, newest first.
fn audit_events(app: &TestApp) -> Vec<Value> {
    app.cli_json(&["audit", "--limit", "1000", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

/// (action, actor) of the newest event.
fn last_event(app: &TestApp) -> (String, String) {
    let events = audit_events(app);
    (
        events[0]["action"].as_str().unwrap().to_owned(),
        events[0]["actor"].as_str().unwrap().to_owned(),
    )
}

both_backends!(
    operator_pages_refuse_non_operators_and_signed_out_visitors,
    an_operator_creates_and_edits_a_client_that_gets_tokens,
    client_secret_rotation_keeps_the_old_secret_for_the_grace,
    disable_revoke_tokens_and_delete_a_client,
    rotating_the_signing_key_reaches_jwks_and_new_tokens,
    accounts_create_invite_promote_demote_and_no_self_lockout,
    audit_trail_filters_and_pages_newest_first,
    operator_forms_without_the_csrf_token_change_nothing,
    admin_api_invites_and_sets_the_operator_flag,
);

const OPERATOR_PAGES: [&str; 8] = [
    "/console/operator/clients",
    "/console/operator/signing-keys",
    "/console/operator/signing-keys/rotate",
    "/console/operator/accounts",
    "/console/operator/accounts/olga/invite",
    "/console/operator/audit",
    "/console/operator/clients/some-id",
    "/console/operator/clients/some-id/delete",
];

async fn operator_pages_refuse_non_operators_and_signed_out_visitors(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;
    let nina = signed_in(&app, "nina", "read").await;
    let stranger = Browser::new(&app);

    for path in OPERATOR_PAGES {
        let signed_out = stranger.get(path).await;
        assert_eq!(signed_out.status, StatusCode::SEE_OTHER, "{path}");
        let next: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", path)
            .finish();
        assert_eq!(signed_out.location(), format!("/console/sign-in?{next}"));

        let refused = nina.get(path).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused.body.contains("Operators only"), "{}", refused.body);
    }
    // The navigation offers the operators' pages to operators only.
    assert!(
        !nina
            .get("/console/keys")
            .await
            .body
            .contains("/console/operator/clients")
    );
    let keys = olga.get("/console/keys").await;
    assert!(keys.body.contains("/console/operator/clients"));
    assert_eq!(
        olga.get("/console/operator/").await.location(),
        "/console/operator/clients"
    );

    // A person's own valid CSRF token does not make them an operator.
    let csrf = nina.get("/console/keys").await.csrf();
    let before = audit_events(&app).len();
    for (path, form) in [
        (
            "/console/operator/clients",
            vec![("csrf", csrf.as_str()), ("name", "sneaky")],
        ),
        (
            "/console/operator/signing-keys/rotate",
            vec![("csrf", csrf.as_str())],
        ),
        (
            "/console/operator/accounts/nina/promote",
            vec![("csrf", csrf.as_str())],
        ),
        (
            "/console/operator/accounts",
            vec![("csrf", csrf.as_str()), ("handle", "sneaky")],
        ),
    ] {
        assert_eq!(
            nina.post(path, &form).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(audit_events(&app).len(), before, "nothing changed");
    // Signed out, a POST goes to sign-in and changes nothing either.
    let post = stranger
        .post("/console/operator/clients", &[("csrf", "x"), ("name", "y")])
        .await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    assert_eq!(audit_events(&app).len(), before);
}

async fn an_operator_creates_and_edits_a_client_that_gets_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;

    // Errors stand next to the field they are about, and the form keeps what was typed.
    let wrong = create_client(
        &olga,
        &[
            ("name", "billing"),
            ("scopes", "read write"),
            ("audiences", "https://api.example/ has space"),
            ("token_ttl", "soon"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("id=\"ttl-error\""), "{}", wrong.body);
    assert!(wrong.body.contains("aria-invalid=\"true\""));
    assert!(wrong.body.contains("value=\"billing\""));
    let no_audience = create_client(
        &olga,
        &[("name", "billing"), ("audiences", "https://x/ and more")],
    )
    .await;
    assert_eq!(no_audience.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        no_audience.body.contains("id=\"audiences-error\""),
        "{}",
        no_audience.body
    );
    assert!(
        app.cli_json(&["client", "list", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let created = create_client(
        &olga,
        &[
            ("name", "billing"),
            ("scopes", "read write"),
            (
                "audiences",
                "https://api.example/\r\nhttps://other.example/",
            ),
            ("token_ttl", "600"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    let client = shown_client(&created);
    assert!(client.secret.len() > 40);
    assert!(created.body.contains("data-copy=\"client-secret\""));

    let (status, token) = token_status(&app, &client).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["expires_in"], 600);
    let claims = jwt_payload(token["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example/");

    let shown = app.cli_json(&["client", "show", &client.id, "--json"]);
    assert_eq!(shown["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(
        last_event(&app),
        ("client.created".into(), "console:olga".into())
    );

    // The list shows it; the secret appears nowhere but on the page after creation.
    let list = olga.get("/console/operator/clients").await;
    assert!(list.body.contains(&client.id) && list.body.contains("billing"));
    let detail = olga
        .get(&format!("/console/operator/clients/{}", client.id))
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    for page in [&list, &detail] {
        assert!(!page.body.contains(&client.secret));
    }

    // Edit: fewer scopes, a shorter lifetime, the default audience.
    let path = format!("/console/operator/clients/{}", client.id);
    let saved = olga
        .post(
            &path,
            &[
                ("csrf", &detail.csrf()),
                ("name", "billing v2"),
                ("scopes", "read"),
                ("audiences", ""),
                ("token_ttl", "300"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), format!("{path}?done=updated"));
    let after = olga.get(saved.location()).await;
    assert!(after.body.contains("Changes saved"));
    assert!(after.body.contains("billing v2"));
    let (_, token) = token_status(&app, &client).await;
    assert_eq!(token["expires_in"], 300);
    assert_eq!(token["scope"], "read");
    assert_eq!(
        last_event(&app),
        ("client.updated".into(), "console:olga".into())
    );

    // A bad edit changes nothing and says why, next to the field.
    let bad = olga
        .post(
            &path,
            &[
                ("csrf", &detail.csrf()),
                ("name", "billing v2"),
                ("scopes", "read"),
                ("token_ttl", "-5"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"ttl-error\""), "{}", bad.body);
    let (_, token) = token_status(&app, &client).await;
    assert_eq!(token["expires_in"], 300);
}

async fn client_secret_rotation_keeps_the_old_secret_for_the_grace(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;
    let old = shown_client(&create_client(&olga, &[("name", "worker"), ("scopes", "read")]).await);
    assert_eq!(token_status(&app, &old).await.0, 200);

    let path = format!("/console/operator/clients/{}/rotate-secret", old.id);
    let rotated = confirm(
        &olga,
        &path,
        "The old secret keeps working",
        &[("grace_seconds", "3600")],
    )
    .await;
    let new = shown_client(&rotated);
    assert_eq!(new.id, old.id);
    assert_ne!(new.secret, old.secret);
    assert!(rotated.body.contains("The old secret works until"));
    let event = &audit_events(&app)[0];
    assert_eq!(event["action"], "client.secret_rotated");
    assert_eq!(event["actor"], "console:olga");
    assert_eq!(event["details"]["grace_seconds"], 3600);

    // Both work during the grace; afterwards only the new one.
    assert_eq!(token_status(&app, &old).await.0, 200);
    assert_eq!(token_status(&app, &new).await.0, 200);
    app.clock.advance(3601);
    let (status, body) = token_status(&app, &old).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(token_status(&app, &new).await.0, 200);

    // A rotation without a grace stops the old secret at once; a missing grace is refused.
    let olga = Browser::new(&app);
    olga.sign_in("olga", PASSWORD).await;
    let no_grace = olga
        .post(&path, &[("csrf", &olga.get(&path).await.csrf())])
        .await;
    assert_eq!(no_grace.status, StatusCode::BAD_REQUEST);
    assert_eq!(token_status(&app, &new).await.0, 200);
    let newest = shown_client(&confirm(&olga, &path, "Rotate", &[("grace_seconds", "0")]).await);
    assert_eq!(token_status(&app, &new).await.0, 401);
    assert_eq!(token_status(&app, &newest).await.0, 200);
}

async fn disable_revoke_tokens_and_delete_a_client(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;
    let client =
        shown_client(&create_client(&olga, &[("name", "batch"), ("scopes", "read")]).await);
    let resource_server = app.create_client("rs", "introspect", &[]);
    let base = format!("/console/operator/clients/{}", client.id);

    // Revoke all tokens: issued tokens stop, new ones work.
    let (_, token) = token_status(&app, &client).await;
    let old_token = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.introspect_as(&resource_server, &old_token).await["active"],
        true
    );
    app.clock.advance(1);
    let revoked = confirm(
        &olga,
        &format!("{base}/revoke-tokens"),
        "stops working at once",
        &[],
    )
    .await;
    assert_eq!(revoked.location(), format!("{base}?done=tokens-revoked"));
    assert_eq!(
        app.introspect_as(&resource_server, &old_token).await["active"],
        false
    );
    assert_eq!(
        last_event(&app),
        ("client.tokens_revoked".into(), "console:olga".into())
    );
    app.clock.advance(1);
    assert_eq!(token_status(&app, &client).await.0, 200);

    // Disable: refused at the token endpoint; enable: back.
    let disabled = confirm(
        &olga,
        &format!("{base}/disable"),
        "gets no more tokens",
        &[],
    )
    .await;
    assert_eq!(disabled.location(), format!("{base}?done=disabled"));
    assert!(olga.get(&base).await.body.contains("badge disabled"));
    assert_oauth_error(
        app.token_request(Some(&client), &[("grant_type", "client_credentials")])
            .await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        last_event(&app),
        ("client.disabled".into(), "console:olga".into())
    );
    let enabled = confirm(
        &olga,
        &format!("{base}/enable"),
        "can get tokens again",
        &[],
    )
    .await;
    assert_eq!(enabled.location(), format!("{base}?done=enabled"));
    assert_eq!(token_status(&app, &client).await.0, 200);

    // Delete: says it cannot be undone; afterwards the client is gone.
    let deleted = confirm(&olga, &format!("{base}/delete"), "cannot be undone", &[]).await;
    assert_eq!(deleted.location(), "/console/operator/clients?done=deleted");
    assert!(
        olga.get(deleted.location())
            .await
            .body
            .contains("Client deleted")
    );
    assert_eq!(token_status(&app, &client).await.0, 401);
    assert_eq!(olga.get(&base).await.status, StatusCode::NOT_FOUND);
    assert!(!app.cli(&["client", "show", &client.id]).status.success());
    assert_eq!(
        last_event(&app),
        ("client.deleted".into(), "console:olga".into())
    );
    // Unknown actions and clients are 404s.
    assert_eq!(
        olga.get(&format!("{base}/explode")).await.status,
        StatusCode::NOT_FOUND
    );
}

fn key_in_state(app: &TestApp, state: &str) -> String {
    app.cli_json(&["signing-key", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == state)
        .unwrap_or_else(|| panic!("a {state} key"))["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn rotating_the_signing_key_reaches_jwks_and_new_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;
    let client = app.create_client("svc", "read", &[]);
    let before = key_in_state(&app, "active");

    let page = olga.get("/console/operator/signing-keys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&before));
    assert!(page.body.contains("badge active"));

    let rotated = confirm(
        &olga,
        "/console/operator/signing-keys/rotate",
        "the active key retires",
        &[],
    )
    .await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{}", rotated.body);
    assert_eq!(
        rotated.location(),
        "/console/operator/signing-keys?done=rotated"
    );
    let after = key_in_state(&app, "active");
    assert_ne!(after, before);

    // This server serves the new ring at once: JWKS has the new and the retired key, and
    // new tokens are signed with the new one.
    let kids: Vec<String> = app
        .jwks()
        .await
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert!(kids.contains(&after) && kids.contains(&before), "{kids:?}");
    let token = app.access_token(&client, &[]).await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
        Some(after.as_str())
    );
    let listed = olga.get(rotated.location()).await;
    assert!(listed.body.contains("Signing key rotated"));
    assert!(listed.body.contains("badge retired"));
    let event = &audit_events(&app)[0];
    assert_eq!(event["action"], "signing_key.rotated");
    assert_eq!(event["actor"], "console:olga");
    assert_eq!(event["subject_id"], after.as_str());
}

async fn accounts_create_invite_promote_demote_and_no_self_lockout(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;

    // Create: errors next to the field; then the account exists as asked.
    let list = olga.get("/console/operator/accounts").await;
    let csrf = list.csrf();
    let taken = olga
        .post(
            "/console/operator/accounts",
            &[("csrf", &csrf), ("handle", "olga"), ("scopes", "read")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body.contains("id=\"handle-error\""), "{}", taken.body);
    let bad = olga
        .post(
            "/console/operator/accounts",
            &[("csrf", &csrf), ("handle", "no spaces"), ("scopes", "read")],
        )
        .await;
    assert!(bad.body.contains("id=\"handle-error\""));
    let created = olga
        .post(
            "/console/operator/accounts",
            &[
                ("csrf", &csrf),
                ("handle", "Bob"),
                ("name", "Bob Builder"),
                ("scopes", "read write"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(
        created.location(),
        "/console/operator/accounts?done=created"
    );
    let bob_json = app.cli_json(&["account", "show", "bob", "--json"]);
    assert_eq!(bob_json["display_name"], "Bob Builder");
    assert_eq!(bob_json["operator"], false);
    assert_eq!(
        last_event(&app),
        ("account.created".into(), "console:olga".into())
    );

    // Invite link: shown once, works in another browser.
    let invited = confirm(
        &olga,
        "/console/operator/accounts/bob/invite",
        "one-time link",
        &[],
    )
    .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.body);
    assert!(invited.body.contains("will not be shown again"));
    let url = value_of(&invited.body, "invite-link");
    assert!(
        url.starts_with(&format!("{}/console/invite/", app.issuer)),
        "{url}"
    );
    assert_eq!(
        last_event(&app),
        ("account.invited".into(), "console:olga".into())
    );
    let bob = Browser::new(&app);
    let path = &url[url.find("/console/invite/").unwrap()..];
    assert_eq!(
        bob.accept_invite(path, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        bob.get("/console/operator/clients").await.status,
        StatusCode::FORBIDDEN
    );

    // Promote, demote: the operator pages follow at once.
    let promoted = confirm(
        &olga,
        "/console/operator/accounts/bob/promote",
        "Make bob",
        &[],
    )
    .await;
    assert_eq!(
        promoted.location(),
        "/console/operator/accounts?done=promoted"
    );
    assert_eq!(
        last_event(&app),
        ("account.promoted".into(), "console:olga".into())
    );
    assert_eq!(
        bob.get("/console/operator/clients").await.status,
        StatusCode::OK
    );
    let demoted = confirm(
        &olga,
        "/console/operator/accounts/bob/demote",
        "refuse bob",
        &[],
    )
    .await;
    assert_eq!(
        demoted.location(),
        "/console/operator/accounts?done=demoted"
    );
    assert_eq!(
        last_event(&app),
        ("account.demoted".into(), "console:olga".into())
    );
    assert_eq!(
        bob.get("/console/operator/clients").await.status,
        StatusCode::FORBIDDEN
    );

    // No self-lockout: neither the confirmation page nor the form demotes or disables oneself.
    let csrf = olga.get("/console/operator/accounts").await.csrf();
    let before = audit_events(&app).len();
    for action in ["demote", "disable"] {
        let path = format!("/console/operator/accounts/olga/{action}");
        let asked = olga.get(&path).await;
        assert_eq!(asked.status, StatusCode::CONFLICT);
        let refused = olga.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert!(refused.body.contains("You cannot"), "{}", refused.body);
    }
    assert_eq!(audit_events(&app).len(), before);
    let me = app.cli_json(&["account", "show", "olga", "--json"]);
    assert_eq!(
        (me["operator"].as_bool(), me["disabled"].as_bool()),
        (Some(true), Some(false))
    );
    // The list offers no such links for oneself.
    let list = olga.get("/console/operator/accounts").await;
    assert!(!list.body.contains("/console/operator/accounts/olga/demote"));
    assert!(list.body.contains("/console/operator/accounts/bob/promote"));

    // Disable signs bob out at once; enable lets him sign in again.
    let disabled = confirm(
        &olga,
        "/console/operator/accounts/bob/disable",
        "Disable bob",
        &[],
    )
    .await;
    assert_eq!(
        disabled.location(),
        "/console/operator/accounts?done=disabled"
    );
    assert_eq!(
        last_event(&app),
        ("account.disabled".into(), "console:olga".into())
    );
    assert_eq!(bob.get("/console/keys").await.status, StatusCode::SEE_OTHER);
    confirm(
        &olga,
        "/console/operator/accounts/bob/enable",
        "Enable bob",
        &[],
    )
    .await;
    assert_eq!(
        last_event(&app),
        ("account.enabled".into(), "console:olga".into())
    );
    assert_eq!(
        bob.sign_in("bob", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn audit_trail_filters_and_pages_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;
    let client = shown_client(&create_client(&olga, &[("name", "one"), ("scopes", "read")]).await);
    // 120 events an hour apart, starting 2026-01-01T00:00Z.
    let start = 1_767_225_600;
    {
        let mut conn = app.db.conn();
        for i in 0..120 {
            let event = Event {
                action: if i % 2 == 0 { "test.even" } else { "test.odd" },
                client_id: (i < 10).then_some(client.id.as_str()),
                subject_id: Some("s"),
                ..Event::default()
            };
            audit::record(&mut conn, &Actor::system(), event, start + i * 3600).unwrap();
        }
    }
    let rows = |page: &Page| page.body.matches("data-label=\"When\"").count();

    // Newest first, 50 a page, "older" links until the end.
    let first = olga.get("/console/operator/audit").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(rows(&first), 50);
    let newest = first
        .body
        .find("2026-01-05 23:00 UTC")
        .expect("the newest event");
    assert!(newest < first.body.find("2026-01-05 22:00 UTC").unwrap());
    let mut seen = rows(&first);
    let mut next = link_to(&first.body, "/console/operator/audit?before=");
    let mut pages = 1;
    while let Some(path) = next {
        let page = olga.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Newest"));
        seen += rows(&page);
        pages += 1;
        next = link_to(&page.body, "/console/operator/audit?before=");
    }
    let total = audit_events(&app).len();
    assert_eq!(seen, total);
    assert_eq!(pages, total.div_ceil(50));

    // Filters: action, client, time range, account; they combine and survive paging.
    let odd = olga.get("/console/operator/audit?action=test.odd").await;
    assert_eq!(rows(&odd), 50);
    let older = link_to(&odd.body, "/console/operator/audit?action=test.odd&before=")
        .expect("an older page keeps the filter");
    let odd2 = olga.get(&older).await;
    assert_eq!(rows(&odd2), 10);
    assert!(!odd2.body.contains("test.even"));
    assert!(
        link_to(
            &odd2.body,
            "/console/operator/audit?action=test.odd&before="
        )
        .is_none()
    );

    let by_client = olga
        .get(&format!("/console/operator/audit?client={}", client.id))
        .await;
    assert_eq!(rows(&by_client), 11, "ten test events and client.created");

    let range = olga
        .get("/console/operator/audit?from=2026-01-01T10%3A00&to=2026-01-01T20%3A00")
        .await;
    assert_eq!(rows(&range), 10, "hours 10 to 19");
    assert!(range.body.contains("2026-01-01 19:00 UTC"));
    assert!(!range.body.contains("2026-01-01 20:00 UTC"));
    let combined = olga
        .get("/console/operator/audit?action=test.even&from=2026-01-01&to=2026-01-02")
        .await;
    assert_eq!(rows(&combined), 12);

    let by_account = olga.get("/console/operator/audit?account=OLGA").await;
    assert!(rows(&by_account) >= 1);
    assert!(by_account.body.contains("account.password_set"));
    assert!(!by_account.body.contains("test.even"));

    // Bad filters are answered next to their field.
    let unknown = olga.get("/console/operator/audit?account=nobody").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.contains("id=\"account-error\""));
    let bad_time = olga
        .get("/console/operator/audit?from=yesterday&to=2026-01-02&account=nobody")
        .await;
    assert_eq!(bad_time.status, StatusCode::BAD_REQUEST);
    assert!(bad_time.body.contains("id=\"from-error\""));
    assert!(!bad_time.body.contains("id=\"to-error\""));
    assert!(
        bad_time.body.contains("id=\"account-error\""),
        "every field's problem at once"
    );
    assert!(bad_time.body.contains("aria-invalid=\"true\""));

    // The admin API has the same filters and paging.
    let token = app.admin_token().await;
    let response = app
        .http
        .get(app.url("/admin/audit?action=test.odd&limit=50&since=2026-01-01T00:00:00Z"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let events: Value = response.json().await.unwrap();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 50);
    let last = events[49]["seq"].as_i64().unwrap();
    let response = app
        .http
        .get(app.url(&format!("/admin/audit?action=test.odd&before={last}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let rest: Value = response.json().await.unwrap();
    assert_eq!(rest["events"].as_array().unwrap().len(), 10);
}

async fn operator_forms_without_the_csrf_token_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let olga = operator(&app, "olga").await;
    let client = shown_client(&create_client(&olga, &[("name", "kept"), ("scopes", "read")]).await);
    app.cli(&["account", "create", "--handle", "bob", "--scope", "read"]);
    let before_events = audit_events(&app).len();
    let before_clients = app.cli_json(&["client", "list", "--json"]);
    let before_keys = app.cli_json(&["signing-key", "list", "--json"]);
    let before_accounts = app.cli_json(&["account", "list", "--json"]);

    let id = client.id.as_str();
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/console/operator/clients".into(),
            vec![("name", "forged"), ("scopes", "read")],
        ),
        (
            format!("/console/operator/clients/{id}"),
            vec![("name", "renamed"), ("scopes", "")],
        ),
        (
            format!("/console/operator/clients/{id}/rotate-secret"),
            vec![("grace_seconds", "0")],
        ),
        (format!("/console/operator/clients/{id}/disable"), vec![]),
        (
            format!("/console/operator/clients/{id}/revoke-tokens"),
            vec![],
        ),
        (format!("/console/operator/clients/{id}/delete"), vec![]),
        ("/console/operator/signing-keys/rotate".into(), vec![]),
        (
            "/console/operator/accounts".into(),
            vec![("handle", "forged"), ("scopes", "read")],
        ),
        ("/console/operator/accounts/bob/invite".into(), vec![]),
        ("/console/operator/accounts/bob/disable".into(), vec![]),
        ("/console/operator/accounts/bob/promote".into(), vec![]),
    ];
    for (path, fields) in &posts {
        for csrf in [None, Some("forged")] {
            let mut form = fields.clone();
            if let Some(csrf) = csrf {
                form.push(("csrf", csrf));
            }
            let page = olga.post(path, &form).await;
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{path} {csrf:?}: {}",
                page.body
            );
            assert!(!page.body.contains("will not be shown again"));
        }
    }
    // The right token from another site is refused too.
    let csrf = olga.get("/console/operator/clients").await.csrf();
    let cross_site = olga
        .http
        .post(format!(
            "{}/console/operator/clients/{id}/delete",
            olga.base
        ))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    assert_eq!(audit_events(&app).len(), before_events);
    assert_eq!(app.cli_json(&["client", "list", "--json"]), before_clients);
    assert_eq!(
        app.cli_json(&["signing-key", "list", "--json"]),
        before_keys
    );
    assert_eq!(
        app.cli_json(&["account", "list", "--json"]),
        before_accounts
    );
    assert_eq!(token_status(&app, &client).await.0, 200);
}

async fn admin_api_invites_and_sets_the_operator_flag(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.admin_token().await;
    app.cli(&["account", "create", "--handle", "cara", "--scope", "read"]);
    let post = |path: &str| app.http.post(app.url(path)).bearer_auth(&token).send();

    let response = post("/admin/accounts/cara/invite").await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let link: Value = response.json().await.unwrap();
    assert_eq!(link["handle"], "cara");
    assert!(link["expires_at"].is_string());
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/console/invite/", app.issuer)));
    let cara = Browser::new(&app);
    let accepted = cara
        .accept_invite(&url[url.find("/console/invite/").unwrap()..], PASSWORD)
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        cara.get("/console/operator/accounts").await.status,
        StatusCode::FORBIDDEN
    );

    let response = post("/admin/accounts/cara/promote").await.unwrap();
    assert_eq!(response.status(), 200);
    let account: Value = response.json().await.unwrap();
    assert_eq!(account["operator"], true);
    assert_eq!(
        cara.get("/console/operator/accounts").await.status,
        StatusCode::OK
    );
    let (action, actor) = last_event(&app);
    assert_eq!(action, "account.promoted");
    assert!(actor.starts_with("admin:"), "{actor}");

    let response = post("/admin/accounts/cara/demote").await.unwrap();
    let account: Value = response.json().await.unwrap();
    assert_eq!(account["operator"], false);
    assert_eq!(
        cara.get("/console/operator/accounts").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post("/admin/accounts/nobody/promote")
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        post("/admin/accounts/nobody/invite")
            .await
            .unwrap()
            .status(),
        404
    );
    // Without a token: refused.
    let anonymous = app
        .http
        .post(app.url("/admin/accounts/cara/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A new link replaces the one before: the old one no longer works.
    let second: Value = post("/admin/accounts/cara/invite")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(second["url"], link["url"]);
}
