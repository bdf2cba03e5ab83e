//! Signing key lifecycle: generate, seal, load into memory, rotate, import.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::Serialize;

use super::timestamp;
use crate::crypto::sealed::{MasterKey, SealError};
use crate::crypto::signer::{KeyError, KeyRing, SigningAlgorithm, SigningKey};
use crate::db::keys::{STATE_ACTIVE, STATE_NEXT, STATE_RETIRED};
use crate::db::models::{NewSigningKeyRow, SigningKeyRow};
use crate::db::{self, DbConn, DbError};

#[derive(Debug, thiserror::Error)]
pub enum KeyServiceError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("signing key {kid} uses unknown algorithm {algorithm:?}")]
    UnknownAlgorithm { kid: String, algorithm: String },
    #[error("there is no active signing key")]
    NoActiveKey,
    #[error("another signing key rotation happened at the same moment; try again")]
    ConcurrentRotation,
    #[error(transparent)]
    Store(#[from] DbError),
}

impl From<diesel::result::Error> for KeyServiceError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Store(DbError::Query(err))
    }
}

/// A signing key as listed by the admin API and the CLI (public parts only).
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub kid: String,
    pub algorithm: String,
    /// `next` (published, signs after the next rotation), `active` (signing), `retired`
    /// (still published), or `expired` (no longer published).
    pub state: String,
    pub published: bool,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

impl KeyView {
    fn from_row(row: &SigningKeyRow, now: i64) -> Self {
        let published = row.state == STATE_ACTIVE
            || row.state == STATE_NEXT
            || (row.state == STATE_RETIRED && row.publish_until.is_some_and(|t| t > now));
        let state = if row.state == STATE_RETIRED && !published {
            "expired".to_owned()
        } else {
            row.state.clone()
        };
        Self {
            kid: row.kid.clone(),
            algorithm: row.algorithm.clone(),
            state,
            published,
            created_at: timestamp(row.created_at),
            activated_at: row.activated_at.map(timestamp),
            retired_at: row.retired_at.map(timestamp),
            publish_until: row.publish_until.map(timestamp),
        }
    }
}

fn open_row(row: &SigningKeyRow, master: &MasterKey) -> Result<SigningKey, KeyServiceError> {
    let algorithm = SigningAlgorithm::parse(&row.algorithm).ok_or_else(|| {
        KeyServiceError::UnknownAlgorithm {
            kid: row.kid.clone(),
            algorithm: row.algorithm.clone(),
        }
    })?;
    let der = master.open(&row.sealed_private_key, row.kid.as_bytes())?;
    Ok(SigningKey::from_private_der(algorithm, &der)?)
}

fn insert_sealed(
    conn: &mut DbConn,
    master: &MasterKey,
    key: &SigningKey,
    der: &[u8],
    state: &str,
    now: i64,
) -> diesel::QueryResult<()> {
    let sealed = master.seal(der, key.kid().as_bytes());
    let public_jwk = key.public_jwk().to_string();
    db::keys::insert(
        conn,
        &NewSigningKeyRow {
            kid: key.kid(),
            algorithm: key.algorithm().as_str(),
            state,
            sealed_private_key: &sealed,
            public_jwk: &public_jwk,
            created_at: now,
            activated_at: (state == STATE_ACTIVE).then_some(now),
        },
    )
}

fn view_of(conn: &mut DbConn, kid: &str, now: i64) -> Result<KeyView, KeyServiceError> {
    db::keys::list(conn)?
        .iter()
        .find(|r| r.kid == kid)
        .map(|row| KeyView::from_row(row, now))
        .ok_or(KeyServiceError::NoActiveKey)
}

