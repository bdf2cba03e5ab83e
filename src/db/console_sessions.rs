//! Queries on `console_sessions`: signed-in browsers, found by the digest of their cookie.

use diesel::prelude::*;

use super::schema::console_sessions;
use super::{DbConn, DbError};
use crate::domain::ConsoleSession;

#[derive(Queryable, Selectable)]
#[diesel(table_name = console_sessions)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct SessionRow {
    id: String,
    account_id: String,
    csrf_token: String,
    second_factor_pending: bool,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    user_agent: String,
    address: String,
}

impl From<SessionRow> for ConsoleSession {
    fn from(row: SessionRow) -> Self {
        Self {
            id: row.id,
            account_id: row.account_id,
            csrf_token: row.csrf_token,
            second_factor_pending: row.second_factor_pending,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            address: row.address,
        }
    }
}

pub fn insert(
    conn: &mut DbConn,
    session: &ConsoleSession,
    token_digest: &[u8],
) -> Result<(), DbError> {
    diesel::insert_into(console_sessions::table)
        .values((
            console_sessions::id.eq(&session.id),
            console_sessions::token_digest.eq(token_digest),
            console_sessions::account_id.eq(&session.account_id),
            console_sessions::csrf_token.eq(&session.csrf_token),
            console_sessions::second_factor_pending.eq(session.second_factor_pending),
            console_sessions::created_at.eq(session.created_at),
            console_sessions::last_seen_at.eq(session.last_seen_at),
            console_sessions::expires_at.eq(session.expires_at),
            console_sessions::user_agent.eq(&session.user_agent),
            console_sessions::address.eq(&session.address),
        ))
        .execute(conn)?;
    Ok(())
}

/// The one indexed read behind every console request.
pub fn by_token_digest(
    conn: &mut DbConn,
    token_digest: &[u8],
) -> Result<Option<ConsoleSession>, DbError> {
    Ok(console_sessions::table
        .filter(console_sessions::token_digest.eq(token_digest))
        .select(SessionRow::as_select())
        .get_result(conn)
        .optional()?
        .map(ConsoleSession::from))
}

pub fn touch(conn: &mut DbConn, id: &str, now: i64) -> Result<(), DbError> {
    diesel::update(console_sessions::table.find(id))
        .set(console_sessions::last_seen_at.eq(now))
        .execute(conn)?;
    Ok(())
}

pub fn complete_second_factor(conn: &mut DbConn, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        console_sessions::table
            .find(id)
            .filter(console_sessions::second_factor_pending.eq(true)),
    )
    .set((
        console_sessions::second_factor_pending.eq(false),
        console_sessions::last_seen_at.eq(now),
    ))
    .execute(conn)?
        > 0)
}

/// Newest first.
pub fn of_account(conn: &mut DbConn, account_id: &str) -> Result<Vec<ConsoleSession>, DbError> {
    Ok(console_sessions::table
        .filter(console_sessions::account_id.eq(account_id))
        .order((
            console_sessions::created_at.desc(),
            console_sessions::id.asc(),
        ))
        .select(SessionRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ConsoleSession::from)
        .collect())
}

/// Ends one session of the account; false when it has no such session.
pub fn delete(conn: &mut DbConn, account_id: &str, id: &str) -> Result<bool, DbError> {
    if !super::storable(id) {
        return Ok(false);
    }
    Ok(diesel::delete(
        console_sessions::table
            .find(id)
            .filter(console_sessions::account_id.eq(account_id)),
    )
    .execute(conn)?
        > 0)
}

pub fn delete_for_account(conn: &mut DbConn, account_id: &str) -> Result<usize, DbError> {
    Ok(
        diesel::delete(console_sessions::table.filter(console_sessions::account_id.eq(account_id)))
            .execute(conn)?,
    )
}

/// Ends every session of the account but `keep`.
pub fn delete_others(conn: &mut DbConn, account_id: &str, keep: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(
        console_sessions::table
            .filter(console_sessions::account_id.eq(account_id))
            .filter(console_sessions::id.ne(keep)),
    )
    .execute(conn)?)
}

/// Drops sessions past their absolute end or idle since `idle_before`.
pub fn delete_finished(conn: &mut DbConn, now: i64, idle_before: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(
        console_sessions::table.filter(
            console_sessions::expires_at
                .le(now)
                .or(console_sessions::last_seen_at.lt(idle_before)),
        ),
    )
    .execute(conn)?)
}
