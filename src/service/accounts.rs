//! Accounts and their API keys: create, list, revoke, delete, authenticate; and app
//! pairing, where an app trades a challenge id and the owner's 4-digit code for a key.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::audit::{self, Actor, Event};
use super::{split_list, timestamp};
use crate::crypto::secrets::{ApiKeySecret, random_bytes, random_id};
use crate::db::models::{
    AccountRow, ApiKeyRow, ChallengeRow, NewAccountRow, NewApiKeyRow, NewChallengeRow,
};
use crate::db::{self, DbConn, DbError};
use crate::oauth::Scope;

/// The scope an API key needs to manage keys and pairing requests of its account.
pub const KEYS_SCOPE: &str = "keys";
/// Scopes that only OAuth clients may hold: an API key (or a token exchanged for one) must
/// never reach the admin API or introspection.
pub const RESERVED_SCOPES: [&str; 2] = [
    crate::service::tokens::ADMIN_SCOPE,
    crate::service::tokens::INTROSPECT_SCOPE,
];
/// How long a pairing challenge lives.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Wrong codes before a challenge dies.
pub const MAX_CODE_ATTEMPTS: i32 = 3;
/// Wrong codes per account per day, across all its challenges: a guesser's odds stay
/// below 10 in 10,000 a day however many challenges they open.
pub const MAX_FAILED_CODES_PER_DAY: i64 = 10;
const MAX_REQUESTED_SCOPES: usize = 16;
const MAX_NAME_LEN: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no account {0:?}")]
    AccountNotFound(String),
    #[error("no API key {0:?}")]
    KeyNotFound(String),
    #[error("an account with handle {0:?} already exists")]
    HandleTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

impl From<diesel::result::Error> for AccountError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Store(DbError::Query(err))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<&AccountRow> for AccountView {
    fn from(row: &AccountRow) -> Self {
        Self {
            id: row.id.clone(),
            handle: row.handle.clone(),
            display_name: row.display_name.clone(),
            scopes: split_list(&row.scopes),
            created_at: timestamp(row.created_at),
            disabled: row.disabled_at.is_some(),
            disabled_at: row.disabled_at.map(timestamp),
        }
    }
}

/// An API key as listed: never the key itself nor its digest.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to tell keys apart (not secret).
    pub prefix: String,
    pub scopes: Vec<String>,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyView {
    pub fn from_row(row: &ApiKeyRow, now: i64) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            prefix: row.prefix.clone(),
            scopes: split_list(&row.scopes),
            status: key_status(row, now),
            created_at: timestamp(row.created_at),
            last_used_at: row.last_used_at.map(timestamp),
            expires_at: row.expires_at.map(timestamp),
            revoked_at: row.revoked_at.map(timestamp),
        }
    }
}

fn key_status(row: &ApiKeyRow, now: i64) -> &'static str {
    if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

fn validate_handle(handle: &str) -> Result<String, AccountError> {
    let handle = handle.trim().to_ascii_lowercase();
    let valid = (2..=40).contains(&handle.len())
        && handle.starts_with(|c: char| c.is_ascii_alphanumeric())
        && handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid {
        Ok(handle)
    } else {
        Err(AccountError::Invalid(
            "handle must be 2 to 40 characters: letters, digits, '-', '_' or '.', starting with a letter or digit".into(),
        ))
    }
}

fn validate_label(what: &str, text: &str) -> Result<String, AccountError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NAME_LEN || text.chars().any(char::is_control)
    {
        return Err(AccountError::Invalid(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters without control characters"
        )));
    }
    Ok(text.to_owned())
}

fn account_by_handle(conn: &mut DbConn, handle: &str) -> Result<AccountRow, AccountError> {
    db::accounts::by_handle(conn, &handle.trim().to_ascii_lowercase())?
        .ok_or_else(|| AccountError::AccountNotFound(handle.to_owned()))
}

fn account_event<'a>(
    action: &'a str,
    account: &'a AccountRow,
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

