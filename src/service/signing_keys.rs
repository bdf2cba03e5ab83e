//! Signing key lifecycle: generate, seal, load into memory, rotate, import. Every rotation
//! and import is one transaction with its audit event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::{self, Actor};
use crate::crypto::sealed::{MasterKey, SealError};
use crate::crypto::signer::{KeyError, KeyRing, SigningAlgorithm, SigningKey};
use crate::db::{self, DbConn, DbError};
use crate::domain::{KeyState, SigningKeyRecord, timestamp};

#[derive(Debug, thiserror::Error)]
pub enum KeyServiceError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("there is no active signing key")]
    NoActiveKey,
    #[error("another signing key rotation happened at the same moment; try again")]
    ConcurrentRotation,
    /// The master key in use does not decrypt the keys already stored: writing a key
    /// sealed under it would leave keys no server can load. Nothing was written.
    #[error(
        "the master key does not open the stored signing key {}; nothing was written \
         (use the master key the existing keys were sealed with)",
        crate::oauth::error::echo(.0)
    )]
    WrongMasterKey(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

/// A signing key as listed by the admin API and the CLI (public parts only).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub algorithm: &'static str,
    /// `next` (published, signs after the next rotation), `active` (signing), `retired`
    /// (still published), or `expired` (no longer published).
    pub state: &'static str,
    pub published: bool,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub publish_until: Option<DateTime<Utc>>,
}

impl KeyView {
    fn new(key: &SigningKeyRecord, now: i64) -> Self {
        let published = key.is_published(now);
        Self {
            kid: key.kid.clone(),
            algorithm: key.algorithm.as_str(),
            state: if published {
                key.state.as_str()
            } else {
                "expired"
            },
            published,
            created_at: timestamp(key.created_at),
            activated_at: key.activated_at.map(timestamp),
            retired_at: key.retired_at.map(timestamp),
            publish_until: key.publish_until.map(timestamp),
        }
    }
}

fn open(key: &SigningKeyRecord, master: &MasterKey) -> Result<SigningKey, KeyServiceError> {
    let der = master.open(&key.sealed_private_key, key.kid.as_bytes())?;
    Ok(SigningKey::from_private_der(key.algorithm, &der)?)
}

fn insert_sealed(
    conn: &mut DbConn,
    master: &MasterKey,
    key: &SigningKey,
    der: &[u8],
    state: KeyState,
    now: i64,
) -> Result<(), DbError> {
    db::keys::insert(
        conn,
        &SigningKeyRecord {
            kid: key.kid().to_owned(),
            algorithm: key.algorithm(),
            state,
            sealed_private_key: master.seal(der, key.kid().as_bytes()),
            public_jwk: key.public_jwk().clone(),
            created_at: now,
            activated_at: (state == KeyState::Active).then_some(now),
            retired_at: None,
            publish_until: None,
        },
    )
}

fn view_of(conn: &mut DbConn, kid: &str, now: i64) -> Result<KeyView, KeyServiceError> {
    db::keys::find(conn, kid)?
        .map(|key| KeyView::new(&key, now))
        .ok_or(KeyServiceError::NoActiveKey)
}

/// When a rotation goes ahead.
#[derive(Debug, Clone, Copy)]
enum When {
    Now,
    /// The active key has signed for at least this many seconds.
    IfDue(i64),
    /// There is no active key yet (first start).
    IfNoActiveKey,
}

/// How the new key starts signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Announce before use: only a key already published as `next` becomes active; a new
    /// key (generated or imported) is published as `next` and signs from the rotation after.
    PrePublished,
    /// The new key signs at once (resource servers fetch it on its first unknown `kid`).
    Immediately,
}

/// Refuses a master key that does not open the keys already stored (the active and next
/// keys, or else the newest one): every key must stay loadable by the servers.
fn check_master_key(conn: &mut DbConn, master: &MasterKey) -> Result<(), KeyServiceError> {
    let mut stored: Vec<SigningKeyRecord> = [KeyState::Active, KeyState::Next]
        .into_iter()
        .map(|state| db::keys::in_state(conn, state))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    if stored.is_empty() {
        stored.extend(db::keys::list(conn)?.into_iter().take(1));
    }
    for key in &stored {
        if master
            .open(&key.sealed_private_key, key.kid.as_bytes())
            .is_err()
        {
            return Err(KeyServiceError::WrongMasterKey(key.kid.clone()));
        }
    }
    Ok(())
}

