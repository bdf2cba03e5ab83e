//! App pairing: an app asks an account for a key (a challenge), the owner sees a 4-digit
//! code and gives it to the app, and the app trades challenge id + code for a key.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::accounts::{self, AccountError, AccountView, account_event, validate_label};
use super::api_keys::{self, ApiKeyView, KeySpec};
use super::audit::{self, Actor};
use crate::crypto::secrets::{ApiKeySecret, random_bytes, random_id};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, Challenge, ChallengeStatus, timestamp};

pub use crate::domain::PairingRefusal;
use crate::oauth::Scope;

/// How long a pairing challenge lives.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Wrong codes before a challenge dies.
pub const MAX_CODE_ATTEMPTS: i32 = 3;
/// Wrong codes per account per day, across all its challenges: a guesser's odds stay
/// below 10 in 10,000 a day however many challenges they open.
pub const MAX_FAILED_CODES_PER_DAY: i64 = 10;
/// Ended challenges are forgotten this long after they were made (the audit trail keeps
/// their story).
const KEEP_ENDED_SECONDS: i64 = 86_400;
const MAX_REQUESTED_SCOPES: usize = 16;

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

impl From<&Challenge> for ChallengeView {
    fn from(challenge: &Challenge) -> Self {
        Self {
            id: challenge.id.clone(),
            app_name: challenge.app_name.clone(),
            scopes: challenge.scopes.tokens().to_vec(),
            code: challenge.code.clone(),
            created_at: timestamp(challenge.created_at),
            expires_at: timestamp(challenge.expires_at),
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
    let handle = accounts::validate_handle(account_handle)?;
    if scopes.is_empty() || scopes.tokens().len() > MAX_REQUESTED_SCOPES {
        return Err(AccountError::Invalid(format!(
            "ask for 1 to {MAX_REQUESTED_SCOPES} scopes"
        )));
    }
    let actor = Actor::app(&app_name);
    db::transaction(conn, |conn| {
        let mut account = db::accounts::by_handle(conn, &handle)?.filter(|a| !a.is_disabled());
        // Past its daily budget of wrong codes, an account gets challenges that can never
        // succeed (answered alike, so the guesser learns nothing), and its owner an event.
        if let Some(target) = &account {
            let failures = db::challenges::failed_attempts_since(conn, &target.id, now - 86_400)?;
            if failures >= MAX_FAILED_CODES_PER_DAY {
                audit::record(
                    conn,
                    &actor,
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
        let challenge = Challenge {
            id: random_id(),
            account_id: account.as_ref().map(|a| a.id.clone()),
            app_name: app_name.clone(),
            scopes: scopes.clone(),
            code: random_code(),
            failed_attempts: 0,
            status: ChallengeStatus::Pending,
            created_at: now,
            expires_at: now + CHALLENGE_TTL_SECONDS,
            resolved_at: None,
            api_key_id: None,
        };
        db::challenges::insert(conn, &challenge)?;
        if let Some(account) = &account {
            let details = json!({"app_name": app_name, "scopes": scopes.to_string()});
            audit::record(
                conn,
                &actor,
                account_event(
                    "challenge.created",
                    account,
                    Some(&challenge.id),
                    Some(details),
                ),
                now,
            )?;
        }
        Ok(ChallengeView::from(&challenge))
    })
}

/// A successful code exchange: the new key (its secret shown once) and its account.
pub struct Redeemed {
    pub key: ApiKeyView,
    pub secret: ApiKeySecret,
    pub account: AccountView,
}

/// Trades a challenge id and the owner's code for a new API key (named after the app,
/// with the requested scopes capped by the account's). Single use, expiring, and closed
/// after `MAX_CODE_ATTEMPTS` wrong codes; the code is compared in constant time. A refusal
/// is `AccountError::Pairing`; what it records (a wrong code, an expiry) is committed.
pub fn redeem_challenge(
    conn: &mut DbConn,
    challenge_id: &str,
    code: &str,
    now: i64,
) -> Result<Redeemed, AccountError> {
    let Some(challenge) = db::challenges::find(conn, challenge_id)? else {
        return Err(PairingRefusal::UnknownChallenge.into());
    };
    let account = match &challenge.account_id {
        Some(id) => db::accounts::by_id(conn, id)?,
        None => None,
    };
    match challenge.status {
        ChallengeStatus::Pending => {}
        ChallengeStatus::Approved => return Err(PairingRefusal::AlreadyUsed.into()),
        ChallengeStatus::Denied => return Err(PairingRefusal::Denied.into()),
        ChallengeStatus::Failed => return Err(PairingRefusal::TooManyAttempts.into()),
        ChallengeStatus::Expired => return Err(PairingRefusal::Expired.into()),
    }
    if challenge.expires_at <= now {
        expire(conn, &challenge, account.as_ref(), now)?;
        return Err(PairingRefusal::Expired.into());
    }
    let code_matches: bool = code.as_bytes().ct_eq(challenge.code.as_bytes()).into();
    // The daily budget of wrong codes holds at every guess, not only when a challenge is
    // made: challenges opened earlier must not keep guessing past it.
    let within_budget = match &account {
        Some(account) => {
            db::challenges::failed_attempts_since(conn, &account.id, now - 86_400)?
                < MAX_FAILED_CODES_PER_DAY
        }
        None => false,
    };
    let usable_account = account.filter(|a| !a.is_disabled() && within_budget);
    let Some(account) = usable_account.filter(|_| code_matches) else {
        return Err(wrong_code(conn, &challenge, now)?.into());
    };
    let actor = Actor::app(&challenge.app_name);
    db::transaction(conn, |conn| {
        let spec = KeySpec {
            name: challenge.app_name.clone(),
            scopes: Some(challenge.scopes.intersection(&account.scopes)),
            expires_in: None,
        };
        let (key, secret) = api_keys::create(conn, &actor, &account, &spec, now)?;
        // The conditional update makes the challenge single-use even under a race; the
        // loser's key is rolled back with this transaction.
        if !db::challenges::resolve(
            conn,
            &challenge.id,
            ChallengeStatus::Approved,
            Some(&key.id),
            now,
        )? {
            return Err(PairingRefusal::AlreadyUsed.into());
        }
        audit::record(
            conn,
            &actor,
            account_event(
                "challenge.approved",
                &account,
                Some(&challenge.id),
                Some(json!({"api_key_id": key.id})),
            ),
            now,
        )?;
        Ok(Redeemed {
            key,
            secret,
            account: AccountView::from(&account),
        })
    })
}

/// Counts a wrong code (and audits the challenge's death at the last attempt); returns the
/// refusal to give.
fn wrong_code(
    conn: &mut DbConn,
    challenge: &Challenge,
    now: i64,
) -> Result<PairingRefusal, DbError> {
    db::transaction(conn, |conn| {
        let Some(attempts) =
            db::challenges::record_failed_attempt(conn, &challenge.id, MAX_CODE_ATTEMPTS, now)?
        else {
            return Ok(PairingRefusal::AlreadyUsed);
        };
        if attempts < MAX_CODE_ATTEMPTS {
            return Ok(PairingRefusal::WrongCode {
                remaining: MAX_CODE_ATTEMPTS - attempts,
            });
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
        Ok(PairingRefusal::TooManyAttempts)
    })
}

fn expire(
    conn: &mut DbConn,
    challenge: &Challenge,
    account: Option<&Account>,
    now: i64,
) -> Result<(), DbError> {
    db::transaction(conn, |conn| {
        if db::challenges::mark_expired(conn, &challenge.id, now)?
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
    })
}

/// Forgets challenges that ended more than a day ago; for the maintenance task.
pub fn prune_challenges(conn: &mut DbConn, now: i64) -> Result<usize, DbError> {
    db::challenges::prune(conn, now - KEEP_ENDED_SECONDS)
}

/// Marks overdue pending challenges expired (and audits it); for the maintenance task.
pub fn expire_overdue(conn: &mut DbConn, now: i64) -> Result<usize, DbError> {
    let overdue = db::challenges::overdue(conn, now)?;
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
    Ok(db::challenges::pending(conn, account_id, now)?
        .iter()
        .map(ChallengeView::from)
        .collect())
}

pub fn pending_challenges_for(
    conn: &mut DbConn,
    handle: &str,
    now: i64,
) -> Result<Vec<ChallengeView>, AccountError> {
    let account = accounts::by_handle(conn, handle)?;
    pending_challenges(conn, &account.id, now)
}

/// The owner refuses a pending request. With `account_id`, only that account's (another
/// account's challenge is "not found", like an unknown one).
pub fn deny_challenge(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    account_id: Option<&str>,
    now: i64,
) -> Result<(), AccountError> {
    db::transaction(conn, |conn| {
        let owner = db::challenges::find(conn, id)?
            .and_then(|c| c.account_id)
            .filter(|owner| account_id.is_none_or(|wanted| wanted == owner))
            .ok_or_else(|| AccountError::ChallengeNotFound(id.to_owned()))?;
        if !db::challenges::resolve(conn, id, ChallengeStatus::Denied, None, now)? {
            return Err(AccountError::ChallengeNotPending(id.to_owned()));
        }
        if let Some(account) = db::accounts::by_id(conn, &owner)? {
            audit::record(
                conn,
                actor,
                account_event("challenge.denied", &account, Some(id), None),
                now,
            )?;
        }
        Ok(())
    })
}