/// One rotation, in one transaction under the rotation lock: the active key retires (still
/// published for `retired_grace` seconds), the pre-published `next` key (or an imported
/// key) becomes active, and a new `next` key is published for the following rotation.
/// `when` is re-checked under the lock, so that instances racing on a schedule, or starting
/// together on an empty database, rotate once. Returns the new active key's id, or `None`
/// when there was nothing to do.
/// When a rotation goes ahead.
#[derive(Debug, Clone, Copy)]
enum When {
    Now,
    /// The active key has signed for at least this many seconds.
    IfDue(i64),
    /// There is no active key yet (first start).
    IfNoActiveKey,
}

fn rotate_with(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
    imported: Option<(SigningKey, Vec<u8>)>,
    when: When,
) -> Result<Option<String>, KeyServiceError> {
    // Key generation is CPU work: do it before taking the lock.
    let (fresh_next, fresh_next_der) = SigningKey::generate(algorithm)?;
    let (fresh_active, fresh_active_der) = SigningKey::generate(algorithm)?;
    let result = conn.transaction::<_, KeyServiceError, _>(|conn| {
        // A scheduled rotation skips when another instance is at it; others wait their turn.
        if !db::keys::lock_rotation(conn, !matches!(when, When::IfDue(_)))? {
            return Ok(None);
        }
        let active = db::keys::in_state(conn, STATE_ACTIVE)?;
        let skip = match (when, &active) {
            (When::IfDue(period), Some(active)) => {
                active.activated_at.unwrap_or(active.created_at) + period > now
            }
            (When::IfNoActiveKey, Some(_)) => true,
            _ => false,
        };
        if skip {
            return Ok(None);
        }
        let next = db::keys::in_state(conn, STATE_NEXT)?;
        db::keys::retire_active(conn, now, now + retired_grace)?;
        let new_kid = match (imported, next) {
            (Some((key, der)), _) => {
                insert_sealed(conn, master, &key, &der, STATE_ACTIVE, now)?;
                key.kid().to_owned()
            }
            (None, Some(next)) if next.algorithm == algorithm.as_str() => {
                db::keys::promote(conn, &next.kid, now)?;
                next.kid
            }
            (None, _) => {
                // No pre-published key of the wanted algorithm: the new key signs at once,
                // and resource servers fetch it on its first unknown `kid`.
                db::keys::delete_next(conn)?;
                insert_sealed(
                    conn,
                    master,
                    &fresh_active,
                    &fresh_active_der,
                    STATE_ACTIVE,
                    now,
                )?;
                fresh_active.kid().to_owned()
            }
        };
        if db::keys::in_state(conn, STATE_NEXT)?.is_none() {
            insert_sealed(conn, master, &fresh_next, &fresh_next_der, STATE_NEXT, now)?;
        }
        Ok(Some(new_kid))
    });
    match result {
        // The partial unique indexes allow one active and one next key: someone else
        // rotated at the same moment.
        Err(KeyServiceError::Store(DbError::Query(e))) if db::is_unique_violation(&e) => {
            Err(KeyServiceError::ConcurrentRotation)
        }
        other => other,
    }
}

