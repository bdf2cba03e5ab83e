//! Queries on `app_authorizations`: apps authorized by a person in the browser (MiAuth).

use diesel::prelude::*;

use super::schema::app_authorizations;
use super::{DbConn, DbError};
use crate::domain::{AppAuthorization, AppAuthorizationStatus, CorruptRow, stored_scope};

#[derive(Queryable, Selectable)]
#[diesel(table_name = app_authorizations)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct AuthorizationRow {
    session_id: String,
    account_id: Option<String>,
    app_name: String,
    scopes: String,
    callback: Option<String>,
    status: String,
    created_at: i64,
    expires_at: i64,
    resolved_at: Option<i64>,
    api_key_id: Option<String>,
}

impl TryFrom<AuthorizationRow> for AppAuthorization {
    type Error = CorruptRow;

    fn try_from(row: AuthorizationRow) -> Result<Self, CorruptRow> {
        let status = AppAuthorizationStatus::parse(&row.status).ok_or_else(|| {
            CorruptRow::new(
                "app_authorizations",
                &row.session_id,
                format!("status {:?}", row.status),
            )
        })?;
        Ok(Self {
            scopes: stored_scope("app_authorizations", &row.session_id, &row.scopes)?,
            session_id: row.session_id,
            account_id: row.account_id,
            app_name: row.app_name,
            callback: row.callback,
            status,
            created_at: row.created_at,
            expires_at: row.expires_at,
            resolved_at: row.resolved_at,
            api_key_id: row.api_key_id,
        })
    }
}

/// Fails with a unique violation when the session id was seen before.
pub fn insert(conn: &mut DbConn, authorization: &AppAuthorization) -> Result<(), DbError> {
    diesel::insert_into(app_authorizations::table)
        .values((
            app_authorizations::session_id.eq(&authorization.session_id),
            app_authorizations::account_id.eq(&authorization.account_id),
            app_authorizations::app_name.eq(&authorization.app_name),
            app_authorizations::scopes.eq(authorization.scopes.to_string()),
            app_authorizations::callback.eq(&authorization.callback),
            app_authorizations::status.eq(authorization.status.as_str()),
            app_authorizations::created_at.eq(authorization.created_at),
            app_authorizations::expires_at.eq(authorization.expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, session_id: &str) -> Result<Option<AppAuthorization>, DbError> {
    if !super::storable(session_id) {
        return Ok(None);
    }
    let row = app_authorizations::table
        .find(session_id)
        .select(AuthorizationRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(AppAuthorization::try_from).transpose()?)
}

/// Moves `from` → `to` once; false when it was no longer `from` (a concurrent request won).
pub fn transition(
    conn: &mut DbConn,
    session_id: &str,
    from: AppAuthorizationStatus,
    to: AppAuthorizationStatus,
    api_key_id: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    Ok(diesel::update(
        app_authorizations::table
            .find(session_id)
            .filter(app_authorizations::status.eq(from.as_str())),
    )
    .set((
        app_authorizations::status.eq(to.as_str()),
        app_authorizations::resolved_at.eq(Some(now)),
        app_authorizations::api_key_id.eq(api_key_id),
    ))
    .execute(conn)?
        > 0)
}

/// Drops authorizations that expired before `before`.
pub fn delete_expired(conn: &mut DbConn, before: i64) -> Result<usize, DbError> {
    Ok(
        diesel::delete(app_authorizations::table.filter(app_authorizations::expires_at.lt(before)))
            .execute(conn)?,
    )
}
