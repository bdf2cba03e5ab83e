//! Signing key lifecycle: generate, seal, load into memory, rotate, import.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::Serialize;

use super::timestamp;
use crate::crypto::sealed::{MasterKey, SealError};
use crate::crypto::signer::{KeyError, KeyRing, SigningAlgorithm, SigningKey};
use crate::db::keys::{STATE_ACTIVE, STATE_RETIRED};
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
    /// `active` (signing), `retired` (still published), or `expired` (no longer published).
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

/// Stores a new key, sealed, as the active one; the previous active key is retired and
/// stays published until every token it signed has expired (`retired_grace` seconds).
fn activate(
    conn: &mut DbConn,
    master: &MasterKey,
    key: &SigningKey,
    der: &[u8],
    retired_grace: i64,
    now: i64,
) -> Result<KeyView, KeyServiceError> {
    let sealed = master.seal(der, key.kid().as_bytes());
    let public_jwk = key.public_jwk().to_string();
    let result = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        // Write first, so that SQLite takes its write lock (waiting on busy_timeout)
        // before anything is read.
        db::keys::retire_active(conn, now, now + retired_grace)?;
        db::keys::insert(
            conn,
            &NewSigningKeyRow {
                kid: key.kid(),
                algorithm: key.algorithm().as_str(),
                state: STATE_ACTIVE,
                sealed_private_key: &sealed,
                public_jwk: &public_jwk,
                created_at: now,
                activated_at: Some(now),
            },
        )
    });
    match result {
        Ok(()) => {}
        // The partial unique index allows one active key: someone else rotated meanwhile.
        Err(e) if db::is_unique_violation(&e) => return Err(KeyServiceError::ConcurrentRotation),
        Err(e) => return Err(e.into()),
    }
    let row = db::keys::list(conn)?
        .into_iter()
        .find(|r| r.kid == key.kid())
        .ok_or(KeyServiceError::NoActiveKey)?;
    Ok(KeyView::from_row(&row, now))
}

/// Makes sure a key is active (first start). Returns the new key's view if one was made.
pub fn ensure_signing_key(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
) -> Result<Option<KeyView>, KeyServiceError> {
    if db::keys::published(conn, now)?
        .iter()
        .any(|r| r.state == STATE_ACTIVE)
    {
        return Ok(None);
    }
    match rotate(conn, master, algorithm, retired_grace, now) {
        Ok(view) => Ok(Some(view)),
        // Another instance created the first key at the same moment: use theirs.
        Err(KeyServiceError::ConcurrentRotation) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Generates a new key and makes it the active one.
pub fn rotate(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
) -> Result<KeyView, KeyServiceError> {
    let (key, der) = SigningKey::generate(algorithm)?;
    activate(conn, master, &key, &der, retired_grace, now)
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
    activate(conn, master, &key, &der, retired_grace, now)
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