pub fn create_account(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    display_name: Option<&str>,
    scopes: &Scope,
    now: i64,
) -> Result<AccountView, AccountError> {
    let handle = validate_handle(handle)?;
    if let Some(reserved) = RESERVED_SCOPES.iter().find(|s| scopes.contains(s)) {
        return Err(AccountError::Invalid(format!(
            "scope {reserved:?} is reserved for OAuth clients; API keys cannot carry it"
        )));
    }
    let display_name = validate_label("name", display_name.unwrap_or(&handle))?;
    let id = random_id();
    let scopes_text = scopes.to_string();
    let inserted = db::accounts::insert(
        conn,
        &NewAccountRow {
            id: &id,
            handle: &handle,
            display_name: &display_name,
            scopes: &scopes_text,
            created_at: now,
        },
    );
    match inserted {
        Err(e) if db::is_unique_violation(&e) => return Err(AccountError::HandleTaken(handle)),
        other => other?,
    }
    let account = account_by_handle(conn, &handle)?;
    audit::record(
        conn,
        actor,
        account_event(
            "account.created",
            &account,
            None,
            Some(json!({"handle": handle, "scopes": scopes_text})),
        ),
        now,
    )?;
    Ok(AccountView::from(&account))
}

pub fn list_accounts(conn: &mut DbConn) -> Result<Vec<AccountView>, AccountError> {
    Ok(db::accounts::list(conn)?
        .iter()
        .map(AccountView::from)
        .collect())
}

pub fn get_account(conn: &mut DbConn, handle: &str) -> Result<AccountView, AccountError> {
    Ok(AccountView::from(&account_by_handle(conn, handle)?))
}

/// Disabling stops every key of the account at once (keys are checked with their account
/// on every use); enabling brings back the keys that were not revoked.
pub fn set_account_disabled(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    disabled: bool,
    now: i64,
) -> Result<AccountView, AccountError> {
    let account = account_by_handle(conn, handle)?;
    if account.disabled_at.is_some() != disabled {
        db::accounts::set_disabled(conn, &account.id, disabled.then_some(now))?;
        let action = if disabled {
            "account.disabled"
        } else {
            "account.enabled"
        };
        audit::record(
            conn,
            actor,
            account_event(action, &account, None, None),
            now,
        )?;
    }
    get_account(conn, handle)
}

/// Deletes the account and its keys.
pub fn delete_account(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    now: i64,
) -> Result<(), AccountError> {
    let account = account_by_handle(conn, handle)?;
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
}

/// What a new key may do.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    pub name: String,
    /// Default: every scope of the account.
    pub scopes: Option<Scope>,
    pub expires_in: Option<i64>,
}

/// Creates a key; the plaintext is returned once and never stored.
pub fn create_key(
    conn: &mut DbConn,
    actor: &Actor,
    account: &AccountRow,
    spec: &KeySpec,
    now: i64,
) -> Result<(ApiKeyView, ApiKeySecret), AccountError> {
    let name = validate_label("name", &spec.name)?;
    let allowed = Scope::parse(&account.scopes).unwrap_or_default();
    let scopes = match &spec.scopes {
        Some(scopes) if !scopes.is_subset_of(&allowed) => {
            return Err(AccountError::Invalid(format!(
                "the account may not grant: {}",
                scopes.not_in(&allowed).collect::<Vec<_>>().join(" ")
            )));
        }
        Some(scopes) => scopes.clone(),
        None => allowed,
    };
    let expires_at = match spec.expires_in {
        Some(seconds) if !(60..=super::clients::MAX_TTL_SECONDS).contains(&seconds) => {
            return Err(AccountError::Invalid(
                "expires_in must be between 60 seconds and ten years".into(),
            ));
        }
        Some(seconds) => Some(now + seconds),
        None => None,
    };
    let secret = ApiKeySecret::generate();
    let id = random_id();
    let (prefix, digest, scopes_text) = (secret.short_id(), secret.digest(), scopes.to_string());
    db::accounts::insert_key(
        conn,
        &NewApiKeyRow {
            id: &id,
            account_id: &account.id,
            name: &name,
            prefix: &prefix,
            digest: digest.as_bytes(),
            scopes: &scopes_text,
            created_at: now,
            expires_at,
        },
    )?;
    let details =
        json!({"name": name, "prefix": prefix, "scopes": scopes_text, "expires_at": expires_at});
    audit::record(
        conn,
        actor,
        account_event("api_key.created", account, Some(&id), Some(details)),
        now,
    )?;
    let (row, _) =
        db::accounts::key_by_id(conn, &id)?.ok_or_else(|| AccountError::KeyNotFound(id.clone()))?;
    Ok((ApiKeyView::from_row(&row, now), secret))
}

