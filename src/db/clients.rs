//! Queries on `clients`.

use diesel::prelude::*;

use super::DbConn;
use super::models::{ClientChanges, ClientRow, NewClientRow};
use super::schema::clients;

/// The token endpoint's one indexed read (primary key).
///
/// Lookups that match at most one row use `get_result`, not `first`: `first` adds a bound
/// `LIMIT ?`, and SQLite (3.50) re-prepares a cached statement whose LIMIT is re-bound, which
/// tripled the cost of this query (`cargo bench`: 22.8 µs → 7.1 µs).
pub fn find(conn: &mut DbConn, id: &str) -> QueryResult<Option<ClientRow>> {
    if !super::storable(id) {
        return Ok(None);
    }
    clients::table
        .find(id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn list(conn: &mut DbConn) -> QueryResult<Vec<ClientRow>> {
    clients::table
        .order((clients::created_at.asc(), clients::id.asc()))
        .select(ClientRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConn, row: &NewClientRow<'_>) -> QueryResult<()> {
    diesel::insert_into(clients::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Returns whether a row was changed (false: no such client).
pub fn update(conn: &mut DbConn, id: &str, changes: &ClientChanges) -> QueryResult<bool> {
    if !super::storable(id) {
        return Ok(false);
    }
    diesel::update(clients::table.find(id))
        .set(changes)
        .execute(conn)
        .map(|n| n > 0)
}

pub fn delete(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    if !super::storable(id) {
        return Ok(false);
    }
    diesel::delete(clients::table.find(id))
        .execute(conn)
        .map(|n| n > 0)
}

/// Bulk revocation in one statement (no lost update between two revocations): tokens issued
/// before the returned bound are revoked. The bound only moves forward: past `now`, or one
/// past the previous bound when that is already ahead (two revocations in one second).
pub fn bump_tokens_not_before(conn: &mut DbConn, id: &str, now: i64) -> QueryResult<bool> {
    if !super::storable(id) {
        return Ok(false);
    }
    diesel::sql_query(
        "UPDATE clients SET tokens_not_before = CASE \
         WHEN tokens_not_before IS NOT NULL AND tokens_not_before > $1 THEN tokens_not_before + 1 \
         ELSE $1 + 1 END, updated_at = $1 WHERE id = $2",
    )
    .bind::<diesel::sql_types::BigInt, _>(now)
    .bind::<diesel::sql_types::Text, _>(id)
    .execute(conn)
    .map(|n| n > 0)
}

pub fn count(conn: &mut DbConn) -> QueryResult<i64> {
    clients::table.count().get_result(conn)
}

/// Scopes of enabled clients, for the metadata's `scopes_supported`.
pub fn enabled_scope_lists(conn: &mut DbConn) -> QueryResult<Vec<String>> {
    clients::table
        .filter(clients::disabled_at.is_null())
        .select(clients::scopes)
        .load(conn)
}
