//! Queries on `account_invites`: one-time links to set a password.

use diesel::prelude::*;

use super::schema::account_invites;
use super::{DbConn, DbError};
use crate::domain::Invite;

#[derive(Queryable, Selectable)]
#[diesel(table_name = account_invites)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct InviteRow {
    id: String,
    account_id: String,
    created_by: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl From<InviteRow> for Invite {
    fn from(row: InviteRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            used_at: row.used_at,
        }
    }
}

pub fn insert(conn: &mut DbConn, invite: &Invite, token_digest: &[u8]) -> Result<(), DbError> {
    diesel::insert_into(account_invites::table)
        .values((
            account_invites::id.eq(&invite.id),
            account_invites::token_digest.eq(token_digest),
            account_invites::account_id.eq(&invite.account_id),
            account_invites::created_by.eq(&invite.created_by),
            account_invites::created_at.eq(invite.created_at),
            account_invites::expires_at.eq(invite.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn by_token_digest(conn: &mut DbConn, token_digest: &[u8]) -> Result<Option<Invite>, DbError> {
    Ok(account_invites::table
        .filter(account_invites::token_digest.eq(token_digest))
        .select(InviteRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Invite::from))
}

/// Spends the invite; false when it was already used (by a concurrent request too).
pub fn mark_used(conn: &mut DbConn, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        account_invites::table
            .find(id)
            .filter(account_invites::used_at.is_null()),
    )
    .set(account_invites::used_at.eq(now))
    .execute(conn)?
        > 0)
}

/// Closes the account's unused links, so that only the newest one works.
pub fn close_unused(conn: &mut DbConn, account_id: &str, now: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        account_invites::table
            .filter(account_invites::account_id.eq(account_id))
            .filter(account_invites::used_at.is_null()),
    )
    .set(account_invites::used_at.eq(now))
    .execute(conn)?)
}

/// Drops links that expired before `before`, used or not.
pub fn delete_expired(conn: &mut DbConn, before: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(account_invites::table.filter(account_invites::expires_at.lt(before)))
            .execute(conn)?,
    )
}
