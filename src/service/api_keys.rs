//! API keys: created (shown once), listed, revoked, deleted, and authenticated on use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::accounts::{self, AccountError, account_event, validate_label};
use super::audit::{self, Actor};
use crate::cache::{CachedKey, Lookup};
use crate::crypto::secrets::{ApiKeySecret, random_id};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, ApiKey, ApiKeyStatus, timestamp};
use crate::oauth::{MAX_TTL_SECONDS, Scope};

/// The shortest lifetime a key may be given.
pub const MIN_KEY_LIFETIME_SECONDS: i64 = 60;

/// An API key as listed: never the key itself nor its digest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    pub fn new(key: &ApiKey, now: i64) -> Self {
        Self {
            id: key.id.clone(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            scopes: key.scopes.tokens().to_vec(),
            status: key.status(now).as_str(),
            created_at: timestamp(key.created_at),
            last_used_at: key.last_used_at.map(timestamp),
            expires_at: key.expires_at.map(timestamp),
            revoked_at: key.revoked_at.map(timestamp),
        }
    }
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
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    account: &Account,
    spec: &KeySpec,
    now: i64,
) -> Result<(ApiKeyView, ApiKeySecret), AccountError> {
    let name = validate_label("name", &spec.name)?;
    let scopes = match &spec.scopes {
        Some(scopes) if !scopes.is_subset_of(&account.scopes) => {
            return Err(AccountError::Invalid(format!(
                "the account may not grant: {}",
                scopes.not_in(&account.scopes).collect::<Vec<_>>().join(" ")
            )));
        }
        Some(scopes) => scopes.clone(),
        None => account.scopes.clone(),
    };
    let expires_at = match spec.expires_in {
        Some(seconds) if !(MIN_KEY_LIFETIME_SECONDS..=MAX_TTL_SECONDS).contains(&seconds) => {
            return Err(AccountError::Invalid(
                "expires_in must be between 60 seconds and ten years".into(),
            ));
        }
        Some(seconds) => Some(now + seconds),
        None => None,
    };
    let secret = ApiKeySecret::generate();
    let key = ApiKey {
        id: random_id(),
        account_id: account.id.clone(),
        name,
        prefix: secret.short_id(),
        scopes,
        created_at: now,
        last_used_at: None,
        expires_at,
        revoked_at: None,
    };
    db::transaction(conn, |conn| {
        db::api_keys::insert(conn, &key, secret.digest().as_bytes())
            .map_err(|err| AccountError::from_account_write(err, &account.handle))?;
        let details = json!({
            "name": key.name,
            "prefix": key.prefix,
            "scopes": key.scopes.to_string(),
            "expires_at": key.expires_at,
        });
        audit::record(
            conn,
            actor,
            account_event("api_key.created", account, Some(&key.id), Some(details)),
            now,
        )?;
        Ok((ApiKeyView::new(&key, now), secret))
    })
}

/// A key creating another key (account API) cannot hand out more than it holds: the new
/// key's scopes are within the presenting key's (those its account still grants), and it
/// expires no later (a longer lifetime asked for is cut to the presenting key's). More
/// scopes than it holds are refused.
pub fn delegated_spec(
    presenting: &KeyHolder,
    mut spec: KeySpec,
    now: i64,
) -> Result<KeySpec, AccountError> {
    let held = presenting.scopes();
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
    if let Some(expires_at) = presenting.key().expires_at {
        let remaining = expires_at - now;
        spec.expires_in = Some(
            spec.expires_in
                .map_or(remaining, |asked| asked.min(remaining)),
        );
    }
    Ok(spec)
}

/// Whose keys and challenges a caller may act on.
#[derive(Debug, Clone, Copy)]
pub enum Within<'a> {
    /// The CLI: any account's.
    Any,
    /// The admin API: those of the account (by id) in the path.
    Account(&'a str),
    /// The account API: those of the key's own account that the key covers (see
    /// [`KeyHolder::covers`]).
    Key(&'a KeyHolder),
}

impl Within<'_> {
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Self::Any => None,
            Self::Account(id) => Some(id),
            Self::Key(holder) => Some(&holder.account.id),
        }
    }

    /// Whether the caller may act on a key (or a challenge that would make one) with
    /// `scopes` and `expires_at`: operators always, a key only if it covers it.
    pub fn covers(&self, scopes: &Scope, expires_at: Option<i64>) -> bool {
        match self {
            Self::Any | Self::Account(_) => true,
            Self::Key(holder) => holder.covers(scopes, expires_at),
        }
    }
}

/// CLI and admin API: a key for the account named by `handle`.
pub fn create_for(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    spec: &KeySpec,
    now: i64,
) -> Result<(ApiKeyView, ApiKeySecret), AccountError> {
    let account = accounts::by_handle(conn, handle)?;
    create(conn, actor, &account, spec, now)
}

