//! Queries on `revoked_tokens`, and the one-read check of the admin API.

use diesel::prelude::*;

use super::models::{ClientRow, NewRevokedToken};
use super::schema::{clients, revoked_tokens};
use super::{DbConn, DbError};
use crate::domain::Client;

/// Records a revoked token; revoking twice is not an error.
pub fn insert(
    conn: &mut DbConn,
    jti: &str,
    client_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), DbError> {
    let row = NewRevokedToken {
        jti,
        client_id,
        expires_at,
        revoked_at: now,
    };
    match diesel::insert_into(revoked_tokens::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The token's client and whether its `jti` is revoked, in one query (two primary-key
/// lookups).
pub fn client_and_revocation(
    conn: &mut DbConn,
    client_id: &str,
    jti: &str,
) -> Result<Option<(Client, bool)>, DbError> {
    if !super::storable(client_id) || !super::storable(jti) {
        return Ok(None);
    }
    let row = clients::table
        .left_join(revoked_tokens::table.on(revoked_tokens::jti.eq(jti)))
        .filter(clients::id.eq(client_id))
        .select((ClientRow::as_select(), revoked_tokens::jti.nullable()))
        .get_result::<(ClientRow, Option<String>)>(conn)
        .optional()?;
    Ok(match row {
        Some((client, revoked)) => Some((Client::try_from(client)?, revoked.is_some())),
        None => None,
    })
}

/// Whether the token with this `jti` is revoked (primary key lookup).
pub fn is_revoked(conn: &mut DbConn, jti: &str) -> Result<bool, DbError> {
    if !super::storable(jti) {
        return Ok(false);
    }
    Ok(revoked_tokens::table
        .find(jti)
        .select(revoked_tokens::jti)
        .get_result::<String>(conn)
        .optional()?
        .is_some())
}

/// Drops rows of tokens that have expired anyway. Returns how many went.
pub fn prune_expired(conn: &mut DbConn, now: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
            .execute(conn)?,
    )
}

pub fn count(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(revoked_tokens::table.count().get_result(conn)?)
}
