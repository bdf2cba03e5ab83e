//! App pairing: an app asks an account for a key (a challenge), the owner sees a 4-digit
//! code and gives it to the app, and the app trades challenge id + code for a key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::hmac;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::accounts::{self, AccountError, AccountView, account_event, validate_label};
use super::api_keys::{self, ApiKeyView, KeySpec, Within};
use super::audit::{self, Actor};
use crate::crypto::sealed::MasterKey;
use crate::crypto::secrets::{ApiKeySecret, random_bytes};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, Challenge, ChallengeStatus, timestamp};

pub use crate::domain::PairingRefusal;
use crate::oauth::Scope;

/// How long a pairing challenge lives.
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// Wrong codes before a challenge dies.
pub const MAX_CODE_ATTEMPTS: i32 = 3;
/// Code guesses per account per UTC day, across all its challenges and all instances
/// (a right code gives its guess back): a guesser's odds stay below 10 in 10,000 a day
/// however many challenges they open. Challenges the owner approved are not held to it.
pub const MAX_FAILED_CODES_PER_DAY: i32 = 10;
/// Ended challenges are forgotten this long after they were made (the audit trail keeps
/// their story); no code is stored in them.
const KEEP_ENDED_SECONDS: i64 = 3_600;
const MAX_REQUESTED_SCOPES: usize = 16;
/// Attempt counts of challenges for unknown accounts held in memory, at most.
const MAX_DECOYS: usize = 100_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// The server's pairing secret (derived from the master key) and the attempt counts of
/// challenges that name no usable account (never stored, see [`create_challenge`]).
///
/// A challenge id is `base58(created_at ‖ 10 random bytes ‖ tag)`, the tag an HMAC under
/// the pairing secret, so the server recognises its own ids without a lookup; the 4-digit
/// code is derived from the id under the same secret, so it is never stored: it is
/// recomputed to be shown to those who may see it and to check a guess.
pub struct Pairing {
    key: hmac::Key,
    /// Decoy id → (wrong guesses, expiry).
    decoys: Mutex<HashMap<String, (i32, i64)>>,
    /// How long storing a real challenge takes (a moving average, in microseconds), so
    /// that the answer for an unknown account can take about as long.
    write_cost_micros: AtomicU64,
}

/// The longest an answer for an unknown account is held back to look like a stored one.
const MAX_DECOY_DELAY: Duration = Duration::from_millis(250);

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pairing(redacted)")
    }
}

const ID_BODY_LEN: usize = 18;
const ID_TAG_LEN: usize = 10;

impl Pairing {
    pub fn new(master_key: &MasterKey) -> Self {
        Self {
            key: hmac::Key::new(
                hmac::HMAC_SHA256,
                &master_key.derive("tollgate pairing codes v1"),
            ),
            decoys: Mutex::new(HashMap::new()),
            write_cost_micros: AtomicU64::new(0),
        }
    }