pub fn list(
    conn: &mut DbConn,
    account_id: &str,
    now: i64,
) -> Result<Vec<ApiKeyView>, AccountError> {
    Ok(db::api_keys::of_account(conn, account_id)?
        .iter()
        .map(|key| ApiKeyView::new(key, now))
        .collect())
}

pub fn list_for(
    conn: &mut DbConn,
    handle: &str,
    now: i64,
) -> Result<Vec<ApiKeyView>, AccountError> {
    let account = accounts::by_handle(conn, handle)?;
    list(conn, &account.id, now)
}

/// The key `id`, if it is `within` reach: another account's key is "not found", like an
/// unknown one; a key of the account broader than the presenting key is refused (403).
fn owned(
    conn: &mut DbConn,
    id: &str,
    within: Within<'_>,
) -> Result<(ApiKey, Account), AccountError> {
    match db::api_keys::by_id(conn, id)? {
        Some((key, account)) if within.account_id().is_none_or(|owner| owner == account.id) => {
            if !within.covers(&key.scopes, key.expires_at) {
                return Err(AccountError::Broader(format!(
                    "API key {id:?} has scopes or a lifetime beyond the presenting key's"
                )));
            }
            Ok((key, account))
        }
        _ => Err(AccountError::KeyNotFound(id.to_owned())),
    }
}

/// Revokes at once; the key stays listed as revoked.
pub fn revoke(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    within: Within<'_>,
    now: i64,
) -> Result<ApiKeyView, AccountError> {
    db::transaction(conn, |conn| {
        let (mut key, account) = owned(conn, id, within)?;
        if db::api_keys::revoke(conn, id, now)? {
            key.revoked_at = Some(now);
            audit::record(
                conn,
                actor,
                account_event("api_key.revoked", &account, Some(id), None),
                now,
            )?;
        }
        Ok(ApiKeyView::new(&key, now))
    })
}

/// Deletes for good; the key disappears from the list.
pub fn delete(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    within: Within<'_>,
    now: i64,
) -> Result<(), AccountError> {
    db::transaction(conn, |conn| {
        let (key, account) = owned(conn, id, within)?;
        db::api_keys::delete(conn, id)?;
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
    })
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
            if db::api_keys::touch(conn, &id, at)? {
                written += 1;
            }
        }
        Ok(written)
    }
}

/// A key that was accepted, with its account: shared with the in-memory view, not copied
/// (an API key request would otherwise copy a dozen strings it only reads).
pub struct KeyHolder {
    entry: Arc<CachedKey>,
    pub account: Arc<Account>,
}

impl std::fmt::Debug for KeyHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHolder")
            .field("key", &self.key().id)
            .field("account", &self.account.id)
            .finish()
    }
}

impl KeyHolder {
    pub fn key(&self) -> &ApiKey {
        &self.entry.key
    }

    /// The audit trail names the account.
    pub fn actor(&self) -> Actor {
        Actor::account(&self.account.handle)
    }

    /// What the key may do now: its scopes that the account still holds.
    pub fn scopes(&self) -> Scope {
        self.key().effective_scopes(&self.account)
    }

    /// Whether this key could itself have created a key with `scopes` and `expires_at`
    /// (the delegation rule): it holds every one of the scopes, and it expires no earlier
    /// (a key that expires covers no key that never does). Such a key may act on that key,
    /// see the code of a challenge that would make it, deny or approve that challenge.
    pub fn covers(&self, scopes: &Scope, expires_at: Option<i64>) -> bool {
        let lives_long_enough = match (self.key().expires_at, expires_at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs <= mine,
        };
        lives_long_enough && scopes.is_subset_of(&self.scopes())
    }
}

/// Checks a presented key: format and checksum first (no lookup for a typo), then one
/// indexed read by digest, with the account. The first use is written (and audited) at
/// once; later uses go through the tracker.
pub fn authenticate(
    lookup: &mut dyn Lookup,
    usage: &UsageTracker,
    presented: &str,
    now: i64,
) -> Result<Result<KeyHolder, KeyRejection>, DbError> {
    let Ok(secret) = ApiKeySecret::parse(presented) else {
        return Ok(Err(KeyRejection::Malformed));
    };
    let Some((entry, account)) = lookup.api_key(&secret.digest().to_array())? else {
        return Ok(Err(KeyRejection::Invalid));
    };
    let key = &entry.key;
    if key.status(now) != ApiKeyStatus::Active {
        return Ok(Err(KeyRejection::Invalid));
    }
    if account.is_disabled() {
        return Ok(Err(KeyRejection::AccountDisabled));
    }
    if entry.never_used() {
        let mut audit_first_use = |conn: &mut DbConn| {
            audit::record(
                conn,
                &Actor::account(&account.handle),
                account_event("api_key.first_used", &account, Some(&key.id), None),
                now,
            )
        };
        lookup.first_use(&entry, &mut audit_first_use, now)?;
    } else if entry.note_use(now, LAST_USED_PRECISION_SECONDS) {
        usage.note(&key.id, now);
    }
    Ok(Ok(KeyHolder { entry, account }))
}

