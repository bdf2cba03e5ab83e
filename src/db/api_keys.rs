//! Queries on `api_keys`.

use diesel::prelude::*;

use super::models::{AccountRow, ApiKeyRow, NewApiKeyRow};
use super::schema::{accounts, api_keys};
use super::{DbConn, DbError};
use crate::domain::{Account, ApiKey};

/// Stores a new key under the digest of its secret (the secret itself is never stored).
pub fn insert(conn: &mut DbConn, key: &ApiKey, digest: &[u8]) -> Result<(), DbError> {
    diesel::insert_into(api_keys::table)
        .values(NewApiKeyRow {
            id: &key.id,
            account_id: &key.account_id,
            name: &key.name,
            prefix: &key.prefix,
            digest,
            scopes: key.scopes.to_string(),
            created_at: key.created_at,
            expires_at: key.expires_at,
        })
        .execute(conn)?;
    Ok(())
}

fn with_account(
    row: Option<(ApiKeyRow, AccountRow)>,
) -> Result<Option<(ApiKey, Account)>, DbError> {
    Ok(match row {
        Some((key, account)) => Some((ApiKey::try_from(key)?, Account::try_from(account)?)),
        None => None,
    })
}

/// The one indexed read behind every API key use: the key by digest, with its account.
pub fn by_digest(conn: &mut DbConn, digest: &[u8]) -> Result<Option<(ApiKey, Account)>, DbError> {
    let row = api_keys::table
        .inner_join(accounts::table)
        .filter(api_keys::digest.eq(digest.to_vec()))
        .select((ApiKeyRow::as_select(), AccountRow::as_select()))
        .get_result(conn)
        .optional()?;
    with_account(row)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<(ApiKey, Account)>, DbError> {
    if !super::storable(id) {
        return Ok(None);
    }
    let row = api_keys::table
        .inner_join(accounts::table)
        .filter(api_keys::id.eq(id))
        .select((ApiKeyRow::as_select(), AccountRow::as_select()))
        .get_result(conn)
        .optional()?;
    with_account(row)
}

/// Newest first.
pub fn of_account(conn: &mut DbConn, account_id: &str) -> Result<Vec<ApiKey>, DbError> {
    let rows = api_keys::table
        .filter(api_keys::account_id.eq(account_id))
        .order((api_keys::created_at.desc(), api_keys::id.asc()))
        .select(ApiKeyRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

/// Marks a key revoked once; returns whether this call revoked it.
pub fn revoke(conn: &mut DbConn, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)?
        > 0)
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(api_keys::table.find(id)).execute(conn)? > 0)
}

/// Records the first use of a key: only where none was recorded yet, so that of several
/// instances seeing a key's first use at once, one says so.
pub fn touch_first(conn: &mut DbConn, id: &str, at: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::last_used_at.is_null()),
    )
    .set(api_keys::last_used_at.eq(at))
    .execute(conn)?
        > 0)
}

/// Records use; only moves forward. Returns whether the row changed.
pub fn touch(conn: &mut DbConn, id: &str, at: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(at)),
        ),
    )
    .set(api_keys::last_used_at.eq(at))
    .execute(conn)?
        > 0)
}