/// A key creating another key (account API) cannot hand out more than it holds: the new
/// key's scopes are within the presenting key's, and it expires no later.
pub fn delegated_spec(
    presenting: &ApiKeyRow,
    mut spec: KeySpec,
    now: i64,
) -> Result<KeySpec, AccountError> {
    let held = Scope::parse(&presenting.scopes).unwrap_or_default();
    match &spec.scopes {
        Some(asked) if !asked.is_subset_of(&held) => {
            return Err(AccountError::Invalid(format!(
                "a key can only create keys with its own scopes or fewer; not: {}",
                asked.not_in(&held).collect::<Vec<_>>().join(" ")
            )));
        }
        Some(_) => {}
        None => spec.scopes = Some(held),
    }
    if let Some(expires_at) = presenting.expires_at {
        let remaining = expires_at - now;
        spec.expires_in = Some(
            spec.expires_in
                .map_or(remaining, |asked| asked.min(remaining)),
        );
    }
    Ok(spec)
}

/// CLI and admin API: a key for the account named by `handle`.
pub fn create_key_for(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    spec: &KeySpec,
    now: i64,
) -> Result<(ApiKeyView, ApiKeySecret), AccountError> {
    let account = account_by_handle(conn, handle)?;
    create_key(conn, actor, &account, spec, now)
}

pub fn list_keys(
    conn: &mut DbConn,
    account_id: &str,
    now: i64,
) -> Result<Vec<ApiKeyView>, AccountError> {
    Ok(db::accounts::keys_of(conn, account_id)?
        .iter()
        .map(|row| ApiKeyView::from_row(row, now))
        .collect())
}

pub fn list_keys_for(
    conn: &mut DbConn,
    handle: &str,
    now: i64,
) -> Result<Vec<ApiKeyView>, AccountError> {
    let account = account_by_handle(conn, handle)?;
    list_keys(conn, &account.id, now)
}

/// The key `id`, if it belongs to `account_id` (when given: the account API may touch only
/// its own keys; the CLI and admin API any).
fn owned_key(
    conn: &mut DbConn,
    id: &str,
    account_id: Option<&str>,
) -> Result<(ApiKeyRow, AccountRow), AccountError> {
    match db::accounts::key_by_id(conn, id)? {
        Some((key, account)) if account_id.is_none_or(|owner| owner == account.id) => {
            Ok((key, account))
        }
        _ => Err(AccountError::KeyNotFound(id.to_owned())),
    }
}

/// Revokes at once; the key stays listed as revoked.
pub fn revoke_key(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    account_id: Option<&str>,
    now: i64,
) -> Result<ApiKeyView, AccountError> {
    let (_, account) = owned_key(conn, id, account_id)?;
    if db::accounts::revoke_key(conn, id, now)? {
        audit::record(
            conn,
            actor,
            account_event("api_key.revoked", &account, Some(id), None),
            now,
        )?;
    }
    let (row, _) = owned_key(conn, id, account_id)?;
    Ok(ApiKeyView::from_row(&row, now))
}

/// Deletes for good; the key disappears from the list.
pub fn delete_key(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    account_id: Option<&str>,
    now: i64,
) -> Result<(), AccountError> {
    let (key, account) = owned_key(conn, id, account_id)?;
    db::accounts::delete_key(conn, id)?;
    audit::record(
        conn,
        actor,
        account_event(
            "api_key.deleted",
            &account,
            Some(id),
            Some(json!({"name": key.name, "prefix": key.prefix})),
        ),
        now,
    )?;
    Ok(())
}

/// Why a presented API key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error("the API key is malformed or mistyped")]
    Malformed,
    #[error("the API key is unknown, revoked or expired")]
    Invalid,
    #[error("the account is disabled")]
    AccountDisabled,
}

/// Keeps `last_used_at` accurate to about a minute without a write per request: a use
/// is noted in memory when the stored value is a minute old, and the maintenance task
/// writes the notes out.
#[derive(Default)]
pub struct UsageTracker {
    pending: Mutex<HashMap<String, i64>>,
}

/// How stale `last_used_at` may get.
pub const LAST_USED_PRECISION_SECONDS: i64 = 60;