/// "Rotate regularly": a new secret under the same name, scopes and lifetime, and the old
/// key revoked, in one transaction. Only an active key can be regenerated.
pub fn regenerate(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    within: Within<'_>,
    now: i64,
) -> Result<(ApiKeyView, ApiKeySecret), AccountError> {
    db::transaction(conn, |conn| {
        let (old, account) = owned(conn, id, within)?;
        if old.status(now) != ApiKeyStatus::Active {
            return Err(AccountError::Invalid(format!(
                "only an active key can be regenerated; this one is {}",
                old.status(now).as_str()
            )));
        }
        let mut spec = KeySpec {
            name: old.name.clone(),
            scopes: Some(old.effective_scopes(&account)),
            expires_in: old.expires_at.map(|expires_at| expires_at - old.created_at),
        };
        // A key regenerating another gives it no later expiry than its own.
        if let Within::Key(holder) = within {
            spec = delegated_spec(holder, spec, now)?;
        }
        let (view, secret) = create(conn, actor, &account, &spec, now)?;
        db::api_keys::revoke(conn, id, now)?;
        audit::record(
            conn,
            actor,
            account_event(
                "api_key.regenerated",
                &account,
                Some(id),
                Some(json!({"new_key_id": view.id, "new_prefix": view.prefix})),
            ),
            now,
        )?;
        Ok((view, secret))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(account_scopes: &str, key_scopes: &str, expires_at: Option<i64>) -> KeyHolder {
        let scope = |text: &str| Scope::parse(text).unwrap();
        KeyHolder {
            entry: CachedKey::new(
                ApiKey {
                    id: "k".into(),
                    account_id: "a".into(),
                    name: "k".into(),
                    prefix: "tg_12345678".into(),
                    scopes: scope(key_scopes),
                    created_at: 0,
                    last_used_at: None,
                    expires_at,
                    revoked_at: None,
                },
                None,
            ),
            account: Arc::new(Account {
                id: "a".into(),
                handle: "alice".into(),
                display_name: "Alice".into(),
                scopes: scope(account_scopes),
                created_at: 0,
                disabled_at: None,
                is_operator: false,
            }),
        }
    }

    #[test]
    fn a_key_covers_only_what_it_could_have_minted() {
        let scope = |text: &str| Scope::parse(text).unwrap();
        let full = holder("read write keys", "read write keys", None);
        assert!(full.covers(&scope("read write keys"), None));
        assert!(full.covers(&scope("read"), Some(100)));

        let narrow = holder("read write keys", "keys", Some(600));
        assert!(
            !narrow.covers(&scope("read"), Some(100)),
            "a scope it lacks"
        );
        assert!(!narrow.covers(&scope("keys"), None), "an unexpiring key");
        assert!(!narrow.covers(&scope("keys"), Some(601)), "a later expiry");
        assert!(narrow.covers(&scope("keys"), Some(600)));

        // Scopes the account no longer grants are not held, whatever the key says.
        let shrunk = holder("read", "read write", None);
        assert!(!shrunk.covers(&scope("write"), None));
        assert!(shrunk.covers(&scope("read"), None));

        assert!(!Within::Key(&narrow).covers(&scope("read"), None));
        assert!(Within::Account("a").covers(&scope("read"), None));
        assert!(Within::Any.covers(&scope("read"), None));
    }

    #[test]
    fn delegation_refuses_scopes_and_caps_the_lifetime() {
        let scope = |text: &str| Scope::parse(text).unwrap();
        let narrow = holder("read write keys", "read keys", Some(1_000));
        let asked = |scopes: Option<&str>, expires_in| KeySpec {
            name: "child".into(),
            scopes: scopes.map(scope),
            expires_in,
        };
        assert!(delegated_spec(&narrow, asked(Some("write"), None), 400).is_err());
        let spec = delegated_spec(&narrow, asked(None, None), 400).unwrap();
        assert_eq!(spec.scopes, Some(scope("read keys")));
        assert_eq!(spec.expires_in, Some(600));
        let spec = delegated_spec(&narrow, asked(Some("read"), Some(99_999)), 400).unwrap();
        assert_eq!(spec.expires_in, Some(600));
        let spec = delegated_spec(&narrow, asked(Some("read"), Some(120)), 400).unwrap();
        assert_eq!(spec.expires_in, Some(120));
    }
}
