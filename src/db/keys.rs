//! Queries on `signing_keys`.
//!
//! States: `next` (published, not yet signing), `active` (signing; at most one),
//! `retired` (published until `publish_until`, when every token it signed has expired).

use diesel::prelude::*;

use super::DbConn;
use super::models::{NewSigningKeyRow, SigningKeyRow};
use super::schema::signing_keys;

pub const STATE_NEXT: &str = "next";
pub const STATE_ACTIVE: &str = "active";
pub const STATE_RETIRED: &str = "retired";

/// Keys published at `now`: next, active, and retired ones whose tokens may still be valid.
pub fn published(conn: &mut DbConn, now: i64) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(
            signing_keys::state
                .eq_any([STATE_ACTIVE, STATE_NEXT])
                .or(signing_keys::state
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

pub fn in_state(conn: &mut DbConn, state: &str) -> QueryResult<Option<SigningKeyRow>> {
    signing_keys::table
        .filter(signing_keys::state.eq(state))
        .select(SigningKeyRow::as_select())
        .get_result(conn)
        .optional()
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

/// Retires the active key; `publish_until` is when the last token it may have signed
/// expires. Returns how many keys were retired (0 or 1).
pub fn retire_active(conn: &mut DbConn, now: i64, publish_until: i64) -> QueryResult<usize> {
    diesel::update(signing_keys::table.filter(signing_keys::state.eq(STATE_ACTIVE)))
        .set((
            signing_keys::state.eq(STATE_RETIRED),
            signing_keys::retired_at.eq(now),
            signing_keys::publish_until.eq(publish_until),
        ))
        .execute(conn)
}

/// Promotes the pre-published key to active.
pub fn promote(conn: &mut DbConn, kid: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(signing_keys::state.eq(STATE_NEXT)),
    )
    .set((
        signing_keys::state.eq(STATE_ACTIVE),
        signing_keys::activated_at.eq(now),
    ))
    .execute(conn)
}

/// Drops a pre-published key that will never sign (an algorithm change).
pub fn delete_next(conn: &mut DbConn) -> QueryResult<usize> {
    diesel::delete(signing_keys::table.filter(signing_keys::state.eq(STATE_NEXT))).execute(conn)
}

/// Takes the lock that serializes rotations, so that instances racing on a schedule rotate
/// once: a transaction-scoped advisory lock on PostgreSQL (released at commit or rollback;
/// its key is derived from the schema, so deployments sharing a database in different
/// schemas do not block each other); on SQLite, a first write, which takes the database's
/// single write lock. With `wait` false, returns false at once when another instance holds
/// the lock.
pub fn lock_rotation(conn: &mut DbConn, wait: bool) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    match conn {
        DbConn::Postgres(pg) => {
            let query = if wait {
                "SELECT true AS locked FROM \
                 (SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tollgate.signing_keys'))) AS l"
            } else {
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.tollgate.signing_keys')) AS locked"
            };
            diesel::sql_query(query)
                .get_result::<Locked>(pg)
                .map(|row| row.locked)
        }
        DbConn::Sqlite(sqlite) => {
            diesel::sql_query("UPDATE signing_keys SET state = state WHERE state = 'active'")
                .execute(sqlite)
                .map(|_| true)
        }
    }
}
