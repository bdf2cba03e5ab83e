//! A person's own account: password, second factor, sessions and recent activity.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::auth::{CodeForm, CsrfForm};
use super::error::ConsoleError;
use super::session::Person;
use super::{Chrome, csrf, human_time, ok_page, page, see_other};
use crate::app::AppState;
use crate::crypto::passwords::{self, MIN_PASSWORD_CHARS};
use crate::crypto::sealed::MasterKey;
use crate::db::{self, DbConn};
use crate::domain::Account;
use crate::domain::{ConsoleSession, timestamp};
use crate::service::accounts::account_event;
use crate::service::audit;
use crate::service::audit::Actor;
use crate::service::second_factor::{self, Enrolment, SecondFactorError};
use crate::service::sessions;

pub struct SessionRow {
    id: String,
    user_agent: String,
    address: String,
    created: String,
    last_seen: String,
    current: bool,
}

pub struct EventRow {
    when: String,
    action: String,
    actor: String,
    subject: String,
}

#[derive(Template)]
#[template(path = "console/account.html")]
struct AccountPage {
    chrome: Chrome,
    csrf: String,
    handle: String,
    operator: bool,
    scopes: Vec<String>,
    notice: Option<String>,
    password_error: Option<String>,
    factor_error: Option<String>,
    min_chars: usize,
    second_factor: bool,
    recovery_left: i64,
    sessions: Vec<SessionRow>,
    events: Vec<EventRow>,
}

#[derive(Default)]
struct Messages {
    notice: Option<String>,
    password_error: Option<String>,
    factor_error: Option<String>,
}

async fn account_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    messages: Messages,
) -> Result<HttpResponse, ConsoleError> {
    let account = person.account.clone();
    let (credentials, recovery_left, sessions, events) = state
        .db
        .run(move |conn| {
            let credentials = db::credentials::of_account(conn, &account.id)?;
            let recovery_left = second_factor::recovery_codes_left(conn, &account)?;
            let sessions = sessions::list(conn, &account.id)?;
            let filter = db::audit::AuditFilter {
                account_id: Some(account.id.clone()),
                ..db::audit::AuditFilter::default()
            };
            let events = db::audit::list(conn, &filter, 50)?;
            Ok::<_, db::DbError>((credentials, recovery_left, sessions, events))
        })
        .await?;
    let current = &person.session.id;
    let row = |s: ConsoleSession| SessionRow {
        current: &s.id == current,
        created: human_time(timestamp(s.created_at)),
        last_seen: human_time(timestamp(s.last_seen_at)),
        id: s.id,
        user_agent: if s.user_agent.is_empty() {
            "unknown browser".into()
        } else {
            s.user_agent
        },
        address: s.address,
    };
    Ok(page(
        status,
        &AccountPage {
            chrome: Chrome::for_person(person, "Account", "account"),
            csrf: person.session.csrf_token.clone(),
            handle: person.account.handle.clone(),
            operator: person.account.is_operator,
            scopes: person.account.scopes.tokens().to_vec(),
            notice: messages.notice,
            password_error: messages.password_error,
            factor_error: messages.factor_error,
            min_chars: MIN_PASSWORD_CHARS,
            second_factor: credentials.is_some_and(|c| c.has_second_factor()),
            recovery_left,
            sessions: sessions.into_iter().map(row).collect(),
            events: events
                .into_iter()
                .map(|e| EventRow {
                    when: human_time(timestamp(e.occurred_at)),
                    action: e.action,
                    actor: e.actor,
                    subject: e.subject_id.unwrap_or_default(),
                })
                .collect(),
        },
    ))
}

#[derive(Deserialize)]
pub struct AccountQuery {
    #[serde(default)]
    done: Option<String>,
}

/// `GET /console/account`
pub async fn get_account(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let notice = match query.done.as_deref() {
        Some("password") => Some("Password changed. Your other sessions were signed out."),
        Some("session") => Some("That session was signed out."),
        Some("others") => Some("All your other sessions were signed out."),
        Some("factor-off") => Some("Second factor turned off."),
        _ => None,
    };
    let messages = Messages {
        notice: notice.map(str::to_owned),
        ..Messages::default()
    };
    account_page(&state, &person, StatusCode::OK, messages).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    password: String,
    confirm: String,
    #[serde(default, rename = "username")]
    _username: Option<String>,
}

/// `POST /console/account/password`: needs the current password; signs out every other
/// session.
pub async fn post_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    csrf::check(&req, &state, &person, &form.csrf)?;
    let refuse = |why: String| Messages {
        password_error: Some(why),
        ..Messages::default()
    };
    let account_id = person.account.id.clone();
    let stored = state
        .db
        .run(move |conn| db::credentials::of_account(conn, &account_id))
        .await?
        .map(|c| c.password_hash)
        .unwrap_or_default();
    let current = form.current;
    let matches = state
        .password_work(move || passwords::verify_password(&current, &stored))
        .await
        .unwrap_or(false);
    let problem = if !matches {
        Some("The current password is not right.".to_owned())
    } else if form.password != form.confirm {
        Some("The two new passwords differ.".to_owned())
    } else {
        passwords::check_new_password(&form.password, &person.account.handle)
            .err()
            .map(|e| format!("New password: {e}."))
    };
    if let Some(problem) = problem {
        return account_page(
            &state,
            &person,
            StatusCode::UNPROCESSABLE_ENTITY,
            refuse(problem),
        )
        .await;
    }
    let hash = super::auth::hash_new_password(&state, form.password).await?;
    let now = state.now();
    let (actor, session) = (person.actor(), person.session.clone());
    let account = person.account.clone();
    state
        .db
        .run(move |conn| {
            db::transaction(conn, |conn| {
                db::credentials::set_password(conn, &account.id, &hash, now)?;
                sessions::end_others(conn, &session)?;
                audit::record(
                    conn,
                    &actor,
                    account_event("account.password_changed", &account, None, None),
                    now,
                )
            })
        })
        .await?;
    Ok(see_other("/console/account?done=password"))
}

