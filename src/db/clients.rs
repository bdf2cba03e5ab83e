//! Queries on `clients`.

use diesel::prelude::*;

use super::models::{ClientChangesRow, ClientRow, NewClientRow, join_list};
use super::schema::clients;
use super::{DbConn, DbError};
use crate::domain::{Client, GrantType};
use crate::oauth::Scope;

/// A new secret digest, with the previous digest and when it stops working (or None).
pub type SecretChange = (Vec<u8>, Option<(Vec<u8>, i64)>);

/// A partial update; `None` keeps a value as it is.
#[derive(Debug, Default)]
pub struct ClientChanges {
    pub name: Option<String>,
    pub scopes: Option<Scope>,
    pub audiences: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub token_ttl: Option<Option<i64>>,
    pub disabled_at: Option<Option<i64>>,
    pub secret: Option<SecretChange>,
    pub updated_at: Option<i64>,
}

impl From<&ClientChanges> for ClientChangesRow {
    fn from(changes: &ClientChanges) -> Self {
        let (secret_digest, previous) = match &changes.secret {
            Some((digest, previous)) => (Some(digest.clone()), Some(previous.clone())),
            None => (None, None),
        };
        Self {
            name: changes.name.clone(),
            scopes: changes.scopes.as_ref().map(Scope::to_string),
            audiences: changes.audiences.as_deref().map(join_list),
            grant_types: changes
                .grant_types
                .as_ref()
                .map(|grants| join_list(&grants.iter().map(|g| g.as_str()).collect::<Vec<_>>())),
            token_ttl: changes.token_ttl,
            disabled_at: changes.disabled_at,
            secret_digest,
            previous_secret_digest: previous
                .as_ref()
                .map(|p| p.as_ref().map(|(digest, _)| digest.clone())),
            previous_secret_expires_at: previous.map(|p| p.map(|(_, until)| until)),
            updated_at: changes.updated_at,
        }
    }
}

/// The token endpoint's one indexed read (primary key).
///
/// Lookups that match at most one row use `get_result`, not `first`: `first` adds a bound
/// `LIMIT ?`, and SQLite (3.50) re-prepares a cached statement whose LIMIT is re-bound, which
/// tripled the cost of this query (`cargo bench`: 22.8 µs → 7.1 µs).
pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Client>, DbError> {
    if !super::storable(id) {
        return Ok(None);
    }
    let row = clients::table
        .find(id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(Client::try_from).transpose()?)
}

pub fn list(conn: &mut DbConn) -> Result<Vec<Client>, DbError> {
    let rows = clients::table
        .order((clients::created_at.asc(), clients::id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

pub fn insert(conn: &mut DbConn, client: &Client) -> Result<(), DbError> {
    diesel::insert_into(clients::table)
        .values(NewClientRow::from(client))
        .execute(conn)?;
    Ok(())
}

/// Returns whether a row was changed (false: no such client).
pub fn update(conn: &mut DbConn, id: &str, changes: &ClientChanges) -> Result<bool, DbError> {
    if !super::storable(id) {
        return Ok(false);
    }
    Ok(diesel::update(clients::table.find(id))
        .set(ClientChangesRow::from(changes))
        .execute(conn)?
        > 0)
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    if !super::storable(id) {
        return Ok(false);
    }
    Ok(diesel::delete(clients::table.find(id)).execute(conn)? > 0)
}

/// Bulk revocation in one statement (no lost update between two revocations): tokens issued
/// before the returned bound are revoked. The bound only moves forward: past `now`, or one
/// past the previous bound when that is already ahead (two revocations in one second).
pub fn bump_tokens_not_before(conn: &mut DbConn, id: &str, now: i64) -> Result<bool, DbError> {
    if !super::storable(id) {
        return Ok(false);
    }
    Ok(diesel::sql_query(
        "UPDATE clients SET tokens_not_before = CASE \
         WHEN tokens_not_before IS NOT NULL AND tokens_not_before > $1 THEN tokens_not_before + 1 \
         ELSE $1 + 1 END, updated_at = $1 WHERE id = $2",
    )
    .bind::<diesel::sql_types::BigInt, _>(now)
    .bind::<diesel::sql_types::Text, _>(id)
    .execute(conn)?
        > 0)
}

pub fn count(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(clients::table.count().get_result(conn)?)
}

/// Scopes of enabled clients, for the metadata's `scopes_supported`.
pub fn enabled_scopes(conn: &mut DbConn) -> Result<Vec<Scope>, DbError> {
    let lists: Vec<(String, String)> = clients::table
        .filter(clients::disabled_at.is_null())
        .select((clients::id, clients::scopes))
        .load(conn)?;
    lists
        .iter()
        .map(|(id, text)| Ok(crate::domain::stored_scope("clients", id, text)?))
        .collect()
}
