//! Queries on `accounts`.

use diesel::prelude::*;

use super::models::{AccountRow, NewAccountRow};
use super::schema::{
    account_credentials, account_invites, accounts, api_keys, app_authorizations,
    pairing_challenges, recovery_codes,
};
use super::{DbConn, DbError};
use crate::domain::Account;

/// Fails with a unique violation (see [`super::is_unique_violation`]) when the handle is taken.
pub fn insert(conn: &mut DbConn, account: &Account) -> Result<(), DbError> {
    diesel::insert_into(accounts::table)
        .values(NewAccountRow {
            id: &account.id,
            handle: &account.handle,
            display_name: &account.display_name,
            scopes: account.scopes.to_string(),
            created_at: account.created_at,
            is_operator: account.is_operator,
        })
        .execute(conn)?;
    Ok(())
}

pub fn by_handle(conn: &mut DbConn, handle: &str) -> Result<Option<Account>, DbError> {
    if !super::storable(handle) {
        return Ok(None);
    }
    let row = accounts::table
        .filter(accounts::handle.eq(handle))
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(Account::try_from).transpose()?)
}

pub fn by_id(conn: &mut DbConn, id: &str) -> Result<Option<Account>, DbError> {
    if !super::storable(id) {
        return Ok(None);
    }
    let row = accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(Account::try_from).transpose()?)
}

pub fn list(conn: &mut DbConn) -> Result<Vec<Account>, DbError> {
    let rows = accounts::table
        .order(accounts::handle.asc())
        .select(AccountRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

pub fn set_disabled(
    conn: &mut DbConn,
    id: &str,
    disabled_at: Option<i64>,
) -> Result<bool, DbError> {
    Ok(diesel::update(accounts::table.find(id))
        .set(accounts::disabled_at.eq(disabled_at))
        .execute(conn)?
        > 0)
}

pub fn set_operator(conn: &mut DbConn, id: &str, is_operator: bool) -> Result<bool, DbError> {
    Ok(diesel::update(accounts::table.find(id))
        .set(accounts::is_operator.eq(is_operator))
        .execute(conn)?
        > 0)
}

/// Deletes the account with its keys and challenges (explicitly, not relying on the
/// foreign key cascade, which SQLite enforces only with `PRAGMA foreign_keys`). Call it
/// inside a transaction.
pub fn delete(conn: &mut DbConn, id: &str) -> Result<bool, DbError> {
    diesel::delete(api_keys::table.filter(api_keys::account_id.eq(id))).execute(conn)?;
    diesel::delete(pairing_challenges::table.filter(pairing_challenges::account_id.eq(id)))
        .execute(conn)?;
    super::console_sessions::delete_for_account(conn, id)?;
    diesel::delete(account_credentials::table.find(id)).execute(conn)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::account_id.eq(id)))
        .execute(conn)?;
    diesel::delete(account_invites::table.filter(account_invites::account_id.eq(id)))
        .execute(conn)?;
    diesel::delete(app_authorizations::table.filter(app_authorizations::account_id.eq(id)))
        .execute(conn)?;
    Ok(diesel::delete(accounts::table.find(id)).execute(conn)? > 0)
}
