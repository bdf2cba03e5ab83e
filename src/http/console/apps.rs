//! Apps asking for access: pairing requests waiting for their 4-digit code, and browser
//! authorization (MiAuth) of apps that can open a page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::auth::CsrfForm;
use super::error::ConsoleError;
use super::session::Person;
use super::{Chrome, csrf, ok_page, page, see_other};
use crate::app::AppState;
use crate::http::error::HttpError;
use crate::http::openapi::StoreErrors;
use crate::service::accounts::AccountError;
use crate::service::api_keys::{ApiKeyView, Within};
use crate::service::app_authorizations::{self, AuthorizationError, CheckOutcome};
use crate::service::pairing;

pub struct RequestRow {
    id: String,
    app_name: String,
    scopes: Vec<String>,
    code: String,
    /// The code digit by digit, for screen readers.
    code_spoken: String,
    time_left: String,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage {
    chrome: Chrome,
    csrf: String,
    handle: String,
    requests: Vec<RequestRow>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

fn time_left(seconds: i64) -> String {
    match seconds {
        s if s <= 0 => "expiring".into(),
        s if s < 60 => format!("{s} s"),
        s => format!("{} min {} s", s / 60, s % 60),
    }
}

/// `GET /console/apps`: the account's pending pairing requests, with their codes (the person
/// signed in with their password holds every scope the key would get).
pub async fn get_apps(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let (app, account_id, now) = (state.clone(), person.account.id.clone(), state.now());
    let pending = state
        .db
        .run(move |conn| {
            pairing::pending_challenges(conn, &app.pairing, Within::Account(&account_id), now)
        })
        .await?;
    let requests = pending
        .into_iter()
        .map(|c| {
            let code = c.code.unwrap_or_default();
            RequestRow {
                code_spoken: code.chars().map(String::from).collect::<Vec<_>>().join(" "),
                time_left: time_left(c.expires_at.timestamp() - now),
                id: c.id,
                app_name: c.app_name,
                scopes: c.scopes,
                code,
            }
        })
        .collect();
    let notice = match query.done.as_deref() {
        Some("denied") => Some("Request denied: the app cannot use its code."),
        _ => None,
    };
    Ok(ok_page(&AppsPage {
        chrome: Chrome::for_person(&person, "App requests", "apps"),
        csrf: person.session.csrf_token.clone(),
        handle: person.account.handle.clone(),
        requests,
        notice,
    }))
}

/// `POST /console/apps/{id}/deny`
pub async fn post_deny(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    csrf::check(&req, &state, &person, &form.csrf)?;
    let (actor, account_id, now) = (person.actor(), person.account.id.clone(), state.now());
    match state
        .db
        .run(move |conn| {
            pairing::deny_challenge(conn, &actor, &id, Within::Account(&account_id), now)
        })
        .await
    {
        Ok(()) | Err(AccountError::ChallengeNotPending(_)) => {
            Ok(see_other("/console/apps?done=denied"))
        }
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize)]
pub struct AuthorizeQuery {
    #[serde(default)]
    session: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    permission: String,
    #[serde(default)]
    callback: Option<String>,
}

#[derive(Template)]
#[template(path = "console/authorize_app.html")]
struct AuthorizePage {
    chrome: Chrome,
    csrf: String,
    handle: String,
    session: String,
    app_name: String,
    granted: Vec<String>,
    missing: Vec<String>,
    callback_host: Option<String>,
}

#[derive(Template)]
#[template(path = "console/app_decided.html")]
struct DecidedPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
    tone: &'static str,
    app_name: String,
    return_url: Option<String>,
}

fn authorization_error(err: AuthorizationError) -> ConsoleError {
    match err {
        AuthorizationError::Spent => ConsoleError::BadForm(err.to_string()),
        AuthorizationError::Account(err) => err.into(),
        AuthorizationError::Store(err) => err.into(),
    }
}

/// `GET /console/authorize-app?session=…&name=…&permission=…&callback=…` (MiAuth): the
/// app's request, to approve or deny. Signing in first brings the person back here.
pub async fn get_authorize(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<AuthorizeQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let request = app_authorizations::parse_request(
        &query.session,
        &query.name,
        &query.permission,
        query.callback.as_deref(),
    )?;
    let (account, now) = (person.account.clone(), state.now());
    let opened = request.clone();
    let authorization = state
        .db
        .run(move |conn| app_authorizations::open(conn, &account, &opened, now))
        .await
        .map_err(authorization_error)?;
    let held = &person.account.scopes;
    let (granted, missing) = authorization
        .scopes
        .tokens()
        .iter()
        .cloned()
        .partition(|scope| held.contains(scope));
    Ok(ok_page(&AuthorizePage {
        chrome: Chrome::for_person(&person, "Authorize an app", "apps"),
        csrf: person.session.csrf_token.clone(),
        handle: person.account.handle.clone(),
        session: authorization.session_id,
        app_name: authorization.app_name,
        granted,
        missing,
        callback_host: authorization
            .callback
            .as_deref()
            .and_then(|c| url::Url::parse(c).ok())
            .and_then(|u| u.host_str().map(str::to_owned)),
    }))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    session: String,
    decision: String,
}

/// `POST /console/authorize-app`: approve or deny; then back to the app's callback (with
/// `?session=`) when it gave one.
pub async fn post_authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<DecisionForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    csrf::check(&req, &state, &person, &form.csrf)?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Err(ConsoleError::BadForm("Choose approve or deny.".into())),
    };
    let (actor, account, now) = (person.actor(), person.account.clone(), state.now());
    let session = form.session;
    let decided = state
        .db
        .run(move |conn| app_authorizations::decide(conn, &actor, &account, &session, approve, now))
        .await
        .map_err(authorization_error)?;
    let return_url = decided.callback.as_deref().and_then(|callback| {
        let mut url = url::Url::parse(callback).ok()?;
        url.query_pairs_mut()
            .append_pair("session", &decided.session_id);
        Some(url.to_string())
    });
    let (heading, message, tone) = if approve {
        (
            "App approved",
            format!(
                "{} can now collect its key. You can revoke it any time on the API keys page.",
                decided.app_name
            ),
            "ok",
        )
    } else {
        (
            "App denied",
            format!("{} gets no key.", decided.app_name),
            "error",
        )
    };
    Ok(page(
        StatusCode::OK,
        &DecidedPage {
            chrome: Chrome::for_person(&person, heading, "apps"),
            heading,
            message,
            tone,
            app_name: decided.app_name,
            return_url,
        },
    ))
}