impl UsageTracker {
    fn note(&self, key_id: &str, at: i64) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(key_id.to_owned(), at);
        }
    }

    /// Writes pending uses; returns how many keys were updated.
    pub fn flush(&self, conn: &mut DbConn) -> Result<usize, DbError> {
        let pending: Vec<(String, i64)> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().collect(),
            Err(_) => return Ok(0),
        };
        let mut written = 0;
        for (id, at) in pending {
            if db::accounts::touch_key(conn, &id, at)? {
                written += 1;
            }
        }
        Ok(written)
    }
}

/// Checks a presented key: format and checksum first (no lookup for a typo), then one
/// indexed read by digest, with the account. The first use is written (and audited) at
/// once; later uses go through the tracker.
pub fn authenticate_key(
    conn: &mut DbConn,
    usage: &UsageTracker,
    presented: &str,
    now: i64,
) -> Result<Result<(ApiKeyRow, AccountRow), KeyRejection>, DbError> {
    let Ok(secret) = ApiKeySecret::parse(presented) else {
        return Ok(Err(KeyRejection::Malformed));
    };
    let Some((key, account)) = db::accounts::key_by_digest(conn, secret.digest().as_bytes())?
    else {
        return Ok(Err(KeyRejection::Invalid));
    };
    if key_status(&key, now) != "active" {
        return Ok(Err(KeyRejection::Invalid));
    }
    if account.disabled_at.is_some() {
        return Ok(Err(KeyRejection::AccountDisabled));
    }
    match key.last_used_at {
        None => {
            if db::accounts::touch_key(conn, &key.id, now)? {
                audit::record(
                    conn,
                    &Actor::account(&account.handle),
                    account_event("api_key.first_used", &account, Some(&key.id), None),
                    now,
                )?;
            }
        }
        Some(last) if now - last >= LAST_USED_PRECISION_SECONDS => usage.note(&key.id, now),
        Some(_) => {}
    }
    Ok(Ok((key, account)))
}

// ---- App pairing ----

#[derive(Debug, Clone, Serialize)]
pub struct ChallengeView {
    pub id: String,
    pub app_name: String,
    pub scopes: Vec<String>,
    /// The 4-digit code the owner gives the app.
    pub code: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<&ChallengeRow> for ChallengeView {
    fn from(row: &ChallengeRow) -> Self {
        Self {
            id: row.id.clone(),
            app_name: row.app_name.clone(),
            scopes: split_list(&row.scopes),
            code: row.code.clone(),
            created_at: timestamp(row.created_at),
            expires_at: timestamp(row.expires_at),
        }
    }
}

/// A uniformly random 4-digit code (rejection sampling: no modulo bias).
fn random_code() -> String {
    loop {
        let value = u16::from_be_bytes(random_bytes::<2>());
        if value < 60_000 {
            return format!("{:04}", value % 10_000);
        }
    }
}

/// Starts pairing. Answers alike whether or not the account exists: for an unknown or
/// disabled account the challenge is stored without one and can never succeed.
pub fn create_challenge(
    conn: &mut DbConn,
    app_name: &str,
    account_handle: &str,
    scopes: &Scope,
    now: i64,
) -> Result<ChallengeView, AccountError> {
    let app_name = validate_label("app_name", app_name)?;
    let handle = validate_handle(account_handle)?;
    if scopes.is_empty() || scopes.tokens().len() > MAX_REQUESTED_SCOPES {
        return Err(AccountError::Invalid(format!(
            "ask for 1 to {MAX_REQUESTED_SCOPES} scopes"
        )));
    }
    let mut account = db::accounts::by_handle(conn, &handle)?.filter(|a| a.disabled_at.is_none());
    // Past its daily budget of wrong codes, an account gets challenges that can never
    // succeed (answered alike, so the guesser learns nothing), and its owner an audit event.
    if let Some(target) = &account {
        let failures = db::accounts::failed_attempts_since(conn, &target.id, now - 86_400)?;
        if failures >= MAX_FAILED_CODES_PER_DAY {
            audit::record(
                conn,
                &Actor::app(&app_name),
                account_event(
                    "challenge.blocked",
                    target,
                    None,
                    Some(json!({"failed_codes_last_24h": failures})),
                ),
                now,
            )?;
            account = None;
        }
    }
    let (id, code, scopes_text) = (random_id(), random_code(), scopes.to_string());
    db::accounts::insert_challenge(
        conn,
        &NewChallengeRow {
            id: &id,
            account_id: account.as_ref().map(|a| a.id.as_str()),
            app_name: &app_name,
            scopes: &scopes_text,
            code: &code,
            failed_attempts: 0,
            status: "pending",
            created_at: now,
            expires_at: now + CHALLENGE_TTL_SECONDS,
        },
    )?;
    if let Some(account) = &account {
        let details = json!({"app_name": app_name, "scopes": scopes_text});
        audit::record(
            conn,
            &Actor::app(&app_name),
            account_event("challenge.created", account, Some(&id), Some(details)),
            now,
        )?;
    }
    let row = db::accounts::challenge(conn, &id)?
        .ok_or_else(|| AccountError::Invalid("challenge vanished".into()))?;
    Ok(ChallengeView::from(&row))
}

/// Why a code exchange was refused. None says whether the account exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingRefusal {
    #[error("no such pairing challenge")]
    UnknownChallenge,
    #[error("the code is wrong; {remaining} attempt(s) left")]
    WrongCode { remaining: i32 },
    #[error("too many wrong codes: the challenge is closed, start a new one")]
    TooManyAttempts,
    #[error("the challenge has expired, start a new one")]
    Expired,
    #[error("the challenge was already used")]
    AlreadyUsed,
    #[error("the account owner denied the request")]
    Denied,
}

