//! Browser app authorization, Misskey's MiAuth: an app that can open a browser sends the
//! person to `/console/authorize-app?session=<uuid>&name=…&permission=…&callback=…`; the
//! signed-in person approves or denies; the app then checks the session once and, when
//! approved, receives a new API key for the account.
//!
//! The session id is the app's secret (a random UUID it made), single use: it is bound to the
//! first person who opens it, expires [`AUTHORIZATION_TTL_SECONDS`] later, and yields a key
//! at most once. The key is made only when the app collects it, so no key is ever stored
//! waiting in plaintext.

use serde_json::json;

use super::accounts::{AccountError, account_event, validate_label};
use super::api_keys::{self, ApiKeyView, KeySpec};
use super::audit::{self, Actor};
use crate::crypto::secrets::ApiKeySecret;
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, AppAuthorization, AppAuthorizationStatus};
use crate::oauth::{RESERVED_SCOPES, Scope};

/// How long a person has to decide, and the app to collect its key after approval.
pub const AUTHORIZATION_TTL_SECONDS: i64 = 15 * 60;
const MAX_CALLBACK_LEN: usize = 2000;

/// What an app asks for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRequest {
    pub session_id: String,
    pub app_name: String,
    pub scopes: Scope,
    pub callback: Option<String>,
}

/// A UUID in its usual 8-4-4-4-12 hex form, lower-cased.
fn parse_session_id(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    let valid = groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()));
    valid.then_some(text)
}

/// An absolute http(s) URL without credentials or fragment: where the browser returns.
fn parse_callback(text: &str) -> Result<String, AccountError> {
    let refused = || {
        AccountError::Invalid(
            "callback must be an absolute http or https URL without user info or fragment".into(),
        )
    };
    if text.len() > MAX_CALLBACK_LEN {
        return Err(refused());
    }
    let url = url::Url::parse(text.trim()).map_err(|_| refused())?;
    let acceptable = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none();
    if acceptable {
        Ok(url.to_string())
    } else {
        Err(refused())
    }
}