/// The MiAuth check's answer: `{"ok": false}` alone, or the key.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CheckAnswer<'a> {
    /// Whether the key is in this answer.
    pub ok: bool,
    /// The key itself: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<ApiKeyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<CheckAccount>,
}

/// The account that authorized the app.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CheckAccount {
    pub id: String,
    pub handle: String,
    pub display_name: String,
}

/// `POST /api/v1/app-sessions/{session}/check` (MiAuth): once approved, the app receives
/// its key, once. Anything else is `{"ok":false}`, so the answer does not say whether a
/// session exists, is pending or was denied.
#[utoipa::path(
    post,
    path = "/api/v1/app-sessions/{session}/check",
    tag = "miauth",
    summary = "Collect the key of an app authorization",
    description = "Misskey's MiAuth: after the person approved the app in the console \
        (`/console/authorize-app?session=…`), the app collects its key here, once. Anything else \
        (unknown, pending, denied, expired, already collected) is `{\"ok\": false}`. Only while \
        the console is enabled.",
    params(("session" = String, Path, description = "The session id the app chose (a UUID)")),
    responses(
        (status = 200, description = "The key, or `{\"ok\": false}`.", body = CheckAnswer),
        StoreErrors,
    ),
)]
pub async fn post_check(
    state: web::Data<AppState>,
    session: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let now = state.now();
    let outcome = state
        .db
        .run(move |conn| app_authorizations::check(conn, &session, now))
        .await?;
    let response = |body: CheckAnswer<'_>| {
        HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(body)
    };
    Ok(match outcome {
        CheckOutcome::Granted(grant) => {
            let grant = *grant;
            response(CheckAnswer {
                ok: true,
                api_key: Some(grant.secret.expose()),
                key: Some(grant.key),
                account: Some(CheckAccount {
                    id: grant.account.id,
                    handle: grant.account.handle,
                    display_name: grant.account.display_name,
                }),
            })
        }
        CheckOutcome::NotGranted => response(CheckAnswer {
            ok: false,
            api_key: None,
            key: None,
            account: None,
        }),
    })
}
