//! Invite links: an operator asks for a one-time link for an account; the person opens it,
//! chooses a password and is signed in. The same link resets a forgotten password. Only the
//! newest link of an account works, once, until it expires; the database keeps its digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::accounts::{self, AccountError, account_event};
use super::audit::{self, Actor};
use crate::crypto::passwords::{self, WeakPassword};
use crate::crypto::secrets::{SecretDigest, random_bytes, random_id};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, Invite, timestamp};

/// Where invite links point, under the issuer.
pub const INVITE_PATH: &str = "/console/invite/";

/// A new link, shown once to the operator who asked for it.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct InviteLink {
    pub handle: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteLink")
            .field("handle", &self.handle)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Makes a link for the account `handle`, closing its earlier unused links.
pub fn create(
    conn: &mut DbConn,
    actor: &Actor,
    handle: &str,
    issuer: &str,
    ttl_seconds: i64,
    now: i64,
) -> Result<InviteLink, AccountError> {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    db::transaction(conn, |conn| {
        let account = accounts::by_handle(conn, handle)?;
        db::invites::close_unused(conn, &account.id, now)?;
        let invite = Invite {
            id: random_id(),
            account_id: account.id.clone(),
            created_by: actor.as_str().to_owned(),
            created_at: now,
            expires_at: now.saturating_add(ttl_seconds),
            used_at: None,
        };
        db::invites::insert(conn, &invite, SecretDigest::of(token.as_bytes()).as_bytes())
            .map_err(|err| AccountError::from_account_write(err, handle))?;
        audit::record(
            conn,
            actor,
            account_event(
                "account.invited",
                &account,
                Some(&invite.id),
                Some(json!({"expires_at": timestamp(invite.expires_at)})),
            ),
            now,
        )?;
        Ok(InviteLink {
            handle: account.handle.clone(),
            url: format!("{}{INVITE_PATH}{token}", issuer.trim_end_matches('/')),
            expires_at: timestamp(invite.expires_at),
        })
    })
}

/// Why a link cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// Unknown, used, superseded or expired: one answer for all, so that a link's history
    /// is not revealed.
    #[error("this link is not valid: it was used, replaced by a newer one, or it expired")]
    NotValid,
    #[error("{0}")]
    WeakPassword(#[from] WeakPassword),
    #[error(transparent)]
    Store(#[from] DbError),
}

fn usable(conn: &mut DbConn, token: &str, now: i64) -> Result<(Invite, Account), InviteError> {
    if token.is_empty() || token.len() > 100 {
        return Err(InviteError::NotValid);
    }
    let digest = SecretDigest::of(token.as_bytes());
    let invite = db::invites::by_token_digest(conn, digest.as_bytes())?
        .filter(|invite| invite.used_at.is_none() && invite.expires_at > now)
        .ok_or(InviteError::NotValid)?;
    let account = db::accounts::by_id(conn, &invite.account_id)?
        .filter(|account| !account.is_disabled())
        .ok_or(InviteError::NotValid)?;
    Ok((invite, account))
}

/// The account a link is for, when the link can still be used (for the page that asks for
/// the password).
pub fn check(conn: &mut DbConn, token: &str, now: i64) -> Result<Account, InviteError> {
    usable(conn, token, now).map(|(_, account)| account)
}

/// Spends the link and sets the password (hashed by the caller, off the database
/// connection, after [`passwords::check_new_password`]). Every other session of the account
/// ends: whoever knew the old password is out.
pub fn accept(
    conn: &mut DbConn,
    token: &str,
    password_hash: &str,
    now: i64,
) -> Result<Account, InviteError> {
    db::transaction(conn, |conn| {
        let (invite, account) = usable(conn, token, now)?;
        if !db::invites::mark_used(conn, &invite.id, now)? {
            return Err(InviteError::NotValid);
        }
        db::credentials::set_password(conn, &account.id, password_hash, now)?;
        db::console_sessions::delete_for_account(conn, &account.id)?;
        audit::record(
            conn,
            &Actor::account(&account.handle),
            account_event("account.password_set", &account, Some(&invite.id), None),
            now,
        )?;
        Ok(account)
    })
}

/// Checks a chosen password against the policy for `account`.
pub fn check_password(account: &Account, password: &str) -> Result<(), InviteError> {
    Ok(passwords::check_new_password(password, &account.handle)?)
}

/// Maintenance: drops links that expired more than a day ago.
pub fn prune(conn: &mut DbConn, now: i64) -> Result<usize, DbError> {
    db::invites::delete_expired(conn, now - 86_400)
}