/// Checks the query an app sent the browser with. `permission` is comma-separated (as
/// MiAuth writes it) or space-separated.
pub fn parse_request(
    session: &str,
    name: &str,
    permission: &str,
    callback: Option<&str>,
) -> Result<AppRequest, AccountError> {
    let session_id = parse_session_id(session)
        .ok_or_else(|| AccountError::Invalid("session must be a UUID made by the app".into()))?;
    let app_name = validate_label("name", name)?;
    let scopes = Scope::parse(&permission.replace(',', " "))
        .map_err(|e| AccountError::Invalid(format!("permission: {}", e.0)))?;
    if scopes.is_empty() {
        return Err(AccountError::Invalid(
            "permission must name at least one scope".into(),
        ));
    }
    if let Some(reserved) = RESERVED_SCOPES.iter().find(|s| scopes.contains(s)) {
        return Err(AccountError::Invalid(format!(
            "permission {reserved:?} is reserved for OAuth clients"
        )));
    }
    let callback = callback
        .filter(|c| !c.trim().is_empty())
        .map(parse_callback)
        .transpose()?;
    Ok(AppRequest {
        session_id,
        app_name,
        scopes,
        callback,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    /// Used, decided, expired or opened by someone else: one answer for all.
    #[error("this authorization link was already used or has expired; start again from the app")]
    Spent,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// The person opens the link: binds a new session to them, or finds the one they opened
/// before (a reload). The key will carry the requested scopes the account holds.
pub fn open(
    conn: &mut DbConn,
    account: &Account,
    request: &AppRequest,
    now: i64,
) -> Result<AppAuthorization, AuthorizationError> {
    if let Some(existing) = db::app_authorizations::find(conn, &request.session_id)? {
        let same = existing.account_id.as_deref() == Some(account.id.as_str())
            && existing.app_name == request.app_name
            && existing.scopes == request.scopes
            && existing.callback == request.callback;
        return if same
            && existing.status == AppAuthorizationStatus::Pending
            && existing.expires_at > now
        {
            Ok(existing)
        } else {
            Err(AuthorizationError::Spent)
        };
    }
    let authorization = AppAuthorization {
        session_id: request.session_id.clone(),
        account_id: Some(account.id.clone()),
        app_name: request.app_name.clone(),
        scopes: request.scopes.clone(),
        callback: request.callback.clone(),
        status: AppAuthorizationStatus::Pending,
        created_at: now,
        expires_at: now + AUTHORIZATION_TTL_SECONDS,
        resolved_at: None,
        api_key_id: None,
    };
    match db::app_authorizations::insert(conn, &authorization) {
        Err(DbError::Query(e)) if db::is_unique_violation(&e) => Err(AuthorizationError::Spent),
        // Deleted since it was read (a concurrent delete).
        Err(err) if err.is_foreign_key_violation() => {
            Err(AccountError::AccountNotFound(account.handle.clone()).into())
        }
        other => other.map(|()| authorization).map_err(Into::into),
    }
}

/// The person's decision. Returns the authorization (for its callback).
pub fn decide(
    conn: &mut DbConn,
    actor: &Actor,
    account: &Account,
    session_id: &str,
    approve: bool,
    now: i64,
) -> Result<AppAuthorization, AuthorizationError> {
    db::transaction(conn, |conn| {
        let authorization = db::app_authorizations::find(conn, session_id)?
            .filter(|a| {
                a.account_id.as_deref() == Some(account.id.as_str())
                    && a.status == AppAuthorizationStatus::Pending
                    && a.expires_at > now
            })
            .ok_or(AuthorizationError::Spent)?;
        let to = if approve {
            AppAuthorizationStatus::Approved
        } else {
            AppAuthorizationStatus::Denied
        };
        if !db::app_authorizations::transition(
            conn,
            session_id,
            AppAuthorizationStatus::Pending,
            to,
            None,
            now,
        )? {
            return Err(AuthorizationError::Spent);
        }
        let action = if approve {
            "app_authorization.approved"
        } else {
            "app_authorization.denied"
        };
        let details = json!({
            "app_name": authorization.app_name,
            "scopes": authorization.scopes.to_string(),
        });
        audit::record(
            conn,
            actor,
            account_event(action, account, None, Some(details)),
            now,
        )?;
        Ok(authorization)
    })
}

/// What the app learns when it checks its session.
#[derive(Debug)]
pub enum CheckOutcome {
    /// Approved: the key, shown this once, and its account.
    Granted(Box<Grant>),
    /// Unknown, pending, denied, expired or already collected.
    NotGranted,
}

#[derive(Debug)]
pub struct Grant {
    pub key: ApiKeyView,
    pub secret: ApiKeySecret,
    pub account: Account,
}

/// The app collects its key: once, within the time limit, only after approval.
pub fn check(conn: &mut DbConn, session_id: &str, now: i64) -> Result<CheckOutcome, DbError> {
    let Some(session_id) = parse_session_id(session_id) else {
        return Ok(CheckOutcome::NotGranted);
    };
    db::transaction(conn, |conn| {
        let Some(authorization) = db::app_authorizations::find(conn, &session_id)? else {
            return Ok(CheckOutcome::NotGranted);
        };
        if authorization.status != AppAuthorizationStatus::Approved
            || authorization.expires_at <= now
        {
            return Ok(CheckOutcome::NotGranted);
        }
        let account = match authorization.account_id.as_deref() {
            Some(id) => db::accounts::by_id(conn, id)?,
            None => None,
        };
        let Some(account) = account.filter(|a| !a.is_disabled()) else {
            return Ok(CheckOutcome::NotGranted);
        };
        let spec = KeySpec {
            name: authorization.app_name.clone(),
            scopes: Some(authorization.scopes.intersection(&account.scopes)),
            expires_in: None,
        };
        let actor = Actor::app(&authorization.app_name);
        let (key, secret) = match api_keys::create(conn, &actor, &account, &spec, now) {
            Ok(created) => created,
            Err(AccountError::Store(err)) => return Err(err),
            // The account lost every asked-for scope or similar: nothing to give.
            Err(_) => return Ok(CheckOutcome::NotGranted),
        };
        if !db::app_authorizations::transition(
            conn,
            &session_id,
            AppAuthorizationStatus::Approved,
            AppAuthorizationStatus::Claimed,
            Some(&key.id),
            now,
        )? {
            // Another check collected it first; roll this key back.
            return Err(DbError::Query(diesel::result::Error::RollbackTransaction));
        }
        Ok(CheckOutcome::Granted(Box::new(Grant {
            key,
            secret,
            account,
        })))
    })
}

/// Maintenance: drops authorizations a day after they expired.
pub fn prune(conn: &mut DbConn, now: i64) -> Result<usize, DbError> {
    db::app_authorizations::delete_expired(conn, now - 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_need_a_uuid_a_name_scopes_and_a_safe_callback() {
        let ok = parse_request(
            "0F8E4B6A-1C2D-4E5F-8A9B-0C1D2E3F4A5B",
            "Photo Backup",
            "read,write",
            Some("https://app.example/done?x=1"),
        )
        .unwrap();
        assert_eq!(ok.session_id, "0f8e4b6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(ok.scopes, Scope::parse("read write").unwrap());
        assert_eq!(ok.callback.as_deref(), Some("https://app.example/done?x=1"));
        let session = "0f8e4b6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
        for (session, name, permission, callback) in [
            ("not-a-uuid", "app", "read", None),
            (session, "", "read", None),
            (session, "app", "", None),
            (session, "app", "admin", None),
            (session, "app", "read", Some("/relative")),
            (session, "app", "read", Some("javascript:alert(1)")),
            (session, "app", "read", Some("ftp://app.example/")),
            (session, "app", "read", Some("https://user:pw@app.example/")),
            (session, "app", "read", Some("https://app.example/#frag")),
        ] {
            assert!(
                parse_request(session, name, permission, callback).is_err(),
                "{session} {name} {permission} {callback:?}"
            );
        }
    }
}