/// A conditional rotation, as the new active key's view; `None` when it was not needed or
/// another instance did it at the same moment.
fn rotate_to_view(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
    when: When,
) -> Result<Option<KeyView>, KeyServiceError> {
    match rotate_with(conn, master, algorithm, retired_grace, now, None, when) {
        Ok(Some(kid)) => Ok(Some(view_of(conn, &kid, now)?)),
        Ok(None) | Err(KeyServiceError::ConcurrentRotation) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes sure a key is active and a next one is published (first start, or a database
/// from before pre-publication). Returns the new active key's view if one was made.
pub fn ensure_signing_key(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
) -> Result<Option<KeyView>, KeyServiceError> {
    let published = db::keys::published(conn, now)?;
    if !published.iter().any(|r| r.state == STATE_ACTIVE) {
        // Another instance may have created the first key meanwhile: then use theirs.
        return rotate_to_view(
            conn,
            master,
            algorithm,
            retired_grace,
            now,
            When::IfNoActiveKey,
        );
    }
    if !published.iter().any(|r| r.state == STATE_NEXT) {
        let (next, der) = SigningKey::generate(algorithm)?;
        match insert_sealed(conn, master, &next, &der, STATE_NEXT, now) {
            Err(e) if !db::is_unique_violation(&e) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(None)
}

/// Rotates now (CLI, admin API).
pub fn rotate(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
) -> Result<KeyView, KeyServiceError> {
    let kid = rotate_with(conn, master, algorithm, retired_grace, now, None, When::Now)?
        .ok_or(KeyServiceError::ConcurrentRotation)?;
    view_of(conn, &kid, now)
}

/// Rotates if the active key has signed for `period` seconds; safe to call from every
/// instance at once (exactly one rotates). Returns the new key's view if it rotated.
pub fn rotate_if_due(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    period: i64,
    retired_grace: i64,
    now: i64,
) -> Result<Option<KeyView>, KeyServiceError> {
    let due = db::keys::in_state(conn, STATE_ACTIVE)?
        .is_none_or(|active| active.activated_at.unwrap_or(active.created_at) + period <= now);
    if !due {
        return Ok(None);
    }
    rotate_to_view(
        conn,
        master,
        algorithm,
        retired_grace,
        now,
        When::IfDue(period),
    )
}

/// Imports a PEM private key (the way to sign with RS256, which ring cannot generate) and
/// makes it the active key.
pub fn import_pem(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    pem: &str,
    retired_grace: i64,
    now: i64,
) -> Result<KeyView, KeyServiceError> {
    let der = SigningKey::der_from_pem(pem)?;
    let key = SigningKey::from_private_der(algorithm, &der)?;
    let next_algorithm = if algorithm == SigningAlgorithm::RS256 {
        SigningAlgorithm::ES256
    } else {
        algorithm
    };
    let kid = rotate_with(
        conn,
        master,
        next_algorithm,
        retired_grace,
        now,
        Some((key, der)),
        When::Now,
    )?
    .ok_or(KeyServiceError::ConcurrentRotation)?;
    view_of(conn, &kid, now)
}

pub fn list(conn: &mut DbConn, now: i64) -> Result<Vec<KeyView>, KeyServiceError> {
    Ok(db::keys::list(conn)?
        .iter()
        .map(|row| KeyView::from_row(row, now))
        .collect())
}

/// Loads and decrypts every published key into a new in-memory key ring.
pub fn load_ring(
    conn: &mut DbConn,
    master: &MasterKey,
    now: i64,
) -> Result<KeyRing, KeyServiceError> {
    let rows = db::keys::published(conn, now)?;
    let fingerprint = db::keys::fingerprint(conn)?;
    let active_row = rows
        .iter()
        .find(|r| r.state == STATE_ACTIVE)
        .ok_or(KeyServiceError::NoActiveKey)?;
    let active = Arc::new(open_row(active_row, master)?);
    let mut published = Vec::with_capacity(rows.len());
    for row in &rows {
        match serde_json::from_str::<serde_json::Value>(&row.public_jwk) {
            Ok(jwk) => published.push(jwk),
            Err(e) => {
                tracing::error!(kid = %row.kid, error = %e, "unreadable public JWK, not published")
            }
        }
    }
    Ok(KeyRing::new(active, &published, fingerprint))
}

/// Whether the ring is stale: the key table changed (a rotation by the CLI or another
/// instance), or a retired key it still publishes has reached the end of its publication.
pub fn needs_reload(conn: &mut DbConn, ring: &KeyRing, now: i64) -> Result<bool, KeyServiceError> {
    let current = db::keys::fingerprint(conn)?;
    if current != ring.fingerprint() {
        return Ok(true);
    }
    Ok(current.iter().any(|(kid, state, until)| {
        state == STATE_RETIRED
            && until.is_some_and(|t| t <= now)
            && ring.verifying_key(kid).is_some()
    }))
}
