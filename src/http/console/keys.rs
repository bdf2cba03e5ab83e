//! A person's API keys: list, create (shown once), regenerate, revoke, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::error::ConsoleError;
use super::session::Person;
use super::{Chrome, csrf, human_time, ok_page, page, see_other};
use crate::app::AppState;
use crate::crypto::secrets::ApiKeySecret;
use crate::oauth::Scope;
use crate::service::api_keys::{self, ApiKeyView, KeySpec, Within};

/// A key as the list shows it.
pub struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created: String,
    created_iso: String,
    last_used: Option<String>,
    expires: Option<String>,
    status: &'static str,
}

impl From<ApiKeyView> for KeyRow {
    fn from(view: ApiKeyView) -> Self {
        Self {
            created: human_time(view.created_at),
            created_iso: view.created_at.to_rfc3339(),
            last_used: view.last_used_at.map(human_time),
            expires: view.expires_at.map(human_time),
            status: view.status,
            id: view.id,
            name: view.name,
            prefix: view.prefix,
            scopes: view.scopes,
        }
    }
}

pub struct ScopeChoice {
    name: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    chrome: Chrome,
    csrf: String,
    account_handle: String,
    keys: Vec<KeyRow>,
    account_scopes: Vec<ScopeChoice>,
    notice: Option<String>,
    form_error: Option<String>,
    form_name: String,
    form_days: String,
}

#[derive(Template)]
#[template(path = "console/key_created.html")]
struct KeyCreatedPage {
    chrome: Chrome,
    heading: &'static str,
    name: String,
    secret: String,
    scopes: Vec<String>,
    expires: Option<String>,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    csrf: String,
    heading: String,
    message: String,
    action: String,
    button: &'static str,
    danger: bool,
    cancel_href: &'static str,
}

/// What the create form held, to show it again with its error.
#[derive(Default)]
struct CreateForm {
    name: String,
    scopes: Option<Vec<String>>,
    days: String,
    error: Option<String>,
}

async fn keys_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    form: CreateForm,
    notice: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let (account_id, now) = (person.account.id.clone(), state.now());
    let keys = state
        .db
        .run(move |conn| api_keys::list(conn, &account_id, now))
        .await?;
    let account_scopes = person
        .account
        .scopes
        .tokens()
        .iter()
        .map(|name| ScopeChoice {
            checked: form
                .scopes
                .as_ref()
                .is_none_or(|chosen| chosen.contains(name)),
            name: name.clone(),
        })
        .collect();
    Ok(page(
        status,
        &KeysPage {
            chrome: Chrome::for_person(person, "API keys", "keys"),
            csrf: person.session.csrf_token.clone(),
            account_handle: person.account.handle.clone(),
            keys: keys.into_iter().map(KeyRow::from).collect(),
            account_scopes,
            notice,
            form_error: form.error,
            form_name: form.name,
            form_days: form.days,
        },
    ))
}

