//! Background upkeep on every instance: picks up signing keys rotated elsewhere (CLI,
//! another instance) and drops retired keys whose publication ended; runs scheduled
//! rotations (exactly one instance wins); writes API key usage; expires and prunes pairing
//! challenges; prunes revocations of tokens that have expired anyway, and finished console
//! sessions, invite links and app authorizations.

use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::db;
use crate::service::signing_keys::{self, KeyServiceError};
use crate::service::{pairing, signing_keys::KeyView};

const ROTATION_CHECK: Duration = Duration::from_secs(10);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Well under `LAST_USED_PRECISION_SECONDS`, so last_used_at stays within about a minute.
const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Runs until the task is aborted, every `settings.key_refresh`.
pub async fn run(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(state.settings.key_refresh);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rotation_check: Option<tokio::time::Instant> = None;
    let mut last_prune = tokio::time::Instant::now();
    let mut last_usage_flush = tokio::time::Instant::now();
    loop {
        interval.tick().await;
        // The breaker's probe watches the database meanwhile; nothing here could succeed.
        if state.db.health().is_down() {
            continue;
        }
        if let Some(period) = state.settings.rotation_period
            && last_rotation_check.is_none_or(|at| at.elapsed() >= ROTATION_CHECK)
        {
            last_rotation_check = Some(tokio::time::Instant::now());
            match rotate_if_due(&state, period).await {
                Ok(Some(key)) => tracing::info!(kid = %key.kid, "scheduled signing key rotation"),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "scheduled signing key rotation failed"),
            }
        }
        if let Err(err) = reload_keys_if_changed(&state).await {
            tracing::warn!(error = %err, "signing key refresh failed; keeping the current keys");
        }
        if last_usage_flush.elapsed() >= USAGE_FLUSH_EVERY {
            last_usage_flush = tokio::time::Instant::now();
            if let Err(err) = flush_usage(&state).await {
                tracing::warn!(error = %err, "writing API key last-used times failed");
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = tokio::time::Instant::now();
            prune(&state).await;
        }
    }
}

/// Writes the API key uses noted since the last flush.
pub async fn flush_usage(state: &Arc<AppState>) -> Result<usize, db::DbError> {
    let app = state.clone();
    state
        .db
        .run_background(move |conn| app.usage.flush(conn))
        .await
}

async fn prune(state: &Arc<AppState>) {
    let now = state.now();
    let expired = state
        .db
        .run_background(move |conn| {
            pairing::expire_overdue(conn, now)?;
            pairing::prune_challenges(conn, now)
        })
        .await;
    if let Err(err) = expired {
        tracing::warn!(error = %err, "expiring pairing challenges failed");
    }
    match state
        .db
        .run_background(move |conn| {
            crate::cache::feed::prune(conn)?;
            db::revocations::prune_expired(conn, now)
        })
        .await
    {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "pruned revocations of expired tokens"),
        Err(err) => tracing::warn!(error = %err, "pruning revoked tokens failed"),
    }
    let sessions = state.settings.console.sessions;
    let console = state
        .db
        .run_background(move |conn| {
            Ok::<_, db::DbError>(
                crate::service::sessions::prune(conn, &sessions, now)?
                    + crate::service::invites::prune(conn, now)?
                    + crate::service::app_authorizations::prune(conn, now)?,
            )
        })
        .await;
    if let Err(err) = console {
        tracing::warn!(error = %err, "pruning console sessions and links failed");
    }
}

async fn rotate_if_due(
    state: &Arc<AppState>,
    period: i64,
) -> Result<Option<KeyView>, KeyServiceError> {
    let (master, algorithm, grace, now) = (
        state.master_key.clone(),
        state.settings.signing_algorithm,
        state.policy.retired_key_grace(),
        state.now(),
    );
    state
        .db
        .run_background(move |conn| {
            signing_keys::rotate_if_due(conn, &master, algorithm, period, grace, now)
        })
        .await
}

/// Reloads the key ring when the key table changed. Returns whether it did.
/// An operator's rotation (admin API, console), always announced before use as the CLI's
/// default is; then this instance signs with the new key ring at once (others follow within
/// their refresh interval).
pub async fn rotate_now(
    state: &AppState,
    actor: crate::service::audit::Actor,
) -> Result<KeyView, KeyServiceError> {
    let (master, algorithm, grace, now) = (
        state.master_key.clone(),
        state.settings.signing_algorithm,
        state.policy.retired_key_grace(),
        state.now(),
    );
    let key = state
        .db
        .run(move |conn| {
            signing_keys::rotate(
                conn,
                &actor,
                &master,
                algorithm,
                grace,
                now,
                signing_keys::Activation::PrePublished,
            )
        })
        .await?;
    reload_keys_if_changed(state).await?;
    Ok(key)
}

pub async fn reload_keys_if_changed(state: &AppState) -> Result<bool, KeyServiceError> {
    let keys = state.keys.clone();
    let master = state.master_key.clone();
    let now = state.now();
    state
        .db
        .run(move |conn| {
            let current = keys.current();
            if !signing_keys::needs_reload(conn, &current, now)? {
                return Ok(false);
            }
            let ring = signing_keys::load_ring(conn, &master, now)?;
            tracing::info!(kid = %ring.active().kid(), "signing keys reloaded");
            keys.replace(ring);
            Ok(true)
        })
        .await
}
