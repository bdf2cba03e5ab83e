//! Signing in and out, and the invite link that sets a password.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::error::ConsoleError;
use super::session::{
    HalfSignedIn, Person, Visitor, browser_info, expired_session_cookie, safe_return_path,
    session_cookie,
};
use super::{Chrome, csrf, page};
use crate::app::AppState;
use crate::app::rate_limit::address_key;
use crate::crypto::passwords::{self, MIN_PASSWORD_CHARS};
use crate::domain::ConsoleSession;
use crate::http::extract::client_ip;
use crate::service::audit::{self, Actor};
use crate::service::invites::{self, InviteError};
use crate::service::second_factor::{self, SecondFactorError};
use crate::service::sessions::{self, SignedIn};
use crate::service::sign_in::{self, Attempt};

/// One answer for an unknown handle, a disabled account, no password yet and a wrong one.
const REFUSED: &str = "That handle and password do not match.";

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    csrf: String,
    handle: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
}

fn return_path(next: Option<&str>) -> String {
    next.filter(|n| safe_return_path(n))
        .unwrap_or("/console/keys")
        .to_owned()
}

fn sign_in_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    handle: String,
    next: String,
    error: Option<String>,
) -> HttpResponse {
    let (csrf, cookie) = csrf::pre_session_token(req, state);
    let mut response = page(
        status,
        &SignInPage {
            chrome: Chrome::signed_out("Sign in"),
            csrf,
            handle,
            next,
            error,
        },
    );
    if let Some(cookie) = cookie {
        let _ = response.add_cookie(&cookie);
    }
    response
}

