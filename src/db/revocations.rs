//! Queries on `revoked_tokens`, and the one-read checks used by introspection and the
//! admin API.

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

/// What introspection reads, in one query: the caller's client (and whether the caller's
/// own bearer token is revoked), and the introspected token's client and revocation.
pub struct IntrospectionRows {
    pub caller: Client,
    pub caller_token_revoked: bool,
    /// `(disabled_at, tokens_not_before)` of the token's client, if it exists.
    pub subject: Option<(Option<i64>, Option<i64>)>,
    pub subject_token_revoked: bool,
}

pub fn introspection_rows(
    conn: &mut DbConn,
    caller_id: &str,
    caller_jti: &str,
    subject_id: &str,
    subject_jti: &str,
) -> Result<Option<IntrospectionRows>, DbError> {
    if ![caller_id, caller_jti, subject_id, subject_jti]
        .iter()
        .all(|s| super::storable(s))
    {
        return Ok(None);
    }
    let (subject, caller_revoked, subject_revoked) = diesel::alias!(
        clients as subject,
        revoked_tokens as caller_revoked,
        revoked_tokens as subject_revoked
    );
    let row = clients::table
        .left_join(subject.on(subject.field(clients::id).eq(subject_id.to_owned())))
        .left_join(
            caller_revoked.on(caller_revoked
                .field(revoked_tokens::jti)
                .eq(caller_jti.to_owned())),
        )
        .left_join(
            subject_revoked.on(subject_revoked
                .field(revoked_tokens::jti)
                .eq(subject_jti.to_owned())),
        )
        .filter(clients::id.eq(caller_id.to_owned()))
        .select((
            ClientRow::as_select(),
            caller_revoked.field(revoked_tokens::jti).nullable(),
            (
                subject.field(clients::id),
                subject.field(clients::disabled_at),
                subject.field(clients::tokens_not_before),
            )
                .nullable(),
            subject_revoked.field(revoked_tokens::jti).nullable(),
        ))
        .get_result::<(
            ClientRow,
            Option<String>,
            Option<(String, Option<i64>, Option<i64>)>,
            Option<String>,
        )>(conn)
        .optional()?;
    let Some((caller, caller_revoked, subject, subject_revoked)) = row else {
        return Ok(None);
    };
    Ok(Some(IntrospectionRows {
        caller: Client::try_from(caller)?,
        caller_token_revoked: caller_revoked.is_some(),
        subject: subject.map(|(_, disabled_at, not_before)| (disabled_at, not_before)),
        subject_token_revoked: subject_revoked.is_some(),
    }))
}