    /// Notes how long creating a stored challenge took (moving average over ~8 requests).
    pub fn note_write_cost(&self, took: Duration) {
        let took = u64::try_from(took.min(MAX_DECOY_DELAY).as_micros()).unwrap_or(u64::MAX);
        let _ =
            self.write_cost_micros
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |average| {
                    Some(if average == 0 {
                        took
                    } else {
                        (average * 7 + took) / 8
                    })
                });
    }

    /// How much longer an answer for an unknown account that took `took` should wait to
    /// take about as long as one for a real account (at most 250 ms in all).
    pub fn decoy_delay(&self, took: Duration) -> Duration {
        Duration::from_micros(self.write_cost_micros.load(Ordering::Relaxed))
            .min(MAX_DECOY_DELAY)
            .saturating_sub(took)
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(label);
        context.update(data);
        context.sign()
    }

    fn new_id(&self, now: i64) -> String {
        let mut bytes = Vec::with_capacity(ID_BODY_LEN + ID_TAG_LEN);
        bytes.extend_from_slice(&now.to_be_bytes());
        bytes.extend_from_slice(&random_bytes::<10>());
        let tag = self.mac(b"id", &bytes);
        bytes.extend_from_slice(&tag.as_ref()[..ID_TAG_LEN]);
        bs58::encode(bytes).into_string()
    }

    /// When the challenge `id` was made, if this server made it (tag checked in constant
    /// time); None for anything else, without a database lookup.
    fn created_at(&self, id: &str) -> Option<i64> {
        if id.len() > 64 {
            return None;
        }
        let bytes = bs58::decode(id).into_vec().ok()?;
        if bytes.len() != ID_BODY_LEN + ID_TAG_LEN {
            return None;
        }
        let (body, tag) = bytes.split_at(ID_BODY_LEN);
        let expected = self.mac(b"id", body);
        if !bool::from(tag.ct_eq(&expected.as_ref()[..ID_TAG_LEN])) {
            return None;
        }
        let mut created = [0u8; 8];
        created.copy_from_slice(&body[..8]);
        Some(i64::from_be_bytes(created))
    }

    /// The 4-digit code of challenge `id` (a 64-bit HMAC reduced mod 10,000: the bias is
    /// below 10^-15).
    pub fn code(&self, id: &str) -> String {
        let tag = self.mac(b"code", id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        format!("{:04}", u64::from_be_bytes(first) % 10_000)
    }

    /// Counts a guess on a decoy; returns the attempts so far (per instance).
    fn decoy_attempt(&self, id: &str, now: i64) -> i32 {
        let Ok(mut decoys) = self.decoys.lock() else {
            return MAX_CODE_ATTEMPTS;
        };
        if decoys.len() >= MAX_DECOYS && !decoys.contains_key(id) {
            // Forget the decoys that have expired; unless that frees a tenth of the table,
            // all of them, so that a table full of live decoys is not swept on every new
            // one (a forgotten decoy only gets its attempts back; it can never succeed).
            decoys.retain(|_, (_, expires_at)| *expires_at > now);
            if decoys.len() >= MAX_DECOYS - MAX_DECOYS / 10 {
                decoys.clear();
            }
        }
        let expires_at = self
            .created_at(id)
            .map_or(now, |at| at + CHALLENGE_TTL_SECONDS);
        let (attempts, _) = decoys.entry(id.to_owned()).or_insert((0, expires_at));
        *attempts = attempts.saturating_add(1);
        *attempts
    }

    fn decoy_attempts(&self, id: &str) -> i32 {
        self.decoys
            .lock()
            .map(|decoys| decoys.get(id).map_or(0, |(attempts, _)| *attempts))
            .unwrap_or(MAX_CODE_ATTEMPTS)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChallengeView {
    pub id: String,
    pub app_name: String,
    pub scopes: Vec<String>,
    /// The 4-digit code the owner gives the app; absent for a viewer that may not see it
    /// (an API key that could not itself have made the key the challenge would produce).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Whether the owner approved it (it may then be redeemed past the daily budget).
    pub approved: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl ChallengeView {
    fn new(challenge: &Challenge, code: Option<String>) -> Self {
        Self {
            id: challenge.id.clone(),
            app_name: challenge.app_name.clone(),
            scopes: challenge.scopes.tokens().to_vec(),
            code,
            approved: challenge.owner_approved_at.is_some(),
            created_at: timestamp(challenge.created_at),
            expires_at: timestamp(challenge.expires_at),
        }
    }
}

/// A pairing request, checked before anything is counted or looked up.
#[derive(Debug, Clone)]
pub struct ChallengeRequest {
    pub app_name: String,
    pub handle: String,
    pub scopes: Scope,
}

/// Checks a pairing request without touching the database (so junk is refused before
/// it counts against any limiter).
pub fn validate_request(
    app_name: &str,
    account_handle: &str,
    scopes: Scope,
) -> Result<ChallengeRequest, AccountError> {
    let app_name = validate_label("app_name", app_name)?;
    let handle = accounts::validate_handle(account_handle)?;
    if scopes.is_empty() || scopes.tokens().len() > MAX_REQUESTED_SCOPES {
        return Err(AccountError::Invalid(format!(
            "ask for 1 to {MAX_REQUESTED_SCOPES} scopes"
        )));
    }
    Ok(ChallengeRequest {
        app_name,
        handle,
        scopes,
    })
}

/// A challenge id as handed to the app.
#[derive(Debug, Clone)]
pub struct Created {
    pub challenge_id: String,
    /// Whether a challenge was stored (the account exists). Never shown to the app; the
    /// caller uses it only to make both answers take about as long.
    pub stored: bool,
}

/// Starts pairing. Answers alike whether or not the account exists: for an unknown or
/// disabled account nothing is written, and the id (which the server recognises by its
/// tag) behaves like a real challenge's that never succeeds.
pub fn create_challenge(
    conn: &mut DbConn,
    pairing: &Pairing,
    request: &ChallengeRequest,
    now: i64,
) -> Result<Created, AccountError> {
    let id = pairing.new_id(now);
    let Some(account) =
        db::accounts::by_handle(conn, &request.handle)?.filter(|a| !a.is_disabled())
    else {
        return Ok(Created {
            challenge_id: id,
            stored: false,
        });
    };
    let actor = Actor::app(&request.app_name);
    let challenge = Challenge {
        id,
        account_id: Some(account.id.clone()),
        app_name: request.app_name.clone(),
        // What the key may carry is fixed now: who may see the code is decided on these,
        // so an account gaining a scope later cannot widen the key beyond what they saw.
        scopes: request.scopes.intersection(&account.scopes),
        failed_attempts: 0,
        status: ChallengeStatus::Pending,
        created_at: now,
        expires_at: now + CHALLENGE_TTL_SECONDS,
        resolved_at: None,
        api_key_id: None,
        owner_approved_at: None,
    };
    let written = db::transaction(conn, |conn| {
        db::challenges::insert(conn, &challenge)
            .map_err(|err| AccountError::from_account_write(err, &account.handle))?;
        let details = json!({
            "app_name": request.app_name,
            "requested_scopes": request.scopes.to_string(),
            "scopes": challenge.scopes.to_string(),
        });
        audit::record(
            conn,
            &actor,
            account_event(
                "challenge.created",
                &account,
                Some(&challenge.id),
                Some(details),
            ),
            now,
        )?;
        Ok::<_, AccountError>(())
    });
    let stored = match written {
        Ok(()) => true,
        // Deleted since it was read: answered as an unknown account is.
        Err(AccountError::AccountNotFound(_)) => false,
        Err(err) => return Err(err),
    };
    Ok(Created {
        challenge_id: challenge.id,
        stored,
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
    pairing: &Pairing,
    challenge_id: &str,
    code: &str,
    now: i64,
) -> Result<Redeemed, AccountError> {
    let Some(created_at) = pairing.created_at(challenge_id) else {
        return Err(PairingRefusal::UnknownChallenge.into());
    };
    let Some(challenge) = db::challenges::find(conn, challenge_id)? else {
        return Err(decoy_refusal(pairing, challenge_id, created_at, now).into());
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
    let Some(account) = account.filter(|a| !a.is_disabled()) else {
        return Err(wrong_code(conn, &challenge, now)?.into());
    };
    // Every guess on a challenge the owner has not approved takes one from the account's
    // daily budget first (atomically, in the database, so it holds across instances);
    // past the budget a guess is refused like a wrong code, even a right one.
    let day = now.div_euclid(SECONDS_PER_DAY);
    let budgeted = challenge.owner_approved_at.is_none();
    if budgeted && !db::pairing_guesses::take(conn, &account.id, day, MAX_FAILED_CODES_PER_DAY)? {
        audit::record(
            conn,
            &Actor::app(&challenge.app_name),
            account_event(
                "challenge.blocked",
                &account,
                Some(&challenge.id),
                Some(json!({"guesses_today": MAX_FAILED_CODES_PER_DAY})),
            ),
            now,
        )?;
        return Err(wrong_code(conn, &challenge, now)?.into());
    }
    let expected = pairing.code(&challenge.id);
    if !bool::from(code.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(wrong_code(conn, &challenge, now)?.into());
    }
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
        if budgeted {
            db::pairing_guesses::give_back(conn, &account.id, day)?;
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

/// The answer for a challenge id this server made that is not stored: a request that
/// named no usable account (or a real challenge already pruned), answered as a real one
/// would be, counting attempts in memory.
fn decoy_refusal(pairing: &Pairing, id: &str, created_at: i64, now: i64) -> PairingRefusal {
    if pairing.decoy_attempts(id) >= MAX_CODE_ATTEMPTS {
        return PairingRefusal::TooManyAttempts;
    }
    if created_at + CHALLENGE_TTL_SECONDS <= now {
        return PairingRefusal::Expired;
    }
    let attempts = pairing.decoy_attempt(id, now);
    if attempts >= MAX_CODE_ATTEMPTS {
        PairingRefusal::TooManyAttempts
    } else {
        PairingRefusal::WrongCode {
            remaining: MAX_CODE_ATTEMPTS - attempts,
        }
    }
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

/// Forgets challenges that ended more than an hour ago and guessing budgets of past days;
/// for the maintenance task.
pub fn prune_challenges(conn: &mut DbConn, now: i64) -> Result<usize, DbError> {
    let challenges = db::challenges::prune(conn, now - KEEP_ENDED_SECONDS)?;
    let days = db::pairing_guesses::prune(conn, now.div_euclid(SECONDS_PER_DAY))?;
    Ok(challenges + days)
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

/// Pending requests the owner can approve (by giving the app the code) or deny. The code
/// is shown only to a viewer that could itself have made the key the challenge would
/// produce (`within.covers`): an operator, or an API key holding every scope the key
/// would get and no expiry. Other keys see the request without its code.
pub fn pending_challenges(
    conn: &mut DbConn,
    pairing: &Pairing,
    within: Within<'_>,
    now: i64,
) -> Result<Vec<ChallengeView>, AccountError> {
    let Some(account_id) = within.account_id() else {
        return Err(AccountError::Invalid("name the account".into()));
    };
    let Some(account) = db::accounts::by_id(conn, account_id)? else {
        return Err(AccountError::AccountNotFound(account_id.to_owned()));
    };
    Ok(db::challenges::pending(conn, account_id, now)?
        .iter()
        .map(|challenge| {
            let visible = within.covers(&challenge.scopes.intersection(&account.scopes), None);
            ChallengeView::new(challenge, visible.then(|| pairing.code(&challenge.id)))
        })
        .collect())
}

/// CLI and admin API: every pending request of the account, with its code.
pub fn pending_challenges_for(
    conn: &mut DbConn,
    pairing: &Pairing,
    handle: &str,
    now: i64,
) -> Result<Vec<ChallengeView>, AccountError> {
    let account = accounts::by_handle(conn, handle)?;
    pending_challenges(conn, pairing, Within::Account(&account.id), now)
}

/// The pending challenge `id` if it is `within` reach: another account's (or an unknown)
/// challenge is "not found"; one that would make a key broader than the presenting key is
/// refused (403).
fn reachable(
    conn: &mut DbConn,
    id: &str,
    within: Within<'_>,
) -> Result<(Challenge, Account), AccountError> {
    let not_found = || AccountError::ChallengeNotFound(id.to_owned());
    let challenge = db::challenges::find(conn, id)?.ok_or_else(not_found)?;
    let owner = challenge.account_id.clone().ok_or_else(not_found)?;
    if within.account_id().is_some_and(|wanted| wanted != owner) {
        return Err(not_found());
    }
    let account = db::accounts::by_id(conn, &owner)?.ok_or_else(not_found)?;
    if !within.covers(&challenge.scopes.intersection(&account.scopes), None) {
        return Err(AccountError::Broader(format!(
            "pairing challenge {id:?} would make a key beyond the presenting key's scopes or lifetime"
        )));
    }
    Ok((challenge, account))
}

/// The owner refuses a pending request.
pub fn deny_challenge(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    within: Within<'_>,
    now: i64,
) -> Result<(), AccountError> {
    db::transaction(conn, |conn| {
        let (_, account) = reachable(conn, id, within)?;
        if !db::challenges::resolve(conn, id, ChallengeStatus::Denied, None, now)? {
            return Err(AccountError::ChallengeNotPending(id.to_owned()));
        }
        audit::record(
            conn,
            actor,
            account_event("challenge.denied", &account, Some(id), None),
            now,
        )?;
        Ok(())
    })
}

/// The owner vouches for a pending request: the app may then redeem it with its code even
/// when the account's daily guessing budget is spent (someone else guessing cannot lock
/// the owner out). A wrong code still counts against the challenge's own 3 attempts.
pub fn approve_challenge(
    conn: &mut DbConn,
    actor: &Actor,
    id: &str,
    within: Within<'_>,
    now: i64,
) -> Result<(), AccountError> {
    db::transaction(conn, |conn| {
        let (_, account) = reachable(conn, id, within)?;
        if !db::challenges::approve(conn, id, now)? {
            return Err(AccountError::ChallengeNotPending(id.to_owned()));
        }
        audit::record(
            conn,
            actor,
            account_event("challenge.owner_approved", &account, Some(id), None),
            now,
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairing() -> Pairing {
        Pairing::new(&MasterKey::parse(&MasterKey::generate_encoded()).unwrap())
    }

    #[test]
    fn ids_are_recognised_only_by_the_server_that_made_them() {
        let (ours, theirs) = (pairing(), pairing());
        let id = ours.new_id(1_700_000_000);
        assert_eq!(ours.created_at(&id), Some(1_700_000_000));
        assert_eq!(theirs.created_at(&id), None, "another master key");
        let mut tampered = id.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'2' { b'3' } else { b'2' };
        assert_eq!(ours.created_at(&String::from_utf8(tampered).unwrap()), None);
        assert_eq!(ours.created_at("no-such-challenge"), None);
        assert_eq!(ours.created_at(&"1".repeat(500)), None);
    }

    #[test]
    fn codes_are_four_digits_stable_per_id_and_secret() {
        let (ours, theirs) = (pairing(), pairing());
        let id = ours.new_id(0);
        let code = ours.code(&id);
        assert!(code.len() == 4 && code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(ours.code(&id), code);
        // Over many ids, codes differ between secrets and spread over the range.
        let ids: Vec<String> = (0..200).map(|_| ours.new_id(0)).collect();
        let differing = ids
            .iter()
            .filter(|id| ours.code(id) != theirs.code(id))
            .count();
        assert!(differing > 190, "{differing}");
        let distinct: std::collections::BTreeSet<String> =
            ids.iter().map(|id| ours.code(id)).collect();
        assert!(distinct.len() > 190, "{}", distinct.len());
    }

    #[test]
    fn decoys_answer_like_challenges_and_stay_bounded() {
        let pairing = pairing();
        let id = pairing.new_id(1_000);
        let created = pairing.created_at(&id).unwrap();
        assert_eq!(
            decoy_refusal(&pairing, &id, created, 1_010),
            PairingRefusal::WrongCode { remaining: 2 }
        );
        assert_eq!(
            decoy_refusal(&pairing, &id, created, 1_020),
            PairingRefusal::WrongCode { remaining: 1 }
        );
        assert_eq!(
            decoy_refusal(&pairing, &id, created, 1_030),
            PairingRefusal::TooManyAttempts
        );
        assert_eq!(
            decoy_refusal(&pairing, &id, created, 9_999),
            PairingRefusal::TooManyAttempts
        );
        let late = pairing.new_id(1_000);
        assert_eq!(
            decoy_refusal(&pairing, &late, 1_000, 1_300),
            PairingRefusal::Expired
        );

        for _ in 0..MAX_DECOYS + 10 {
            pairing.decoy_attempt(&pairing.new_id(1_000), 1_001);
        }
        assert!(pairing.decoys.lock().unwrap().len() <= MAX_DECOYS);
    }

    #[test]
    fn unknown_accounts_wait_about_as_long_as_a_stored_challenge_takes() {
        let pairing = pairing();
        assert_eq!(
            pairing.decoy_delay(Duration::from_millis(1)),
            Duration::ZERO
        );
        pairing.note_write_cost(Duration::from_millis(8));
        assert_eq!(
            pairing.decoy_delay(Duration::from_millis(1)),
            Duration::from_millis(7)
        );
        for _ in 0..50 {
            pairing.note_write_cost(Duration::from_millis(2));
        }
        let delay = pairing.decoy_delay(Duration::ZERO);
        assert!(
            delay >= Duration::from_millis(2) && delay < Duration::from_millis(3),
            "{delay:?}"
        );
        // Slow writes cannot make unknown accounts wait long.
        for _ in 0..50 {
            pairing.note_write_cost(Duration::from_secs(30));
        }
        let delay = pairing.decoy_delay(Duration::ZERO);
        assert!(
            delay > Duration::from_millis(240) && delay <= MAX_DECOY_DELAY,
            "{delay:?}"
        );
    }
}
