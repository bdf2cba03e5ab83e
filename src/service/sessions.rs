//! Console sessions: started by a sign-in, resumed from the cookie on each request, ended by
//! sign-out, by the person from another browser, by idle or absolute timeouts, or at once when
//! the account is disabled or deleted. Stored in the database, so every instance sees them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::secrets::{SecretDigest, random_bytes, random_id};
use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, ConsoleSession};

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle_seconds: i64,
    /// Ends this long after sign-in, however active.
    pub absolute_seconds: i64,
}

/// How long a password-only sign-in waits for its second factor.
pub const SECOND_FACTOR_WINDOW_SECONDS: i64 = 300;

/// `last_seen_at` is written at most this often, so that browsing is not a write per page.
const TOUCH_EVERY_SECONDS: i64 = 60;

/// The cookie's value: 256 random bits, shown only to the browser, stored only as a digest.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(redacted)")
    }
}

/// Where a browser signs in from, as shown in the person's list of sessions.
#[derive(Debug, Clone, Default)]
pub struct BrowserInfo {
    pub user_agent: String,
    pub address: String,
}

impl BrowserInfo {
    pub fn new(user_agent: &str, address: &str) -> Self {
        let clip =
            |text: &str| -> String { text.chars().filter(|c| !c.is_control()).take(200).collect() };
        Self {
            user_agent: clip(user_agent),
            address: clip(address),
        }
    }
}

/// A new session and the token for its cookie.
#[derive(Debug)]
pub struct StartedSession {
    pub token: SessionToken,
    pub session: ConsoleSession,
}

/// Starts a session for `account`. With `second_factor_pending`, only the second-factor step
/// is open to it until [`complete_second_factor`].
pub fn start(
    conn: &mut DbConn,
    account: &Account,
    second_factor_pending: bool,
    browser: &BrowserInfo,
    policy: &SessionPolicy,
    now: i64,
) -> Result<StartedSession, DbError> {
    let token = SessionToken::generate();
    let session = ConsoleSession {
        id: random_id(),
        account_id: account.id.clone(),
        csrf_token: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
        second_factor_pending,
        created_at: now,
        last_seen_at: now,
        expires_at: now.saturating_add(policy.absolute_seconds),
        user_agent: browser.user_agent.clone(),
        address: browser.address.clone(),
    };
    db::console_sessions::insert(
        conn,
        &session,
        SecretDigest::of(token.expose().as_bytes()).as_bytes(),
    )?;
    Ok(StartedSession { token, session })
}

/// A browser with a live session, and its account.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: ConsoleSession,
    pub account: Account,
}

/// The live session behind a cookie value, if any. A session past its idle or absolute end,
/// or whose account is disabled or gone, is deleted and gives `None`.
pub fn resume(
    conn: &mut DbConn,
    token: &str,
    policy: &SessionPolicy,
    now: i64,
) -> Result<Option<SignedIn>, DbError> {
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let digest = SecretDigest::of(token.as_bytes());
    let Some(mut session) = db::console_sessions::by_token_digest(conn, digest.as_bytes())? else {
        return Ok(None);
    };
    let account = db::accounts::by_id(conn, &session.account_id)?;
    let finished = session.expires_at <= now
        || session.last_seen_at.saturating_add(policy.idle_seconds) <= now
        || (session.second_factor_pending
            && session
                .created_at
                .saturating_add(SECOND_FACTOR_WINDOW_SECONDS)
                <= now);
    let account = match account {
        Some(account) if !finished && !account.is_disabled() => account,
        _ => {
            db::console_sessions::delete(conn, &session.account_id, &session.id)?;
            return Ok(None);
        }
    };
    if now - session.last_seen_at >= TOUCH_EVERY_SECONDS {
        db::console_sessions::touch(conn, &session.id, now)?;
        session.last_seen_at = now;
    }
    Ok(Some(SignedIn { session, account }))
}

pub fn complete_second_factor(
    conn: &mut DbConn,
    session: &ConsoleSession,
    now: i64,
) -> Result<bool, DbError> {
    db::console_sessions::complete_second_factor(conn, &session.id, now)
}

/// Signs this browser out.
pub fn end(conn: &mut DbConn, session: &ConsoleSession) -> Result<(), DbError> {
    db::console_sessions::delete(conn, &session.account_id, &session.id)?;
    Ok(())
}

/// Ends one of the account's sessions by its public id; false when there is none.
pub fn end_one(conn: &mut DbConn, account_id: &str, id: &str) -> Result<bool, DbError> {
    db::console_sessions::delete(conn, account_id, id)
}

/// Ends every session of the account except `keep`.
pub fn end_others(conn: &mut DbConn, keep: &ConsoleSession) -> Result<usize, DbError> {
    db::console_sessions::delete_others(conn, &keep.account_id, &keep.id)
}

pub fn list(conn: &mut DbConn, account_id: &str) -> Result<Vec<ConsoleSession>, DbError> {
    db::console_sessions::of_account(conn, account_id)
}

/// Maintenance: drops finished sessions.
pub fn prune(conn: &mut DbConn, policy: &SessionPolicy, now: i64) -> Result<usize, DbError> {
    db::console_sessions::delete_finished(conn, now, now.saturating_sub(policy.idle_seconds))
}