/// Trades a challenge id and the owner's code for a new API key (named after the app,
/// with the requested scopes capped by the account's). Single use, expiring, and closed
/// after `MAX_CODE_ATTEMPTS` wrong codes; the code is compared in constant time.
pub fn redeem_challenge(
    conn: &mut DbConn,
    challenge_id: &str,
    code: &str,
    now: i64,
) -> Result<Result<(ApiKeyView, ApiKeySecret, AccountView), PairingRefusal>, AccountError> {
    let Some(challenge) = db::accounts::challenge(conn, challenge_id)? else {
        return Ok(Err(PairingRefusal::UnknownChallenge));
    };
    let account = match &challenge.account_id {
        Some(id) => db::accounts::by_id(conn, id)?,
        None => None,
    };
    match challenge.status.as_str() {
        "approved" => return Ok(Err(PairingRefusal::AlreadyUsed)),
        "denied" => return Ok(Err(PairingRefusal::Denied)),
        "failed" => return Ok(Err(PairingRefusal::TooManyAttempts)),
        "expired" => return Ok(Err(PairingRefusal::Expired)),
        _ => {}
    }
    if challenge.expires_at <= now {
        expire(conn, &challenge, account.as_ref(), now)?;
        return Ok(Err(PairingRefusal::Expired));
    }
    let code_matches: bool = code.as_bytes().ct_eq(challenge.code.as_bytes()).into();
    let usable_account = account.filter(|a| a.disabled_at.is_none());
    let Some(account) = usable_account.filter(|_| code_matches) else {
        return wrong_code(conn, &challenge, now);
    };
    let actor = Actor::app(&challenge.app_name);
    let redeemed = conn.transaction::<_, AccountError, _>(|conn| {
        let allowed = Scope::parse(&account.scopes).unwrap_or_default();
        let asked = Scope::parse(&challenge.scopes).unwrap_or_default();
        let granted = Scope::from_tokens(asked.tokens().iter().filter(|t| allowed.contains(t)))
            .unwrap_or_default();
        let spec = KeySpec {
            name: challenge.app_name.clone(),
            scopes: Some(granted),
            expires_in: None,
        };
        let (view, secret) = create_key(conn, &actor, &account, &spec, now)?;
        // The conditional update makes the challenge single-use even under a race.
        if !db::accounts::resolve_challenge(conn, &challenge.id, "approved", Some(&view.id), now)? {
            return Err(AccountError::Invalid("already used".into()));
        }
        audit::record(
            conn,
            &actor,
            account_event(
                "challenge.approved",
                &account,
                Some(&challenge.id),
                Some(json!({"api_key_id": view.id})),
            ),
            now,
        )?;
        Ok((view, secret))
    });
    match redeemed {
        Ok((view, secret)) => Ok(Ok((view, secret, AccountView::from(&account)))),
        Err(AccountError::Invalid(_)) => Ok(Err(PairingRefusal::AlreadyUsed)),
        Err(e) => Err(e),
    }
}

