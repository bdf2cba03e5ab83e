//! Queries on `signing_keys`.

use diesel::prelude::*;

use super::DbConn;
use super::models::{NewSigningKeyRow, SigningKeyRow};
use super::schema::signing_keys;

pub const STATE_ACTIVE: &str = "active";
pub const STATE_RETIRED: &str = "retired";

/// Keys that are still published at `now`: the active one and retired ones whose tokens
/// may not have expired yet.
pub fn published(conn: &mut DbConn, now: i64) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(
            signing_keys::state.eq(STATE_ACTIVE).or(signing_keys::state
                .eq(STATE_RETIRED)
                .and(signing_keys::publish_until.gt(now))),
        )
        .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)
}

/// A cheap summary of the key table, polled by running servers to notice a rotation made
/// elsewhere (the CLI, another instance) without decrypting anything.
pub fn fingerprint(conn: &mut DbConn) -> QueryResult<Vec<(String, String, Option<i64>)>> {
    signing_keys::table
        .order(signing_keys::kid.asc())
        .select((
            signing_keys::kid,
            signing_keys::state,
            signing_keys::publish_until,
        ))
        .load(conn)
}

pub fn insert(conn: &mut DbConn, row: &NewSigningKeyRow<'_>) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Retires every active key; `publish_until` is when the last token it may have signed
/// expires. Returns how many keys were retired.
pub fn retire_active(conn: &mut DbConn, now: i64, publish_until: i64) -> QueryResult<usize> {
    diesel::update(signing_keys::table.filter(signing_keys::state.eq(STATE_ACTIVE)))
        .set((
            signing_keys::state.eq(STATE_RETIRED),
            signing_keys::retired_at.eq(now),
            signing_keys::publish_until.eq(publish_until),
        ))
        .execute(conn)
}