/// Makes the pending `next` key one of `algorithm`: a `next` key of another algorithm has
/// never signed anything, so it is replaced.
fn publish_next(
    conn: &mut DbConn,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    fresh: &(SigningKey, Vec<u8>),
    now: i64,
) -> Result<(), DbError> {
    if let Some(next) = db::keys::in_state(conn, KeyState::Next)? {
        if next.algorithm == algorithm {
            return Ok(());
        }
        db::keys::delete_next(conn)?;
    }
    insert_sealed(conn, master, &fresh.0, &fresh.1, KeyState::Next, now)
}

/// One rotation, in one transaction under the rotation lock, after checking that the
/// master key opens the stored keys. The key lifecycle is next → active → retired:
/// - pre-published (the default): the published `next` key becomes active, the active key
///   retires (still published for `retired_grace` seconds) and a new `next` key of
///   `algorithm` is published, so a change of algorithm takes effect one rotation later.
///   With no `next` key to promote, a new one is only published. An imported key replaces
///   the pending `next` key instead.
/// - immediately (or on first start, with no active key): the new key (generated or
///   imported) becomes active at once, and the `next` key is kept if it is of `algorithm`.
///
/// `when` is re-checked under the lock, so that instances racing on a schedule, or starting
/// together on an empty database, rotate once. Returns the id of the new key (active, or
/// `next` when only one was published), or `None` when there was nothing to do.
#[expect(
    clippy::too_many_arguments,
    reason = "one private function behind four entry points"
)]
fn rotate_with(
    conn: &mut DbConn,
    actor: &Actor,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
    imported: Option<(SigningKey, Vec<u8>)>,
    when: When,
    activation: Activation,
) -> Result<Option<String>, KeyServiceError> {
    // Key generation is CPU work: do it before taking the lock.
    let fresh_next = SigningKey::generate(algorithm)?;
    let (fresh_active, fresh_active_der) = SigningKey::generate(algorithm)?;
    let result = db::transaction(conn, |conn| {
        // A scheduled rotation skips when another instance is at it; others wait their turn.
        if !db::keys::lock_rotation(conn, !matches!(when, When::IfDue(_)))? {
            return Ok(None);
        }
        let active = db::keys::in_state(conn, KeyState::Active)?;
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
        check_master_key(conn, master)?;
        // With no active key there is nothing to announce the new key before.
        let immediately = activation == Activation::Immediately || active.is_none();
        let next = db::keys::in_state(conn, KeyState::Next)?;
        let (new_kid, new_algorithm, how) = match (imported, immediately) {
            (Some((key, der)), true) => {
                db::keys::retire_active(conn, now, now + retired_grace)?;
                insert_sealed(conn, master, &key, &der, KeyState::Active, now)?;
                publish_next(conn, master, algorithm, &fresh_next, now)?;
                (
                    key.kid().to_owned(),
                    key.algorithm(),
                    "imported and activated",
                )
            }
            (Some((key, der)), false) => {
                db::keys::delete_next(conn)?;
                insert_sealed(conn, master, &key, &der, KeyState::Next, now)?;
                (key.kid().to_owned(), key.algorithm(), "imported as next")
            }
            (None, true) => {
                db::keys::retire_active(conn, now, now + retired_grace)?;
                insert_sealed(
                    conn,
                    master,
                    &fresh_active,
                    &fresh_active_der,
                    KeyState::Active,
                    now,
                )?;
                publish_next(conn, master, algorithm, &fresh_next, now)?;
                (fresh_active.kid().to_owned(), algorithm, "generated")
            }
            (None, false) => match next {
                Some(next) => {
                    db::keys::retire_active(conn, now, now + retired_grace)?;
                    db::keys::promote(conn, &next.kid, now)?;
                    publish_next(conn, master, algorithm, &fresh_next, now)?;
                    (next.kid, next.algorithm, "promoted the pre-published key")
                }
                None => {
                    publish_next(conn, master, algorithm, &fresh_next, now)?;
                    (
                        fresh_next.0.kid().to_owned(),
                        algorithm,
                        "published a next key",
                    )
                }
            },
        };
        let action = if how.starts_with("imported") {
            "signing_key.imported"
        } else {
            "signing_key.rotated"
        };
        let details = json!({
            "key": new_kid,
            "active": db::keys::in_state(conn, KeyState::Active)?.map(|k| k.kid),
            "next": db::keys::in_state(conn, KeyState::Next)?.map(|k| k.kid),
            "retired": active
                .as_ref()
                .filter(|_| !matches!(how, "imported as next" | "published a next key"))
                .map(|k| k.kid.as_str()),
            "algorithm": new_algorithm.as_str(),
            "how": how,
        });
        audit::record(
            conn,
            actor,
            audit::Event {
                action,
                subject_id: Some(&new_kid),
                details: Some(details),
                ..audit::Event::default()
            },
            now,
        )?;
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
    let rotated = rotate_with(
        conn,
        &Actor::system(),
        master,
        algorithm,
        retired_grace,
        now,
        None,
        when,
        Activation::PrePublished,
    );
    match rotated {
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
    if !published.iter().any(|k| k.state == KeyState::Active) {
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
    if !published.iter().any(|k| k.state == KeyState::Next) {
        check_master_key(conn, master)?;
        let (next, der) = SigningKey::generate(algorithm)?;
        match insert_sealed(conn, master, &next, &der, KeyState::Next, now) {
            Err(DbError::Query(e)) if db::is_unique_violation(&e) => {}
            other => other?,
        }
    }
    Ok(None)
}

/// Rotates now (CLI, admin API); see `rotate_with` for what `activation` does. Returns the
/// new key's view: the new active key, or the new `next` key when there was none to promote.
pub fn rotate(
    conn: &mut DbConn,
    actor: &Actor,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    retired_grace: i64,
    now: i64,
    activation: Activation,
) -> Result<KeyView, KeyServiceError> {
    let kid = rotate_with(
        conn,
        actor,
        master,
        algorithm,
        retired_grace,
        now,
        None,
        When::Now,
        activation,
    )?
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
    let due = db::keys::in_state(conn, KeyState::Active)?
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

/// Imports a PEM private key (the way to sign with RS256, which ring cannot generate): as
/// the `next` key (published now, active from the next rotation), or active at once with
/// [`Activation::Immediately`].
#[expect(clippy::too_many_arguments, reason = "the CLI's import options")]
pub fn import_pem(
    conn: &mut DbConn,
    actor: &Actor,
    master: &MasterKey,
    algorithm: SigningAlgorithm,
    pem: &str,
    retired_grace: i64,
    now: i64,
    activation: Activation,
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
        actor,
        master,
        next_algorithm,
        retired_grace,
        now,
        Some((key, der)),
        When::Now,
        activation,
    )?
    .ok_or(KeyServiceError::ConcurrentRotation)?;
    view_of(conn, &kid, now)
}

pub fn list(conn: &mut DbConn, now: i64) -> Result<Vec<KeyView>, KeyServiceError> {
    Ok(db::keys::list(conn)?
        .iter()
        .map(|key| KeyView::new(key, now))
        .collect())
}

fn ring_fingerprint(summary: Vec<db::keys::KeySummary>) -> Vec<(String, String, Option<i64>)> {
    summary
        .into_iter()
        .map(|k| (k.kid, k.state.as_str().to_owned(), k.publish_until))
        .collect()
}

/// Loads and decrypts every published key into a new in-memory key ring.
pub fn load_ring(
    conn: &mut DbConn,
    master: &MasterKey,
    now: i64,
) -> Result<KeyRing, KeyServiceError> {
    let keys = db::keys::published(conn, now)?;
    let fingerprint = ring_fingerprint(db::keys::fingerprint(conn)?);
    let active = keys
        .iter()
        .find(|k| k.state == KeyState::Active)
        .ok_or(KeyServiceError::NoActiveKey)?;
    let active_since = active.activated_at.unwrap_or(active.created_at);
    let active = Arc::new(open(active, master)?);
    let published: Vec<serde_json::Value> = keys.iter().map(|k| k.public_jwk.clone()).collect();
    Ok(KeyRing::new(active, &published, fingerprint).with_active_since(active_since))
}

/// Whether the ring is stale: the key table changed (a rotation by the CLI or another
/// instance), or a retired key it still publishes has reached the end of its publication.
pub fn needs_reload(conn: &mut DbConn, ring: &KeyRing, now: i64) -> Result<bool, KeyServiceError> {
    let summary = db::keys::fingerprint(conn)?;
    let ended = summary.iter().any(|k| {
        k.state == KeyState::Retired
            && k.publish_until.is_some_and(|t| t <= now)
            && ring.verifying_key(&k.kid).is_some()
    });
    Ok(ended || ring_fingerprint(summary) != ring.fingerprint())
}