#[derive(Deserialize)]
pub struct KeysQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/keys`, with a notice after a revoke or delete (a fixed text per action:
/// nothing from the URL reaches the page).
pub async fn get_keys(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<KeysQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let notice = match query.done.as_deref() {
        Some("revoked") => Some("Key revoked: it stopped working at once.".to_owned()),
        Some("deleted") => Some("Key deleted permanently.".to_owned()),
        _ => None,
    };
    keys_page(
        &state,
        &person,
        StatusCode::OK,
        CreateForm::default(),
        notice,
    )
    .await
}

/// Parses `csrf=…&name=…&scope=a&scope=b&expires_in_days=…` (repeated `scope` fields, which
/// `serde_urlencoded` cannot collect).
fn parse_create_form(body: &[u8]) -> (String, CreateForm) {
    let mut csrf = String::new();
    let mut form = CreateForm {
        scopes: Some(Vec::new()),
        ..CreateForm::default()
    };
    for (name, value) in form_urlencoded::parse(body) {
        match name.as_ref() {
            "csrf" => csrf = value.into_owned(),
            "name" => form.name = value.into_owned(),
            "scope" => form
                .scopes
                .get_or_insert_with(Vec::new)
                .push(value.into_owned()),
            "expires_in_days" => form.days = value.trim().to_owned(),
            _ => {}
        }
    }
    (csrf, form)
}

/// `POST /console/keys`: creates a key and shows it once.
pub async fn post_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    if body.len() > 16 * 1024 {
        return Err(ConsoleError::BadForm("The form is too large.".into()));
    }
    let (presented_csrf, mut form) = parse_create_form(&body);
    csrf::check(&req, &state, &person, &presented_csrf)?;
    let expires_in = match form.days.as_str() {
        "" => Ok(None),
        days => match days.parse::<i64>() {
            Ok(days) if (1..=3650).contains(&days) => Ok(Some(days * 86_400)),
            _ => Err("Expiry must be a whole number of days from 1 to 3650, or empty.".to_owned()),
        },
    };
    let chosen = form.scopes.clone().unwrap_or_default().join(" ");
    let scopes = Scope::parse(&chosen).map_err(|e| e.0);
    let (expires_in, scopes) = match (expires_in, scopes) {
        (Ok(expires_in), Ok(scopes)) => (expires_in, scopes),
        (Err(problem), _) | (_, Err(problem)) => {
            form.error = Some(problem);
            return keys_page(
                &state,
                &person,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                None,
            )
            .await;
        }
    };
    let spec = KeySpec {
        name: form.name.clone(),
        scopes: Some(scopes),
        expires_in,
    };
    let (actor, account, now) = (person.actor(), person.account.clone(), state.now());
    let created = state
        .db
        .run(move |conn| api_keys::create(conn, &actor, &account, &spec, now))
        .await;
    match created {
        Ok((view, secret)) => Ok(created_page(&person, "Key created", view, &secret)),
        Err(crate::service::accounts::AccountError::Invalid(problem)) => {
            form.error = Some(problem);
            keys_page(
                &state,
                &person,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                None,
            )
            .await
        }
        Err(err) => Err(err.into()),
    }
}

fn created_page(
    person: &Person,
    heading: &'static str,
    view: ApiKeyView,
    secret: &ApiKeySecret,
) -> HttpResponse {
    ok_page(&KeyCreatedPage {
        chrome: Chrome::for_person(person, heading, "keys"),
        heading,
        name: view.name,
        secret: secret.expose().to_owned(),
        scopes: view.scopes,
        expires: view.expires_at.map(human_time),
    })
}

#[derive(Clone, Copy)]
enum KeyAction {
    Revoke,
    Delete,
    Regenerate,
}

impl KeyAction {
    fn parse(text: &str) -> Result<Self, ConsoleError> {
        match text {
            "revoke" => Ok(Self::Revoke),
            "delete" => Ok(Self::Delete),
            "regenerate" => Ok(Self::Regenerate),
            _ => Err(ConsoleError::NotFound),
        }
    }
}

async fn own_key(state: &AppState, person: &Person, id: &str) -> Result<ApiKeyView, ConsoleError> {
    let (account_id, now) = (person.account.id.clone(), state.now());
    let keys = state
        .db
        .run(move |conn| api_keys::list(conn, &account_id, now))
        .await?;
    keys.into_iter()
        .find(|key| key.id == id)
        .ok_or(ConsoleError::NotFound)
}

/// `GET /console/keys/{id}/{revoke|delete|regenerate}`: says what will happen and asks.
pub async fn get_key_action(
    state: web::Data<AppState>,
    person: Person,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, action) = path.into_inner();
    let action = KeyAction::parse(&action)?;
    let key = own_key(&state, &person, &id).await?;
    let (heading, message, button, danger) = match action {
        KeyAction::Revoke => (
            format!("Revoke \u{201c}{}\u{201d}?", key.name),
            format!(
                "The key {}… stops working at once, everywhere. It stays in the list as revoked. \
                 Anything still using it will be refused.",
                key.prefix
            ),
            "Revoke key",
            true,
        ),
        KeyAction::Delete => (
            format!("Delete \u{201c}{}\u{201d} permanently?", key.name),
            format!(
                "The key {}… stops working and disappears from the list. This cannot be undone.",
                key.prefix
            ),
            "Delete permanently",
            true,
        ),
        KeyAction::Regenerate => (
            format!("Regenerate \u{201c}{}\u{201d}?", key.name),
            format!(
                "A new key with the same name, scopes and lifetime is created and shown once; \
                 the old key {}… is revoked at once. Update whatever uses it right away.",
                key.prefix
            ),
            "Regenerate key",
            false,
        ),
    };
    Ok(ok_page(&ConfirmPage {
        chrome: Chrome::for_person(&person, &heading, "keys"),
        csrf: person.session.csrf_token.clone(),
        heading,
        message,
        action: format!("/console/keys/{id}/{}", path_action(action)),
        button,
        danger,
        cancel_href: "/console/keys",
    }))
}

fn path_action(action: KeyAction) -> &'static str {
    match action {
        KeyAction::Revoke => "revoke",
        KeyAction::Delete => "delete",
        KeyAction::Regenerate => "regenerate",
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `POST /console/keys/{id}/{revoke|delete|regenerate}`
pub async fn post_key_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    let (id, action) = path.into_inner();
    let action = KeyAction::parse(&action)?;
    csrf::check(&req, &state, &person, &form.csrf)?;
    let (actor, account_id, now) = (person.actor(), person.account.id.clone(), state.now());
    match action {
        KeyAction::Revoke => {
            let view = state
                .db
                .run(move |conn| {
                    api_keys::revoke(conn, &actor, &id, Within::Account(&account_id), now)
                })
                .await?;
            drop(view);
            Ok(see_other("/console/keys?done=revoked"))
        }
        KeyAction::Delete => {
            state
                .db
                .run(move |conn| {
                    api_keys::delete(conn, &actor, &id, Within::Account(&account_id), now)
                })
                .await?;
            Ok(see_other("/console/keys?done=deleted"))
        }
        KeyAction::Regenerate => {
            let (view, secret) = state
                .db
                .run(move |conn| {
                    api_keys::regenerate(conn, &actor, &id, Within::Account(&account_id), now)
                })
                .await?;
            Ok(created_page(&person, "Key regenerated", view, &secret))
        }
    }
}
