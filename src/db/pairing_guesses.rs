//! Queries on `pairing_guesses`: the daily budget of pairing code guesses per account,
//! shared by every instance.

use diesel::prelude::*;

use super::schema::pairing_guesses;
use super::{DbConn, DbError, is_unique_violation};

/// Takes one guess from the account's budget for `day` if fewer than `max` were taken;
/// returns whether it did. Each statement is atomic on its own (call it outside a
/// transaction): the conditional increment cannot overshoot under concurrency, and when
/// two instances create the day's row at once the loser's insert fails on the primary key
/// and it retries the increment.
pub fn take(conn: &mut DbConn, account_id: &str, day: i64, max: i32) -> Result<bool, DbError> {
    for _ in 0..2 {
        let updated = diesel::update(
            pairing_guesses::table
                .filter(pairing_guesses::account_id.eq(account_id))
                .filter(pairing_guesses::day.eq(day))
                .filter(pairing_guesses::guesses.lt(max)),
        )
        .set(pairing_guesses::guesses.eq(pairing_guesses::guesses + 1))
        .execute(conn)?;
        if updated > 0 {
            return Ok(true);
        }
        let exists = pairing_guesses::table
            .find((account_id, day))
            .select(pairing_guesses::guesses)
            .get_result::<i32>(conn)
            .optional()?
            .is_some();
        if exists || max < 1 {
            return Ok(false);
        }
        match diesel::insert_into(pairing_guesses::table)
            .values((
                pairing_guesses::account_id.eq(account_id),
                pairing_guesses::day.eq(day),
                pairing_guesses::guesses.eq(1),
            ))
            .execute(conn)
        {
            Ok(_) => return Ok(true),
            Err(err) if is_unique_violation(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(false)
}

/// Gives a guess back (a right code is not a wrong guess).
pub fn give_back(conn: &mut DbConn, account_id: &str, day: i64) -> Result<(), DbError> {
    diesel::update(
        pairing_guesses::table
            .filter(pairing_guesses::account_id.eq(account_id))
            .filter(pairing_guesses::day.eq(day))
            .filter(pairing_guesses::guesses.gt(0)),
    )
    .set(pairing_guesses::guesses.eq(pairing_guesses::guesses - 1))
    .execute(conn)?;
    Ok(())
}

/// Guesses taken on `day` (0 when none).
pub fn taken(conn: &mut DbConn, account_id: &str, day: i64) -> Result<i32, DbError> {
    Ok(pairing_guesses::table
        .find((account_id, day))
        .select(pairing_guesses::guesses)
        .get_result::<i32>(conn)
        .optional()?
        .unwrap_or(0))
}

/// Forgets days before `day`.
pub fn prune(conn: &mut DbConn, day: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(pairing_guesses::table.filter(pairing_guesses::day.lt(day)))
            .execute(conn)?,
    )
}
