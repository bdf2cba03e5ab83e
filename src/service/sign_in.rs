//! Signing in to the console with a handle and password: the same answer for an unknown
//! handle, an account without a password and a wrong password, and a growing block on an
//! account after repeated failures (stored in the database, so it holds across instances).
//!
//! The password check itself (argon2id, tens of milliseconds) runs between two short database
//! calls, never while holding a pooled connection.

use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, Credentials};

/// Failures allowed before the account is blocked.
pub const FREE_FAILURES: i32 = 5;
/// The first block; each further failure doubles it, up to [`MAX_BLOCK_SECONDS`].
const FIRST_BLOCK_SECONDS: i64 = 30;
pub const MAX_BLOCK_SECONDS: i64 = 15 * 60;

/// What the database says about a sign-in attempt before the password is checked.
#[derive(Debug)]
pub enum Attempt {
    /// Check the password against these credentials.
    Check(Box<(Account, Credentials)>),
    /// Nothing to check against (unknown handle, no password yet, disabled account): the
    /// caller spends the same time and gives the same answer as for a wrong password.
    Refuse,
    /// Too many recent failures: not even checked.
    Blocked { retry_after: i64 },
}

pub fn begin(conn: &mut DbConn, handle: &str, now: i64) -> Result<Attempt, DbError> {
    let handle = handle.trim().to_ascii_lowercase();
    let Some(account) = db::accounts::by_handle(conn, &handle)? else {
        return Ok(Attempt::Refuse);
    };
    let Some(credentials) = db::credentials::of_account(conn, &account.id)? else {
        return Ok(Attempt::Refuse);
    };
    if let Some(until) = credentials.sign_in_blocked_until.filter(|t| *t > now) {
        return Ok(Attempt::Blocked {
            retry_after: until - now,
        });
    }
    if account.is_disabled() {
        return Ok(Attempt::Refuse);
    }
    Ok(Attempt::Check(Box::new((account, credentials))))
}

/// How long an account is blocked after its `failures`-th failure in a row.
pub fn block_after(failures: i32) -> Option<i64> {
    let over = failures - FREE_FAILURES;
    if over < 0 {
        return None;
    }
    let doubled = FIRST_BLOCK_SECONDS.saturating_mul(1_i64 << over.min(20));
    Some(doubled.min(MAX_BLOCK_SECONDS))
}

/// Records a wrong password; returns the block it starts, if any.
pub fn record_failure(
    conn: &mut DbConn,
    credentials: &Credentials,
    now: i64,
) -> Result<Option<i64>, DbError> {
    let failures = credentials.failed_sign_ins.saturating_add(1);
    let block = block_after(failures);
    db::credentials::record_failure(
        conn,
        &credentials.account_id,
        block.map(|seconds| now + seconds),
    )?;
    Ok(block)
}

pub fn record_success(conn: &mut DbConn, credentials: &Credentials) -> Result<(), DbError> {
    if credentials.failed_sign_ins > 0 || credentials.sign_in_blocked_until.is_some() {
        db::credentials::clear_failures(conn, &credentials.account_id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_start_after_the_free_failures_and_double_up_to_the_cap() {
        assert_eq!(block_after(FREE_FAILURES - 1), None);
        assert_eq!(block_after(FREE_FAILURES), Some(30));
        assert_eq!(block_after(FREE_FAILURES + 1), Some(60));
        assert_eq!(block_after(FREE_FAILURES + 2), Some(120));
        assert_eq!(block_after(FREE_FAILURES + 30), Some(MAX_BLOCK_SECONDS));
        assert_eq!(block_after(i32::MAX), Some(MAX_BLOCK_SECONDS));
    }
}
