//! Queries on `account_credentials` and `recovery_codes`: how people sign in to the console.

use diesel::prelude::*;

use super::schema::{account_credentials, recovery_codes};
use super::{DbConn, DbError};
use crate::domain::Credentials;

#[derive(Queryable, Selectable)]
#[diesel(table_name = account_credentials)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct CredentialsRow {
    account_id: String,
    password_hash: String,
    password_changed_at: i64,
    totp_secret: Option<Vec<u8>>,
    totp_enabled_at: Option<i64>,
    totp_last_step: Option<i64>,
    failed_sign_ins: i32,
    sign_in_blocked_until: Option<i64>,
}

impl From<CredentialsRow> for Credentials {
    fn from(row: CredentialsRow) -> Self {
        Self {
            account_id: row.account_id,
            password_hash: row.password_hash,
            password_changed_at: row.password_changed_at,
            sealed_totp_secret: row.totp_secret,
            totp_enabled_at: row.totp_enabled_at,
            totp_last_step: row.totp_last_step,
            failed_sign_ins: row.failed_sign_ins,
            sign_in_blocked_until: row.sign_in_blocked_until,
        }
    }
}

pub fn of_account(conn: &mut DbConn, account_id: &str) -> Result<Option<Credentials>, DbError> {
    if !super::storable(account_id) {
        return Ok(None);
    }
    Ok(account_credentials::table
        .find(account_id)
        .select(CredentialsRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Credentials::from))
}

/// Sets the password (first time or replacing it) and clears any sign-in block. Call it in
/// a transaction: it is an update, then an insert when there was no row.
pub fn set_password(
    conn: &mut DbConn,
    account_id: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), DbError> {
    let updated = diesel::update(account_credentials::table.find(account_id))
        .set((
            account_credentials::password_hash.eq(password_hash),
            account_credentials::password_changed_at.eq(now),
            account_credentials::failed_sign_ins.eq(0),
            account_credentials::sign_in_blocked_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(account_credentials::table)
            .values((
                account_credentials::account_id.eq(account_id),
                account_credentials::password_hash.eq(password_hash),
                account_credentials::password_changed_at.eq(now),
                account_credentials::failed_sign_ins.eq(0),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Counts one failed sign-in and sets the block that follows it. A single statement, so
/// concurrent failures on several instances all count.
pub fn record_failure(
    conn: &mut DbConn,
    account_id: &str,
    blocked_until: Option<i64>,
) -> Result<(), DbError> {
    diesel::update(account_credentials::table.find(account_id))
        .set((
            account_credentials::failed_sign_ins.eq(account_credentials::failed_sign_ins + 1),
            account_credentials::sign_in_blocked_until.eq(blocked_until),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn clear_failures(conn: &mut DbConn, account_id: &str) -> Result<(), DbError> {
    diesel::update(account_credentials::table.find(account_id))
        .set((
            account_credentials::failed_sign_ins.eq(0),
            account_credentials::sign_in_blocked_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores a new (unconfirmed when `enabled_at` is `None`) or confirmed TOTP secret, or
/// removes it (`None`, `None`).
pub fn set_totp(
    conn: &mut DbConn,
    account_id: &str,
    sealed_secret: Option<&[u8]>,
    enabled_at: Option<i64>,
) -> Result<bool, DbError> {
    Ok(diesel::update(account_credentials::table.find(account_id))
        .set((
            account_credentials::totp_secret.eq(sealed_secret),
            account_credentials::totp_enabled_at.eq(enabled_at),
            account_credentials::totp_last_step.eq(None::<i64>),
        ))
        .execute(conn)?
        > 0)
}

/// Records that the code of TOTP time step `step` was used, only if no later or equal step
/// was: false means the code was already spent (a replay), on any instance.
pub fn spend_totp_step(conn: &mut DbConn, account_id: &str, step: i64) -> Result<bool, DbError> {
    Ok(diesel::update(
        account_credentials::table.find(account_id).filter(
            account_credentials::totp_last_step
                .is_null()
                .or(account_credentials::totp_last_step.lt(step)),
        ),
    )
    .set(account_credentials::totp_last_step.eq(step))
    .execute(conn)?
        > 0)
}

/// Replaces the account's recovery codes with these digests.
pub fn replace_recovery_codes(
    conn: &mut DbConn,
    account_id: &str,
    digests: &[Vec<u8>],
    now: i64,
) -> Result<(), DbError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::account_id.eq(account_id)))
        .execute(conn)?;
    for digest in digests {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::digest.eq(digest),
                recovery_codes::account_id.eq(account_id),
                recovery_codes::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Marks an unused recovery code of the account used; false when there is none.
pub fn spend_recovery_code(
    conn: &mut DbConn,
    account_id: &str,
    digest: &[u8],
    now: i64,
) -> Result<bool, DbError> {
    Ok(diesel::update(
        recovery_codes::table
            .filter(recovery_codes::digest.eq(digest))
            .filter(recovery_codes::account_id.eq(account_id))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)?
        > 0)
}

pub fn unused_recovery_codes(conn: &mut DbConn, account_id: &str) -> Result<i64, DbError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::account_id.eq(account_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)?)
}
