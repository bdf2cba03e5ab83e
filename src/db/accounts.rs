//! Queries on `accounts`, `api_keys` and `pairing_challenges`.

use diesel::prelude::*;

use super::DbConn;
use super::models::{
    AccountRow, ApiKeyRow, ChallengeRow, NewAccountRow, NewApiKeyRow, NewChallengeRow,
};
use super::schema::{accounts, api_keys, pairing_challenges};

pub fn insert(conn: &mut DbConn, row: &NewAccountRow<'_>) -> QueryResult<()> {
    diesel::insert_into(accounts::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn by_handle(conn: &mut DbConn, handle: &str) -> QueryResult<Option<AccountRow>> {
    if !super::storable(handle) {
        return Ok(None);
    }
    accounts::table
        .filter(accounts::handle.eq(handle))
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<AccountRow>> {
    accounts::table
        .order(accounts::handle.asc())
        .select(AccountRow::as_select())
        .load(conn)
}

pub fn set_disabled(conn: &mut DbConn, id: &str, disabled_at: Option<i64>) -> QueryResult<bool> {
    diesel::update(accounts::table.find(id))
        .set(accounts::disabled_at.eq(disabled_at))
        .execute(conn)
        .map(|n| n > 0)
}

/// Deletes the account with its keys and challenges (explicitly, not relying on the
/// foreign key cascade, which SQLite enforces only with `PRAGMA foreign_keys`).
pub fn delete(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    conn.transaction(|conn| {
        diesel::delete(api_keys::table.filter(api_keys::account_id.eq(id))).execute(conn)?;
        diesel::delete(pairing_challenges::table.filter(pairing_challenges::account_id.eq(id)))
            .execute(conn)?;
        diesel::delete(accounts::table.find(id))
            .execute(conn)
            .map(|n| n > 0)
    })
}

pub fn insert_key(conn: &mut DbConn, row: &NewApiKeyRow<'_>) -> QueryResult<()> {
    diesel::insert_into(api_keys::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The one indexed read behind every API key use: the key by digest, with its account.
pub fn key_by_digest(
    conn: &mut DbConn,
    digest: &[u8],
) -> QueryResult<Option<(ApiKeyRow, AccountRow)>> {
    api_keys::table
        .inner_join(accounts::table)
        .filter(api_keys::digest.eq(digest.to_vec()))
        .select((ApiKeyRow::as_select(), AccountRow::as_select()))
        .get_result(conn)
        .optional()
}

pub fn key_by_id(conn: &mut DbConn, id: &str) -> QueryResult<Option<(ApiKeyRow, AccountRow)>> {
    if !super::storable(id) {
        return Ok(None);
    }
    api_keys::table
        .inner_join(accounts::table)
        .filter(api_keys::id.eq(id))
        .select((ApiKeyRow::as_select(), AccountRow::as_select()))
        .get_result(conn)
        .optional()
}

pub fn keys_of(conn: &mut DbConn, account_id: &str) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .order((api_keys::created_at.desc(), api_keys::id.asc()))
        .select(ApiKeyRow::as_select())
        .load(conn)
}

/// Marks a key revoked once; returns whether this call revoked it.
pub fn revoke_key(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)
    .map(|n| n > 0)
}

pub fn delete_key(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    diesel::delete(api_keys::table.find(id))
        .execute(conn)
        .map(|n| n > 0)
}

/// Records use; only moves forward. Returns whether the row changed.
pub fn touch_key(conn: &mut DbConn, id: &str, at: i64) -> QueryResult<bool> {
    diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(at)),
        ),
    )
    .set(api_keys::last_used_at.eq(at))
    .execute(conn)
    .map(|n| n > 0)
}

pub fn insert_challenge(conn: &mut DbConn, row: &NewChallengeRow<'_>) -> QueryResult<()> {
    diesel::insert_into(pairing_challenges::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn challenge(conn: &mut DbConn, id: &str) -> QueryResult<Option<ChallengeRow>> {
    if !super::storable(id) {
        return Ok(None);
    }
    pairing_challenges::table
        .find(id)
        .select(ChallengeRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn pending_challenges(
    conn: &mut DbConn,
    account_id: &str,
    now: i64,
) -> QueryResult<Vec<ChallengeRow>> {
    pairing_challenges::table
        .filter(pairing_challenges::account_id.eq(account_id))
        .filter(pairing_challenges::status.eq("pending"))
        .filter(pairing_challenges::expires_at.gt(now))
        .order(pairing_challenges::created_at.desc())
        .select(ChallengeRow::as_select())
        .load(conn)
}

/// Moves a pending, unexpired challenge to `status`; the `WHERE` makes it happen once even
/// when two requests race. Returns whether this call did it.
pub fn resolve_challenge(
    conn: &mut DbConn,
    id: &str,
    status: &str,
    api_key_id: Option<&str>,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        pairing_challenges::table
            .filter(pairing_challenges::id.eq(id))
            .filter(pairing_challenges::status.eq("pending"))
            .filter(pairing_challenges::expires_at.gt(now)),
    )
    .set((
        pairing_challenges::status.eq(status),
        pairing_challenges::resolved_at.eq(now),
        pairing_challenges::api_key_id.eq(api_key_id),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// Counts a wrong code; the challenge dies (`failed`) at `max_attempts`. Returns the
/// attempts used so far, or None if the challenge was not pending.
pub fn record_failed_attempt(
    conn: &mut DbConn,
    id: &str,
    max_attempts: i32,
    now: i64,
) -> QueryResult<Option<i32>> {
    conn.transaction(|conn| {
        let updated = diesel::update(
            pairing_challenges::table
                .filter(pairing_challenges::id.eq(id))
                .filter(pairing_challenges::status.eq("pending")),
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
                    pairing_challenges::status.eq("failed"),
                    pairing_challenges::resolved_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(Some(attempts))
    })
}

/// Wrong codes entered for the account's challenges created since `since`: the budget that
/// bounds guessing across challenges (the 3-per-challenge limit alone does not).
pub fn failed_attempts_since(conn: &mut DbConn, account_id: &str, since: i64) -> QueryResult<i64> {
    pairing_challenges::table
        .filter(pairing_challenges::account_id.eq(account_id))
        .filter(pairing_challenges::created_at.gt(since))
        .select(diesel::dsl::sum(pairing_challenges::failed_attempts))
        .get_result::<Option<i64>>(conn)
        .map(Option::unwrap_or_default)
}

/// Deletes challenges that ended (or never could succeed) before `before`.
pub fn prune_challenges(conn: &mut DbConn, before: i64) -> QueryResult<usize> {
    diesel::delete(
        pairing_challenges::table
            .filter(pairing_challenges::status.ne("pending"))
            .filter(pairing_challenges::created_at.lt(before)),
    )
    .execute(conn)
}

/// Pending challenges past their expiry, to be marked expired by the maintenance task.
pub fn overdue_challenges(conn: &mut DbConn, now: i64) -> QueryResult<Vec<ChallengeRow>> {
    pairing_challenges::table
        .filter(pairing_challenges::status.eq("pending"))
        .filter(pairing_challenges::expires_at.le(now))
        .select(ChallengeRow::as_select())
        .load(conn)
}

pub fn mark_expired(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<bool> {
    diesel::update(
        pairing_challenges::table
            .filter(pairing_challenges::id.eq(id))
            .filter(pairing_challenges::status.eq("pending")),
    )
    .set((
        pairing_challenges::status.eq("expired"),
        pairing_challenges::resolved_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n > 0)
}