/// `POST /console/account/sessions/{id}/end`
pub async fn post_end_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    csrf::check(&req, &state, &person, &form.csrf)?;
    let account_id = person.account.id.clone();
    let ended = state
        .db
        .run(move |conn| sessions::end_one(conn, &account_id, &id))
        .await?;
    if !ended {
        return Err(ConsoleError::NotFound);
    }
    Ok(see_other("/console/account?done=session"))
}

/// `POST /console/account/sessions/end-others`
pub async fn post_end_other_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    csrf::check(&req, &state, &person, &form.csrf)?;
    let session = person.session.clone();
    state
        .db
        .run(move |conn| sessions::end_others(conn, &session))
        .await?;
    Ok(see_other("/console/account?done=others"))
}

#[derive(Template)]
#[template(path = "console/totp_setup.html")]
struct TotpSetupPage {
    chrome: Chrome,
    csrf: String,
    handle: String,
    qr_data_url: String,
    secret: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/recovery_codes.html")]
struct RecoveryCodesPage {
    chrome: Chrome,
    codes: Vec<String>,
}

fn qr_data_url(text: &str) -> Result<String, ConsoleError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| ConsoleError::Internal(format!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(svg.as_bytes())
    ))
}

fn factor_error(err: SecondFactorError) -> ConsoleError {
    match err {
        SecondFactorError::Store(err) => ConsoleError::Store(err),
        SecondFactorError::Sealed => {
            ConsoleError::Internal("a second-factor secret does not open".into())
        }
        other => ConsoleError::BadForm(other.to_string()),
    }
}

fn setup_page(
    person: &Person,
    status: StatusCode,
    enrolment: &Enrolment,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    Ok(page(
        status,
        &TotpSetupPage {
            chrome: Chrome::for_person(person, "Set up a second factor", "account"),
            csrf: person.session.csrf_token.clone(),
            handle: person.account.handle.clone(),
            qr_data_url: qr_data_url(&enrolment.otpauth_url)?,
            secret: enrolment.secret_base32.clone(),
            error,
        },
    ))
}

/// `GET /console/account/second-factor`: a new (or the pending) secret as a QR code.
pub async fn get_second_factor(
    state: web::Data<AppState>,
    person: Person,
) -> Result<HttpResponse, ConsoleError> {
    let (master, account) = (state.master_key.clone(), person.account.clone());
    let enrolment = state
        .db
        .run(
            move |conn| match second_factor::pending(conn, &master, &account)? {
                Some(pending) => Ok(pending),
                None => second_factor::begin(conn, &master, &account),
            },
        )
        .await
        .map_err(factor_error)?;
    setup_page(&person, StatusCode::OK, &enrolment, None)
}

/// A second-factor change that the person proves with a code from the form.
type CodeChange<T> =
    fn(&mut DbConn, &MasterKey, &Actor, &Account, &str, i64) -> Result<T, SecondFactorError>;

async fn change_with_code<T: Send + 'static>(
    req: &HttpRequest,
    state: &AppState,
    person: &Person,
    form: CodeForm,
    change: CodeChange<T>,
) -> Result<Result<T, SecondFactorError>, ConsoleError> {
    csrf::check(req, state, person, &form.csrf)?;
    let (master, account, actor, now) = (
        state.master_key.clone(),
        person.account.clone(),
        person.actor(),
        state.now(),
    );
    Ok(state
        .db
        .run(move |conn| change(conn, &master, &actor, &account, &form.code, now))
        .await)
}

/// `POST /console/account/second-factor`: the first code turns it on; the recovery codes
/// are shown once.
pub async fn post_second_factor(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    let confirmed = change_with_code(
        &req,
        &state,
        &person,
        form.into_inner(),
        second_factor::confirm,
    )
    .await?;
    match confirmed {
        Ok(codes) => Ok(ok_page(&RecoveryCodesPage {
            chrome: Chrome::for_person(&person, "Recovery codes", "account"),
            codes,
        })),
        Err(SecondFactorError::WrongCode) => {
            let (master, account) = (state.master_key.clone(), person.account.clone());
            let pending = state
                .db
                .run(move |conn| second_factor::pending(conn, &master, &account))
                .await
                .map_err(factor_error)?
                .ok_or(ConsoleError::NotFound)?;
            setup_page(
                &person,
                StatusCode::UNPROCESSABLE_ENTITY,
                &pending,
                Some(
                    "That code is not right. Check the time on your phone and try the next one."
                        .into(),
                ),
            )
        }
        Err(err) => Err(factor_error(err)),
    }
}

/// `POST /console/account/second-factor/disable`: with a current code.
pub async fn post_disable_second_factor(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, ConsoleError> {
    match change_with_code(
        &req,
        &state,
        &person,
        form.into_inner(),
        second_factor::disable,
    )
    .await?
    {
        Ok(()) => Ok(see_other("/console/account?done=factor-off")),
        Err(SecondFactorError::WrongCode) => {
            let messages = Messages {
                factor_error: Some("That code is not right; the second factor stays on.".into()),
                ..Messages::default()
            };
            account_page(&state, &person, StatusCode::UNPROCESSABLE_ENTITY, messages).await
        }
        Err(err) => Err(factor_error(err)),
    }
}
