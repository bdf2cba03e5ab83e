//! The running application's shared state ([`AppState`]), its clock, and the background
//! maintenance every instance runs. `http` handlers and `startup` both use it; it knows no
//! HTTP framework.

pub mod clock;
pub mod maintenance;
pub mod rate_limit;

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{HotCache, Lookup};
use crate::config::Settings;
use crate::crypto::sealed::MasterKey;
use crate::crypto::signer::KeyStore;
use crate::db::{Db, DbError, StoreFailure};
use crate::oauth::TokenPolicy;
use crate::service::api_keys::UsageTracker;
use crate::service::grants::Issuer;
use crate::service::pairing::Pairing;
use crate::telemetry::metrics::Metrics;

pub use clock::Clock;
use rate_limit::{AuthThrottle, RateLimiter};

/// Everything a request handler needs, in one place.
pub struct AppState {
    pub db: Db,
    /// The hot path's in-memory view of clients, API keys, accounts and revocations.
    pub cache: Arc<HotCache>,
    /// Access tokens whose signature introspection already checked.
    pub verified_tokens: crate::service::introspection::VerifiedTokens,
    pub keys: KeyStore,
    pub policy: TokenPolicy,
    pub master_key: Arc<MasterKey>,
    pub settings: Settings,
    pub clock: Clock,
    /// API key uses waiting to be written to `last_used_at`.
    pub usage: UsageTracker,
    /// Limits on pairing challenge creation, per client address and per account from one
    /// address.
    pub pairing_by_address: RateLimiter,
    pub pairing_by_account: RateLimiter,
    /// Console sign-in attempts per client address (each account also has its own block,
    /// in the database).
    pub sign_in_by_address: RateLimiter,
    /// Password hashing (argon2id, ~19 MiB and tens of milliseconds each) runs on its own
    /// threads, at most this many at once, never on the database's blocking threads.
    pub password_permits: tokio::sync::Semaphore,
    /// The pairing secret (derived from the master key) and decoy challenges' attempts.
    pub pairing: Pairing,
    /// Failed client authentication on the OAuth endpoints, per client id and address.
    pub auth_failures: AuthThrottle,
    /// This instance's Prometheus metrics (a cache gets its counters from
    /// `metrics.cache("name")` when built here).
    pub metrics: Metrics,
    /// Ids for requests that arrive without `X-Request-Id`.
    pub request_ids: crate::telemetry::RequestIds,
}

impl AppState {
    pub fn new(
        db: Db,
        keys: KeyStore,
        master_key: MasterKey,
        settings: Settings,
        clock: Clock,
    ) -> Self {
        let auth_failures = AuthThrottle::new(&settings.auth_throttle);
        let metrics = Metrics::new();
        Self {
            db,
            cache: Arc::new(HotCache::with_metrics(&metrics)),
            verified_tokens: Default::default(),
            keys,
            policy: settings.token_policy(),
            pairing: Pairing::new(&master_key),
            master_key: Arc::new(master_key),
            settings,
            clock,
            usage: UsageTracker::default(),
            pairing_by_address: RateLimiter::new(10, Duration::from_secs(60)),
            pairing_by_account: RateLimiter::new(5, Duration::from_secs(600)),
            sign_in_by_address: RateLimiter::new(30, Duration::from_secs(300)),
            password_permits: tokio::sync::Semaphore::new(2),
            auth_failures,
            metrics,
            request_ids: Default::default(),
        }
    }

    /// Unix seconds, from the application's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Runs a password hash or check on a thread of its own, at most
    /// [`AppState::password_permits`] at once (others wait their turn).
    pub async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.password_permits.acquire().await.ok()?;
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("password-hash".into())
            .spawn(move || {
                let _ = done.send(work());
            })
            .ok()?;
        result.await.ok()
    }

    /// Runs `f` against the in-memory view alone, on the calling (async) thread; only if
    /// that view lacks something `f` needs (or cannot be trusted now), runs it again with
    /// the database behind the view, on the blocking pool. `f` must have no effect that a
    /// second run would repeat before it returns a miss: the hot path's lookups come first.
    pub async fn read_through<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: Fn(&mut dyn Lookup, &AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + StoreFailure + Send + 'static,
    {
        match f(&mut self.cache.memory(), self) {
            Err(err) if matches!(err.store_error(), Some(DbError::NotCached)) => {}
            answered => return answered,
        }
        let app = self.clone();
        self.db
            .run(move |conn| f(&mut app.cache.backed(conn), &app))
            .await
    }

    /// Runs `f` with what the token grants need (the current key ring, policy, usage
    /// tracker and time).
    pub fn with_issuer<T>(&self, f: impl FnOnce(&Issuer<'_>) -> T) -> T {
        let keys = self.keys.borrow();
        f(&Issuer {
            keys: &keys,
            policy: &self.policy,
            usage: &self.usage,
            now: self.now(),
        })
    }
}
