//! Accounts: list, create, invite (or password reset) links, disable/enable, and the
//! operator flag. Operators cannot disable or demote themselves, so that someone is always
//! left to manage the server.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{ConfirmPage, CsrfOnly, DoneQuery, Fields};
use crate::app::AppState;
use crate::http::console::error::ConsoleError;
use crate::http::console::session::Person;
use crate::http::console::{Chrome, csrf, human_time, ok_page, page, see_other};
use crate::oauth::Scope;
use crate::service::accounts::{self, AccountError, AccountView, NewAccount};
use crate::service::invites;

const NAV: &str = "accounts";

pub struct AccountRow {
    handle: String,
    name: String,
    scopes: Vec<String>,
    operator: bool,
    disabled: bool,
    created: String,
    me: bool,
}

impl AccountRow {
    fn new(view: AccountView, me: &str) -> Self {
        Self {
            me: view.handle == me,
            created: human_time(view.created_at),
            handle: view.handle,
            name: view.display_name,
            scopes: view.scopes,
            operator: view.operator,
            disabled: view.disabled,
        }
    }
}

#[derive(Default)]
pub struct AccountForm {
    handle: String,
    name: String,
    scopes: String,
    operator: bool,
    handle_error: Option<String>,
    name_error: Option<String>,
    scopes_error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/operator/accounts.html")]
struct AccountsPage {
    chrome: Chrome,
    csrf: String,
    accounts: Vec<AccountRow>,
    notice: Option<&'static str>,
    error: Option<String>,
    form: AccountForm,
}

#[derive(Template)]
#[template(path = "console/operator/invite_link.html")]
struct InviteLinkPage {
    chrome: Chrome,
    handle: String,
    url: String,
    expires: String,
}

async fn accounts_page(
    state: &AppState,
    person: &Person,
    status: StatusCode,
    form: AccountForm,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, ConsoleError> {
    let list = state.db.run(accounts::list).await?;
    let me = &person.account.handle;
    Ok(page(
        status,
        &AccountsPage {
            chrome: Chrome::for_person(person, "Accounts", NAV),
            csrf: person.session.csrf_token.clone(),
            accounts: list.into_iter().map(|a| AccountRow::new(a, me)).collect(),
            notice,
            error,
            form,
        },
    ))
}

/// `GET /console/operator/accounts`
pub async fn get_accounts(
    state: web::Data<AppState>,
    person: Person,
    query: web::Query<DoneQuery>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let notice = match query.done.as_deref() {
        Some("created") => Some("Account created. Make an invite link so that they can sign in."),
        Some("disabled") => {
            Some("Account disabled: its keys stopped working and it was signed out.")
        }
        Some("enabled") => Some("Account enabled."),
        Some("promoted") => Some("The account is now an operator."),
        Some("demoted") => Some("The account is no longer an operator."),
        _ => None,
    };
    accounts_page(
        &state,
        &person,
        StatusCode::OK,
        AccountForm::default(),
        notice,
        None,
    )
    .await
}

/// `POST /console/operator/accounts`: creates an account.
pub async fn post_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    body: web::Bytes,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let fields = Fields::parse(&body)?;
    csrf::check(&req, &state, &person, &fields.get("csrf"))?;
    let mut form = AccountForm {
        handle: fields.get("handle"),
        name: fields.get("name"),
        scopes: fields.get("scopes"),
        operator: fields.has("operator"),
        ..AccountForm::default()
    };
    match Scope::parse(&form.scopes) {
        Err(e) => form.scopes_error = Some(e.0),
        Ok(scopes) => {
            let (actor, now) = (person.actor(), state.now());
            let (handle, name, operator) = (form.handle.clone(), form.name.clone(), form.operator);
            let created = state
                .db
                .run(move |conn| {
                    let new = NewAccount {
                        handle: &handle,
                        display_name: Some(name.trim()).filter(|n| !n.is_empty()),
                        scopes: &scopes,
                        operator,
                    };
                    accounts::create(conn, &actor, &new, now)
                })
                .await;
            match created {
                Ok(_) => return Ok(see_other("/console/operator/accounts?done=created")),
                Err(AccountError::HandleTaken(_)) => {
                    form.handle_error = Some("An account with this handle exists already.".into());
                }
                Err(AccountError::Invalid(why)) if why.starts_with("handle") => {
                    form.handle_error = Some(capitalized(&why));
                }
                Err(AccountError::Invalid(why)) if why.starts_with("name") => {
                    form.name_error = Some(capitalized(&why));
                }
                Err(AccountError::Invalid(why)) => form.scopes_error = Some(capitalized(&why)),
                Err(err) => return Err(err.into()),
            }
        }
    }
    accounts_page(
        &state,
        &person,
        StatusCode::UNPROCESSABLE_ENTITY,
        form,
        None,
        None,
    )
    .await
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AccountAction {
    Invite,
    Disable,
    Enable,
    Promote,
    Demote,
}

impl AccountAction {
    fn parse(text: &str) -> Result<Self, ConsoleError> {
        Ok(match text {
            "invite" => Self::Invite,
            "disable" => Self::Disable,
            "enable" => Self::Enable,
            "promote" => Self::Promote,
            "demote" => Self::Demote,
            _ => return Err(ConsoleError::NotFound),
        })
    }

    fn done(self) -> &'static str {
        match self {
            Self::Invite => "invited",
            Self::Disable => "disabled",
            Self::Enable => "enabled",
            Self::Promote => "promoted",
            Self::Demote => "demoted",
        }
    }
}

/// Operators cannot lock themselves out: someone who can undo it always remains.
fn refuse_self(person: &Person, handle: &str, action: AccountAction) -> Option<String> {
    let own = person.account.handle.eq_ignore_ascii_case(handle.trim());
    match action {
        AccountAction::Disable if own => Some(
            "You cannot disable your own account. Ask another operator if it must be disabled."
                .into(),
        ),
        AccountAction::Demote if own => Some(
            "You cannot take away your own operator role. Ask another operator if it must go."
                .into(),
        ),
        _ => None,
    }
}

/// `GET /console/operator/accounts/{handle}/{action}`: says what will happen and asks.
pub async fn get_account_action(
    state: web::Data<AppState>,
    person: Person,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let (handle, action_text) = path.into_inner();
    let action = AccountAction::parse(&action_text)?;
    if let Some(why) = refuse_self(&person, &handle, action) {
        return refused(&state, &person, why).await;
    }
    let account = state
        .db
        .run(move |conn| accounts::get(conn, &handle))
        .await?;
    let handle = &account.handle;
    let hours = state.settings.console.invite_ttl_seconds / 3600;
    let (heading, message, button, danger) = match action {
        AccountAction::Invite => (
            format!("Make a sign-in link for {handle}?"),
            format!(
                "A one-time link is shown once, for you to give to {handle}: it lets them choose \
                 a password and sign in, and works for {hours} hours. Use it for new people and \
                 for forgotten passwords. Earlier unused links of this account stop working."
            ),
            "Make link",
            false,
        ),
        AccountAction::Disable => (
            format!("Disable {handle}?"),
            format!(
                "Every API key of {handle} stops working and every session of theirs ends at \
                 once. Enabling the account later brings back the keys that were not revoked."
            ),
            "Disable account",
            true,
        ),
        AccountAction::Enable => (
            format!("Enable {handle}?"),
            format!("{handle} can sign in again, and their keys that were not revoked work again."),
            "Enable account",
            false,
        ),
        AccountAction::Promote => (
            format!("Make {handle} an operator?"),
            format!(
                "{handle} can then manage clients, signing keys, accounts and read the audit \
                 trail here."
            ),
            "Make operator",
            false,
        ),
        AccountAction::Demote => (
            format!("Take the operator role from {handle}?"),
            format!(
                "The operators' pages refuse {handle} at once. Their own keys and sessions stay."
            ),
            "Take operator role",
            true,
        ),
    };
    Ok(ok_page(&ConfirmPage::new(
        &person,
        NAV,
        heading,
        message,
        format!("/console/operator/accounts/{handle}/{action_text}"),
        button,
        danger,
        "/console/operator/accounts".into(),
    )))
}

async fn refused(
    state: &AppState,
    person: &Person,
    why: String,
) -> Result<HttpResponse, ConsoleError> {
    accounts_page(
        state,
        person,
        StatusCode::CONFLICT,
        AccountForm::default(),
        None,
        Some(why),
    )
    .await
}

/// `POST /console/operator/accounts/{handle}/{action}`
pub async fn post_account_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    person: Person,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, ConsoleError> {
    person.operator()?;
    let (handle, action) = path.into_inner();
    let action = AccountAction::parse(&action)?;
    csrf::check(&req, &state, &person, &form.csrf)?;
    if let Some(why) = refuse_self(&person, &handle, action) {
        return refused(&state, &person, why).await;
    }
    let (actor, now) = (person.actor(), state.now());
    match action {
        AccountAction::Invite => {
            let (issuer, ttl) = (
                state.settings.issuer.clone(),
                state.settings.console.invite_ttl_seconds,
            );
            let link = state
                .db
                .run(move |conn| invites::create(conn, &actor, &handle, &issuer, ttl, now))
                .await?;
            Ok(ok_page(&InviteLinkPage {
                chrome: Chrome::for_person(&person, "Sign-in link", NAV),
                handle: link.handle,
                url: link.url,
                expires: human_time(link.expires_at),
            }))
        }
        AccountAction::Disable | AccountAction::Enable => {
            let disabled = action == AccountAction::Disable;
            state
                .db
                .run(move |conn| accounts::set_disabled(conn, &actor, &handle, disabled, now))
                .await?;
            Ok(see_other(&format!(
                "/console/operator/accounts?done={}",
                action.done()
            )))
        }
        AccountAction::Promote | AccountAction::Demote => {
            let operator = action == AccountAction::Promote;
            state
                .db
                .run(move |conn| accounts::set_operator(conn, &actor, &handle, operator, now))
                .await?;
            Ok(see_other(&format!(
                "/console/operator/accounts?done={}",
                action.done()
            )))
        }
    }
}
