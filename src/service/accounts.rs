//! Accounts: the people or systems that hold API keys. Create, list, disable, delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, Actor, Event};
use crate::crypto::secrets::random_id;
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, PairingRefusal, timestamp};
use crate::oauth::{RESERVED_SCOPES, Scope};

/// Handles are 2 to this many characters.
pub const MAX_HANDLE_LEN: usize = 40;
const MAX_LABEL_LEN: usize = 100;

/// Errors of the account, API key and pairing use cases.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account {}", crate::oauth::error::echo(.0))]
    AccountNotFound(String),
    #[error("no API key {}", crate::oauth::error::echo(.0))]
    KeyNotFound(String),
    #[error("no pairing challenge {}", crate::oauth::error::echo(.0))]
    ChallengeNotFound(String),
    #[error("challenge {} is no longer pending", crate::oauth::error::echo(.0))]
    ChallengeNotPending(String),
    #[error("an account with handle {} already exists", crate::oauth::error::echo(.0))]
    HandleTaken(String),
    #[error("{0}")]
    Invalid(String),
    /// An API key tried to act on a key or challenge broader than itself.
    #[error("{0}")]
    Broader(String),
    /// A code exchange was refused (the app is told why, never whether the account exists).
    #[error(transparent)]
    Pairing(#[from] PairingRefusal),
    #[error(transparent)]
    Store(#[from] DbError),
}

impl AccountError {
    /// `err` from a write of a row that belongs to the account `handle`: a foreign key
    /// violation there means the account was deleted after it was read (a concurrent
    /// delete committing in between; SQLite serialises writers, PostgreSQL does not), which
    /// the caller is told as the account not existing rather than as a server error.
    pub fn from_account_write(err: DbError, handle: &str) -> Self {
        if err.is_foreign_key_violation() {
            Self::AccountNotFound(handle.to_owned())
        } else {
            Self::Store(err)
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub operator: bool,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id.clone(),
            handle: account.handle.clone(),
            display_name: account.display_name.clone(),
            scopes: account.scopes.tokens().to_vec(),
            created_at: timestamp(account.created_at),
            disabled: account.is_disabled(),
            disabled_at: account.disabled_at.map(timestamp),
            operator: account.is_operator,
        }
    }
}

/// Lower-cases and checks a handle: 2 to 40 of letters, digits, `-`, `_`, `.`, starting
/// with a letter or digit.
pub fn validate_handle(handle: &str) -> Result<String, AccountError> {
    let handle = handle.trim().to_ascii_lowercase();
    let valid = (2..=MAX_HANDLE_LEN).contains(&handle.len())
        && handle.starts_with(|c: char| c.is_ascii_alphanumeric())
        && handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid {
        Ok(handle)
    } else {
        Err(AccountError::Invalid(format!(
            "handle must be 2 to {MAX_HANDLE_LEN} characters: letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

/// A display name, key name or app name: 1 to 100 characters, no control characters.
pub(crate) fn validate_label(what: &str, text: &str) -> Result<String, AccountError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_LABEL_LEN || text.chars().any(char::is_control)
    {
        return Err(AccountError::Invalid(format!(
            "{what} must be 1 to {MAX_LABEL_LEN} characters without control characters"
        )));
    }
    Ok(text.to_owned())
}

/// The account behind `handle` (any case).
pub fn by_handle(conn: &mut DbConn, handle: &str) -> Result<Account, AccountError> {
    db::accounts::by_handle(conn, &handle.trim().to_ascii_lowercase())?
        .ok_or_else(|| AccountError::AccountNotFound(handle.to_owned()))
}

pub(crate) fn account_event<'a>(
    action: &'a str,
    account: &'a Account,
    subject: Option<&'a str>,
    details: Option<serde_json::Value>,
) -> Event<'a> {
    Event {
        action,
        account_id: Some(&account.id),
        subject_id: subject,
        details,
        ..Event::default()
    }
}

/// What a new account is: its handle, display name (the handle when absent), the scopes its
/// keys may carry, and whether it may use the operators' pages of the console.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub handle: &'a str,
    pub display_name: Option<&'a str>,
    pub scopes: &'a Scope,
    pub operator: bool,
}

pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    new: &NewAccount<'_>,
    now: i64,
) -> Result<AccountView, AccountError> {
    let handle = validate_handle(new.handle)?;
    let scopes = new.scopes;
    if let Some(reserved) = RESERVED_SCOPES.iter().find(|s| scopes.contains(s)) {
        return Err(AccountError::Invalid(format!(
            "scope '{reserved}' is reserved for OAuth clients; API keys cannot carry it"
        )));
    }
    let account = Account {
        id: random_id(),
        display_name: validate_label("name", new.display_name.unwrap_or(&handle))?,
        handle,
        scopes: scopes.clone(),
        created_at: now,
        disabled_at: None,
        is_operator: new.operator,
    };
    db::transaction(conn, |conn| {
        match db::accounts::insert(conn, &account) {
            Err(DbError::Query(e)) if db::is_unique_violation(&e) => {
                return Err(AccountError::HandleTaken(account.handle.clone()));
            }
            other => other?,
        }
        let details = json!({
            "handle": account.handle,
            "scopes": account.scopes.to_string(),
            "operator": account.is_operator,
        });
        audit::record(
            conn,
            actor,
            account_event("account.created", &account, None, Some(details)),
            now,
        )?;
        Ok(AccountView::from(&account))
    })
}

pub fn list(conn: &mut DbConn) -> Result<Vec<AccountView>, AccountError> {
    Ok(db::accounts::list(conn)?
        .iter()
        .map(AccountView::from)
        .collect())
}

pub fn get(conn: &mut DbConn, handle: &str) -> Result<AccountView, AccountError> {
    Ok(AccountView::from(&by_handle(conn, handle)?))
}

/// One change to an account's state, with its audit event: `apply` changes the account
/// (row and value) and names the event, or returns `None` when there was nothing to change.
fn change_account(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    now: i64,
    apply: impl FnOnce(&mut DbConn, &mut Account) -> Result<Option<&'static str>, DbError>,
) -> Result<AccountView, AccountError> {
    db::transaction(conn, |conn| {
        let mut account = by_handle(conn, handle)?;
        if let Some(action) = apply(conn, &mut account)? {
            audit::record(
                conn,
                actor,
                account_event(action, &account, None, None),
                now,
            )?;
        }
        Ok(AccountView::from(&account))
    })
}

/// Disabling stops every key of the account at once (keys are checked with their account
/// on every use); enabling brings back the keys that were not revoked.
pub fn set_disabled(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    disabled: bool,
    now: i64,
) -> Result<AccountView, AccountError> {
    change_account(conn, actor, handle, now, |conn, account| {
        if account.is_disabled() == disabled {
            return Ok(None);
        }
        account.disabled_at = disabled.then_some(now);
        db::accounts::set_disabled(conn, &account.id, account.disabled_at)?;
        if !disabled {
            return Ok(Some("account.enabled"));
        }
        // A disabled person is signed out everywhere at once, not at the next idle timeout.
        db::console_sessions::delete_for_account(conn, &account.id)?;
        Ok(Some("account.disabled"))
    })
}

/// Gives or takes the operator role (the console's operator pages). Taking it ends nothing
/// else: the person's own keys and sessions stay, but operator pages refuse them at once.
pub fn set_operator(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    operator: bool,
    now: i64,
) -> Result<AccountView, AccountError> {
    change_account(conn, actor, handle, now, |conn, account| {
        if account.is_operator == operator {
            return Ok(None);
        }
        account.is_operator = operator;
        db::accounts::set_operator(conn, &account.id, operator)?;
        Ok(Some(if operator {
            "account.promoted"
        } else {
            "account.demoted"
        }))
    })
}

/// Deletes the account with its keys and pairing challenges.
pub fn delete(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    now: i64,
) -> Result<(), AccountError> {
    db::transaction(conn, |conn| {
        let account = by_handle(conn, handle)?;
        db::accounts::delete(conn, &account.id)?;
        audit::record(
            conn,
            actor,
            account_event(
                "account.deleted",
                &account,
                None,
                Some(json!({"handle": account.handle})),
            ),
            now,
        )?;
        Ok(())
    })
}