/// `GET /console/sign-in`
pub async fn get_sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<SignInQuery>,
) -> HttpResponse {
    let next = return_path(query.next.as_deref());
    if visitor.0.is_some() {
        return super::see_other(&next);
    }
    sign_in_page(&req, &state, StatusCode::OK, String::new(), next, None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    handle: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /console/sign-in`: password first; a session that still owes the second factor
/// when the person has one.
pub async fn post_sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    csrf::check_pre_session(&req, &state, &form.csrf)?;
    let next = return_path(form.next.as_deref());
    let handle: String = form.handle.trim().chars().take(40).collect();
    let refuse = |status, message: String| {
        Ok(sign_in_page(
            &req,
            &state,
            status,
            handle.clone(),
            next.clone(),
            Some(message),
        ))
    };
    let address = client_ip(&req, &state.settings.trusted_proxies)
        .map(address_key)
        .unwrap_or_default();
    if let Err(wait) = state.sign_in_by_address.check(&address) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many sign-in attempts from your network. Try again in {}.",
                minutes(wait.as_secs() as i64)
            ),
        );
    }
    let now = state.now();
    let lookup_handle = handle.clone();
    let attempt = state
        .db
        .run(move |conn| sign_in::begin(conn, &lookup_handle, now))
        .await?;
    let password = form.password;
    let (account, credentials) = match attempt {
        Attempt::Blocked { retry_after } => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins for this account. Try again in {}.",
                    minutes(retry_after)
                ),
            );
        }
        Attempt::Refuse => {
            state
                .password_work(move || passwords::verify_against_nothing(&password))
                .await
                .ok_or_else(password_work_failed)?;
            return refuse(StatusCode::FORBIDDEN, REFUSED.into());
        }
        Attempt::Check(found) => *found,
    };
    let stored = credentials.password_hash.clone();
    let matches = state
        .password_work(move || passwords::verify_password(&password, &stored))
        .await
        .ok_or_else(password_work_failed)?;
    if !matches {
        let block = state
            .db
            .run(move |conn| sign_in::record_failure(conn, &credentials, now))
            .await?;
        let message = match block {
            Some(seconds) => format!(
                "{REFUSED} Too many failed sign-ins: try again in {}.",
                minutes(seconds)
            ),
            None => REFUSED.into(),
        };
        return refuse(StatusCode::FORBIDDEN, message);
    }
    let (browser, policy) = (browser_info(&req, &state), state.settings.console.sessions);
    let pending = credentials.has_second_factor();
    let signed_in = state
        .db
        .run(move |conn| {
            sign_in::record_success(conn, &credentials)?;
            let started = sessions::start(conn, &account, pending, &browser, &policy, now)?;
            if !pending {
                record_sign_in(conn, &account, &started.session, now)?;
            }
            Ok::<_, crate::db::DbError>(started)
        })
        .await;
    let started = match signed_in {
        Ok(started) => started,
        // The account was deleted while its password was checked.
        Err(err) if err.is_foreign_key_violation() => {
            return refuse(StatusCode::FORBIDDEN, REFUSED.into());
        }
        Err(err) => return Err(err.into()),
    };
    let target = if pending {
        "/console/sign-in/second-factor".to_owned()
    } else {
        next
    };
    let mut response = super::see_other(&target);
    response
        .add_cookie(&session_cookie(&state, &started.token))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(response)
}

pub(super) fn record_sign_in(
    conn: &mut crate::db::DbConn,
    account: &crate::domain::Account,
    session: &ConsoleSession,
    now: i64,
) -> Result<(), crate::db::DbError> {
    audit::record(
        conn,
        &Actor::console(&account.handle),
        crate::service::accounts::account_event(
            "console.signed_in",
            account,
            Some(&session.id),
            Some(serde_json::json!({"address": session.address})),
        ),
        now,
    )
}

/// Hashes a chosen password on the password threads (already checked against the policy).
pub(super) async fn hash_new_password(
    state: &AppState,
    password: String,
) -> Result<String, ConsoleError> {
    state
        .password_work(move || passwords::hash_password(&password))
        .await
        .ok_or_else(password_work_failed)?
        .map_err(|e| ConsoleError::Internal(format!("password hashing failed: {e}")))
}

fn password_work_failed() -> ConsoleError {
    ConsoleError::Internal("the password hashing thread failed".into())
}

/// "3 minutes", for people.
fn minutes(seconds: i64) -> String {
    let minutes = (seconds.max(1) + 59) / 60;
    if minutes == 1 {
        "a minute".into()
    } else {
        format!("{minutes} minutes")
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// `POST /console/sign-out`
pub async fn post_sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    csrf::check(&req, &state, &person, &form.csrf)?;
    let now = state.now();
    state
        .db
        .run(move |conn| {
            sessions::end(conn, &person.session)?;
            audit::record(
                conn,
                &person.actor(),
                crate::service::accounts::account_event(
                    "console.signed_out",
                    &person.account,
                    Some(&person.session.id),
                    None,
                ),
                now,
            )
        })
        .await?;
    let mut response = super::see_other("/console/sign-in");
    let _ = response.add_cookie(&expired_session_cookie(&state));
    Ok(response)
}

#[derive(Template)]
#[template(path = "console/invite.html")]
struct InvitePage {
    chrome: Chrome,
    csrf: String,
    token: String,
    handle: String,
    min_chars: usize,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
    tone: &'static str,
    back_href: &'static str,
    back_label: &'static str,
}

fn invalid_link(err: &InviteError) -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        &MessagePage {
            chrome: Chrome::signed_out("Link not valid"),
            heading: "This link does not work",
            message: format!("{err}. Ask an operator for a new one."),
            tone: "error",
            back_href: "/console/sign-in",
            back_label: "Go to sign-in",
        },
    )
}

fn invite_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    token: String,
    handle: String,
    error: Option<String>,
) -> HttpResponse {
    let (csrf, cookie) = csrf::pre_session_token(req, state);
    let mut response = page(
        status,
        &InvitePage {
            chrome: Chrome::signed_out("Choose a password"),
            csrf,
            token,
            handle,
            min_chars: MIN_PASSWORD_CHARS,
            error,
        },
    );
    if let Some(cookie) = cookie {
        let _ = response.add_cookie(&cookie);
    }
    response
}

/// `GET /console/invite/{token}`
pub async fn get_invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let token = token.into_inner();
    let now = state.now();
    let lookup = token.clone();
    match state
        .db
        .run(move |conn| invites::check(conn, &lookup, now))
        .await
    {
        Ok(account) => Ok(invite_page(
            &req,
            &state,
            StatusCode::OK,
            token,
            account.handle,
            None,
        )),
        Err(InviteError::Store(err)) => Err(err.into()),
        Err(err) => Ok(invalid_link(&err)),
    }
}

#[derive(Deserialize)]
pub struct InviteForm {
    csrf: String,
    password: String,
    confirm: String,
    #[serde(default, rename = "username")]
    _username: Option<String>,
}

/// `POST /console/invite/{token}`: sets the password, spends the link, signs in.
pub async fn post_invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (token, form) = (token.into_inner(), form.into_inner());
    csrf::check_pre_session(&req, &state, &form.csrf)?;
    let now = state.now();
    let lookup = token.clone();
    let account = match state
        .db
        .run(move |conn| invites::check(conn, &lookup, now))
        .await
    {
        Ok(account) => account,
        Err(InviteError::Store(err)) => return Err(err.into()),
        Err(err) => return Ok(invalid_link(&err)),
    };
    let problem = if form.password != form.confirm {
        Some("The two passwords differ.".to_owned())
    } else {
        invites::check_password(&account, &form.password)
            .err()
            .map(|e| format!("{}{}", capitalized(&e.to_string()), "."))
    };
    if let Some(problem) = problem {
        return Ok(invite_page(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            token,
            account.handle,
            Some(problem),
        ));
    }
    let hash = hash_new_password(&state, form.password).await?;
    let (browser, policy) = (browser_info(&req, &state), state.settings.console.sessions);
    let accepted = state
        .db
        .run(move |conn| {
            crate::db::transaction(conn, |conn| {
                let account = invites::accept(conn, &token, &hash, now)?;
                let started = sessions::start(conn, &account, false, &browser, &policy, now)?;
                record_sign_in(conn, &account, &started.session, now)?;
                Ok::<_, InviteError>(started)
            })
        })
        .await;
    let started = match accepted {
        Ok(started) => started,
        Err(InviteError::Store(err)) => return Err(err.into()),
        Err(err) => return Ok(invalid_link(&err)),
    };
    let mut response = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/keys"))
        .finish();
    response
        .add_cookie(&session_cookie(&state, &started.token))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(response)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "console/second_factor.html")]
struct SecondFactorPage {
    chrome: Chrome,
    csrf: String,
    handle: String,
    error: Option<String>,
}

fn second_factor_page(
    status: StatusCode,
    signed_in: &SignedIn,
    error: Option<String>,
) -> HttpResponse {
    page(
        status,
        &SecondFactorPage {
            chrome: Chrome::signed_out("Second factor"),
            csrf: signed_in.session.csrf_token.clone(),
            handle: signed_in.account.handle.clone(),
            error,
        },
    )
}

/// `GET /console/sign-in/second-factor`
pub async fn get_second_factor(half: HalfSignedIn) -> HttpResponse {
    second_factor_page(StatusCode::OK, &half.0, None)
}

#[derive(Deserialize)]
pub struct CodeForm {
    pub(super) csrf: String,
    pub(super) code: String,
}

/// What a second-factor code did.
enum CodeOutcome {
    SignedIn,
    Wrong,
    /// Wrong, and the account is now blocked for this many seconds: the half session ends.
    Blocked(i64),
}

/// `POST /console/sign-in/second-factor`: a wrong code counts as a failed sign-in, so
/// guessing codes meets the same block as guessing passwords.
pub async fn post_second_factor(
    req: HttpRequest,
    state: web::Data<AppState>,
    half: HalfSignedIn,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (form, signed_in) = (form.into_inner(), half.0);
    csrf::check_session(&req, &state, &signed_in.session, &form.csrf)?;
    let (master, now) = (state.master_key.clone(), state.now());
    let (account, session) = (signed_in.account.clone(), signed_in.session.clone());
    let code = form.code;
    let outcome = state
        .db
        .run(move |conn| {
            let credentials = crate::db::credentials::of_account(conn, &account.id)?;
            match second_factor::verify(conn, &master, &account, &code, now) {
                Ok(()) => {
                    sessions::complete_second_factor(conn, &session, now)?;
                    if let Some(credentials) = &credentials {
                        sign_in::record_success(conn, credentials)?;
                    }
                    record_sign_in(conn, &account, &session, now)?;
                    Ok(CodeOutcome::SignedIn)
                }
                Err(SecondFactorError::WrongCode) => {
                    let block = match &credentials {
                        Some(credentials) => sign_in::record_failure(conn, credentials, now)?,
                        None => None,
                    };
                    match block {
                        Some(seconds) => {
                            sessions::end(conn, &session)?;
                            Ok(CodeOutcome::Blocked(seconds))
                        }
                        None => Ok(CodeOutcome::Wrong),
                    }
                }
                Err(err) => Err(err),
            }
        })
        .await;
    match outcome {
        Ok(CodeOutcome::SignedIn) => Ok(super::see_other("/console/keys")),
        Ok(CodeOutcome::Wrong) => Ok(second_factor_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &signed_in,
            Some("That code is not right, or it was already used.".into()),
        )),
        Ok(CodeOutcome::Blocked(seconds)) => {
            let mut response = sign_in_page(
                &req,
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                signed_in.account.handle.clone(),
                "/console/keys".into(),
                Some(format!(
                    "Too many wrong codes. Try again in {}.",
                    minutes(seconds)
                )),
            );
            let _ = response.add_cookie(&expired_session_cookie(&state));
            Ok(response)
        }
        Err(SecondFactorError::Store(err)) => Err(err.into()),
        Err(err) => Err(ConsoleError::Internal(err.to_string())),
    }
}
