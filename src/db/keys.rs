//! Queries on `signing_keys` (states: see [`KeyState`]).

use diesel::prelude::*;

use super::models::{NewSigningKeyRow, SigningKeyRow, key_state};
use super::schema::signing_keys;
use super::{DbConn, DbError};
use crate::domain::{KeyState, SigningKeyRecord};

const NEXT: &str = KeyState::Next.as_str();
const ACTIVE: &str = KeyState::Active.as_str();
const RETIRED: &str = KeyState::Retired.as_str();

/// Keys published at `now`: next, active, and retired ones whose tokens may still be valid.
pub fn published(conn: &mut DbConn, now: i64) -> Result<Vec<SigningKeyRecord>, DbError> {
    let rows = signing_keys::table
        .filter(
            signing_keys::state
                .eq_any([ACTIVE, NEXT])
                .or(signing_keys::state
                    .eq(RETIRED)
                    .and(signing_keys::publish_until.gt(now))),
        )
        .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

pub fn list(conn: &mut DbConn) -> Result<Vec<SigningKeyRecord>, DbError> {
    let rows = signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?;
    super::convert(rows)
}

pub fn find(conn: &mut DbConn, kid: &str) -> Result<Option<SigningKeyRecord>, DbError> {
    let row = signing_keys::table
        .find(kid)
        .select(SigningKeyRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(SigningKeyRecord::try_from).transpose()?)
}

/// The key in `state` (`next` and `active` are unique by a partial index).
pub fn in_state(conn: &mut DbConn, state: KeyState) -> Result<Option<SigningKeyRecord>, DbError> {
    let row = signing_keys::table
        .filter(signing_keys::state.eq(state.as_str()))
        .select(SigningKeyRow::as_select())
        .get_result(conn)
        .optional()?;
    Ok(row.map(SigningKeyRecord::try_from).transpose()?)
}

/// One key in a [`fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    pub kid: String,
    pub state: KeyState,
    pub publish_until: Option<i64>,
}

/// A cheap summary of the key table, polled by running servers to notice a rotation made
/// elsewhere (the CLI, another instance) without decrypting anything.
pub fn fingerprint(conn: &mut DbConn) -> Result<Vec<KeySummary>, DbError> {
    let rows: Vec<(String, String, Option<i64>)> = signing_keys::table
        .order(signing_keys::kid.asc())
        .select((
            signing_keys::kid,
            signing_keys::state,
            signing_keys::publish_until,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(kid, state, publish_until)| {
            Ok(KeySummary {
                state: key_state(&kid, &state)?,
                kid,
                publish_until,
            })
        })
        .collect()
}

/// Stores a key whose private part is already sealed.
pub fn insert(conn: &mut DbConn, key: &SigningKeyRecord) -> Result<(), DbError> {
    diesel::insert_into(signing_keys::table)
        .values(NewSigningKeyRow {
            kid: &key.kid,
            algorithm: key.algorithm.as_str(),
            state: key.state.as_str(),
            sealed_private_key: &key.sealed_private_key,
            public_jwk: key.public_jwk.to_string(),
            created_at: key.created_at,
            activated_at: key.activated_at,
        })
        .execute(conn)?;
    Ok(())
}

/// Retires the active key; `publish_until` is when the last token it may have signed
/// expires. Returns how many keys were retired (0 or 1).
pub fn retire_active(conn: &mut DbConn, now: i64, publish_until: i64) -> Result<usize, DbError> {
    Ok(
        diesel::update(signing_keys::table.filter(signing_keys::state.eq(ACTIVE)))
            .set((
                signing_keys::state.eq(RETIRED),
                signing_keys::retired_at.eq(now),
                signing_keys::publish_until.eq(publish_until),
            ))
            .execute(conn)?,
    )
}

/// Promotes the pre-published key to active.
pub fn promote(conn: &mut DbConn, kid: &str, now: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(signing_keys::state.eq(NEXT)),
    )
    .set((
        signing_keys::state.eq(ACTIVE),
        signing_keys::activated_at.eq(now),
    ))
    .execute(conn)?)
}

/// Drops a pre-published key that will never sign (an algorithm change).
pub fn delete_next(conn: &mut DbConn) -> Result<usize, DbError> {
    Ok(diesel::delete(signing_keys::table.filter(signing_keys::state.eq(NEXT))).execute(conn)?)
}

/// Takes the lock that serializes rotations, so that instances racing on a schedule rotate
/// once: a transaction-scoped advisory lock on PostgreSQL (released at commit or rollback;
/// its key is derived from the schema, so deployments sharing a database in different
/// schemas do not block each other); on SQLite, a first write, which takes the database's
/// single write lock. With `wait` false, returns false at once when another instance holds
/// the lock.
pub fn lock_rotation(conn: &mut DbConn, wait: bool) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    Ok(match conn {
        DbConn::Postgres(pg) => {
            let query = if wait {
                "SELECT true AS locked FROM \
                 (SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tollgate.signing_keys'))) AS l"
            } else {
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.tollgate.signing_keys')) AS locked"
            };
            diesel::sql_query(query).get_result::<Locked>(pg)?.locked
        }
        DbConn::Sqlite(sqlite) => {
            diesel::sql_query("UPDATE signing_keys SET state = state WHERE state = 'active'")
                .execute(sqlite)?;
            true
        }
    })
}
