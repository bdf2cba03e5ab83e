//! Queries on `pairing_challenges`.

use diesel::prelude::*;

use super::models::{ChallengeRow, NewChallengeRow};
use super::schema::pairing_challenges;
use super::{DbConn, DbError};
use crate::domain::{Challenge, ChallengeStatus};

const PENDING: &str = ChallengeStatus::Pending.as_str();

pub fn insert(conn: &mut DbConn, challenge: &Challenge) -> Result<(), DbError> {
    diesel::insert_into(pairing_challenges::table)
        .values(NewChallengeRow::from(challenge))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Challenge>, DbError> {
    if !super::storable(id) {
        return Ok(None);
    }
    let row = pairing_challenges::table
        .find(id)
        .select(ChallengeRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(Challenge::try_from).transpose()?)
}

/// Pending and unexpired, newest first.
pub fn pending(conn: &mut DbConn, account_id: &str, now: i64) -> Result<Vec<Challenge>, DbError> {
    let rows = pairing_challenges::table
        .filter(pairing_challenges::account_id.eq(account_id))
        .filter(pairing_challenges::status.eq(PENDING))
        .filter(pairing_challenges::expires_at.gt(now))
        .order(pairing_challenges::created_at.desc())
        .select(ChallengeRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

/// Moves a pending, unexpired challenge to `status`; the `WHERE` makes it happen once even
/// when two requests race. Returns whether this call did it.
pub fn resolve(
    conn: &mut DbConn,
    id: &str,
    status: ChallengeStatus,
    api_key_id: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    Ok(diesel::update(
        pairing_challenges::table
            .filter(pairing_challenges::id.eq(id))
            .filter(pairing_challenges::status.eq(PENDING))
            .filter(pairing_challenges::expires_at.gt(now)),
    )
    .set((
        pairing_challenges::status.eq(status.as_str()),
        pairing_challenges::resolved_at.eq(now),
        pairing_challenges::api_key_id.eq(api_key_id),
    ))
    .execute(conn)?
        > 0)
}

/// Counts a wrong code; the challenge dies (`failed`) at `max_attempts`. Returns the
/// attempts used so far, or None if the challenge was not pending. Call it inside a
/// transaction.
pub fn record_failed_attempt(
    conn: &mut DbConn,
    id: &str,
    max_attempts: i32,
    now: i64,
) -> Result<Option<i32>, DbError> {
    let updated = diesel::update(
        pairing_challenges::table
            .filter(pairing_challenges::id.eq(id))
            .filter(pairing_challenges::status.eq(PENDING)),
    )
    .set(pairing_challenges::failed_attempts.eq(pairing_challenges::failed_attempts + 1))
    .execute(conn)?;
    if updated == 0 {
        return Ok(None);
    }
    let attempts: i32 = pairing_challenges::table
        .find(id)
        .select(pairing_challenges::failed_attempts)
        .get_result(conn)?;
    if attempts >= max_attempts {
        diesel::update(pairing_challenges::table.find(id))
            .set((
                pairing_challenges::status.eq(ChallengeStatus::Failed.as_str()),
                pairing_challenges::resolved_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(Some(attempts))
}

/// The owner approves a pending, unexpired challenge (it may then be redeemed past the
/// account's guessing budget). Returns whether it was pending.
pub fn approve(conn: &mut DbConn, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        pairing_challenges::table
            .filter(pairing_challenges::id.eq(id))
            .filter(pairing_challenges::status.eq(PENDING))
            .filter(pairing_challenges::expires_at.gt(now)),
    )
    .set(pairing_challenges::owner_approved_at.eq(now))
    .execute(conn)?
        > 0)
}

/// Deletes challenges that ended (or never could succeed) before `before`.
pub fn prune(conn: &mut DbConn, before: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(
        pairing_challenges::table
            .filter(pairing_challenges::status.ne(PENDING))
            .filter(pairing_challenges::created_at.lt(before)),
    )
    .execute(conn)?)
}

/// Pending challenges past their expiry, to be marked expired by the maintenance task.
pub fn overdue(conn: &mut DbConn, now: i64) -> Result<Vec<Challenge>, DbError> {
    let rows = pairing_challenges::table
        .filter(pairing_challenges::status.eq(PENDING))
        .filter(pairing_challenges::expires_at.le(now))
        .select(ChallengeRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

pub fn mark_expired(conn: &mut DbConn, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        pairing_challenges::table
            .filter(pairing_challenges::id.eq(id))
            .filter(pairing_challenges::status.eq(PENDING)),
    )
    .set((
        pairing_challenges::status.eq(ChallengeStatus::Expired.as_str()),
        pairing_challenges::resolved_at.eq(now),
    ))
    .execute(conn)?
        > 0)
}