fn wrong_code(
    conn: &mut DbConn,
    challenge: &ChallengeRow,
    now: i64,
) -> Result<Result<(ApiKeyView, ApiKeySecret, AccountView), PairingRefusal>, AccountError> {
    let Some(attempts) =
        db::accounts::record_failed_attempt(conn, &challenge.id, MAX_CODE_ATTEMPTS, now)?
    else {
        return Ok(Err(PairingRefusal::AlreadyUsed));
    };
    if attempts < MAX_CODE_ATTEMPTS {
        return Ok(Err(PairingRefusal::WrongCode {
            remaining: MAX_CODE_ATTEMPTS - attempts,
        }));
    }
    if let Some(account_id) = &challenge.account_id
        && let Some(account) = db::accounts::by_id(conn, account_id)?
    {
        audit::record(
            conn,
            &Actor::app(&challenge.app_name),
            account_event(
                "challenge.failed",
                &account,
                Some(&challenge.id),
                Some(json!({"attempts": attempts})),
            ),
            now,
        )?;
    }
    Ok(Err(PairingRefusal::TooManyAttempts))
}

fn expire(
    conn: &mut DbConn,
    challenge: &ChallengeRow,
    account: Option<&AccountRow>,
    now: i64,
) -> Result<(), AccountError> {
    if db::accounts::mark_expired(conn, &challenge.id, now)?
        && let Some(account) = account
    {
        audit::record(
            conn,
            &Actor::system(),
            account_event("challenge.expired", account, Some(&challenge.id), None),
            now,
        )?;
    }
    Ok(())
}

/// Forgets challenges that ended more than a day ago (their story is in the audit trail);
/// for the maintenance task.
pub fn prune_challenges(conn: &mut DbConn, now: i64) -> Result<usize, AccountError> {
    Ok(db::accounts::prune_challenges(conn, now - 86_400)?)
}

/// Marks overdue pending challenges expired (and audits it); for the maintenance task.
pub fn expire_overdue(conn: &mut DbConn, now: i64) -> Result<usize, AccountError> {
    let overdue = db::accounts::overdue_challenges(conn, now)?;
    for challenge in &overdue {
        let account = match &challenge.account_id {
            Some(id) => db::accounts::by_id(conn, id)?,
            None => None,
        };
        expire(conn, challenge, account.as_ref(), now)?;
    }
    Ok(overdue.len())
}

/// Pending requests the owner can approve (by giving the app the code) or deny.
pub fn pending_challenges(
    conn: &mut DbConn,
    account_id: &str,
    now: i64,
) -> Result<Vec<ChallengeView>, AccountError> {
    Ok(db::accounts::pending_challenges(conn, account_id, now)?
        .iter()
        .map(ChallengeView::from)
        .collect())
}

pub fn pending_challenges_for(
    conn: &mut DbConn,
    handle: &str,
    now: i64,
) -> Result<Vec<ChallengeView>, AccountError> {
    let account = account_by_handle(conn, handle)?;
    pending_challenges(conn, &account.id, now)
}

/// The owner refuses a pending request. With `account_id`, only that account's.
pub fn deny_challenge(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    account_id: Option<&str>,
    now: i64,
) -> Result<(), AccountError> {
    let challenge = db::accounts::challenge(conn, id)?
        .filter(|c| {
            c.account_id.is_some()
                && (account_id.is_none() || c.account_id.as_deref() == account_id)
        })
        .ok_or_else(|| AccountError::Invalid(format!("no pending challenge {id:?}")))?;
    if !db::accounts::resolve_challenge(conn, id, "denied", None, now)? {
        return Err(AccountError::Invalid(format!(
            "challenge {id:?} is no longer pending"
        )));
    }
    if let Some(account) =
        db::accounts::by_id(conn, challenge.account_id.as_deref().unwrap_or_default())?
    {
        audit::record(
            conn,
            actor,
            account_event("challenge.denied", &account, Some(id), None),
            now,
        )?;
    }
    Ok(())
}

/// The account behind `handle`, for callers that act on it.
pub fn account_row(conn: &mut DbConn, handle: &str) -> Result<AccountRow, AccountError> {
    account_by_handle(conn, handle)
}
