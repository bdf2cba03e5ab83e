//! The hot path's in-memory view of clients, API keys, accounts and revocations, so that
//! issuing, introspecting and API-key authentication make no database round trip once warm.
//!
//! Exactness comes from the change feed ([`feed`]): every write to those tables, by any
//! instance, the CLI or plain SQL, produces a change (database triggers), and each instance
//! applies the changes it reads by forgetting the affected entries. The view is trusted only
//! while the feed has confirmed, within [`LEASE`], that every change committed before its
//! last round was applied; otherwise every lookup goes to the database. So a disabled client
//! or a revoked key is refused everywhere at most `LEASE` plus one round after its commit
//! (in practice: milliseconds), and at once on the instance that made the change (a
//! changing request waits for one feed round before it answers, see [`HotCache::catch_up`]).
//!
//! Unknown keys are remembered as absent too (bounded, see [`table::Table`]), so a flood
//! of made-up client ids or API keys costs one query per distinct value and no more memory
//! than the bound.

pub mod feed;
pub(crate) mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::db::{self, DbConn, DbError};
use crate::domain::{Account, ApiKey, Client};
use crate::telemetry::metrics::{CacheMetrics, Metrics};
use table::{Cached, Table};

/// How long after the feed's last confirmed round the view is still trusted.
pub const LEASE: Duration = Duration::from_millis(500);

/// Bounds on the number of entries (each kind), values and "there is none".
const CLIENTS: usize = 100_000;
const KEYS: usize = 200_000;
const ACCOUNTS: usize = 100_000;
const REVOCATIONS: usize = 100_000;
const ABSENT: usize = 10_000;

/// An API key as the view holds it: with the digest it was found by (checked on every
/// use), and when its use was last noted by this instance.
pub struct CachedKey {
    pub key: ApiKey,
    digest: Option<[u8; 32]>,
    last_noted: AtomicI64,
}

impl CachedKey {
    pub(crate) fn new(key: ApiKey, digest: Option<[u8; 32]>) -> Arc<Self> {
        let last_noted = key.last_used_at.unwrap_or(i64::MIN);
        Arc::new(Self {
            key,
            digest,
            last_noted: AtomicI64::new(last_noted),
        })
    }

    /// Whether this use should be written: true for the first use after `precision`
    /// seconds, on this instance.
    pub fn note_use(&self, now: i64, precision: i64) -> bool {
        let last = self.last_noted.load(Ordering::Relaxed);
        now.saturating_sub(last) >= precision
            && self
                .last_noted
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Whether no use of the key is known yet (the first one is audited).
    pub fn never_used(&self) -> bool {
        self.key.last_used_at.is_none() && self.last_noted.load(Ordering::Relaxed) == i64::MIN
    }

    pub fn mark_used(&self, now: i64) {
        self.last_noted.fetch_max(now, Ordering::Relaxed);
    }
}

/// A key found by its secret, with its account.
pub type FoundKey = (Arc<CachedKey>, Arc<Account>);

pub struct HotCache {
    clients: Table<String, Arc<Client>>,
    /// Digest of an API key's secret → the key's id.
    digests: Table<[u8; 32], String>,
    keys: Table<String, Arc<CachedKey>>,
    accounts: Table<String, Arc<Account>>,
    /// A value: the token is revoked; absent: it is not.
    revocations: Table<String, ()>,
    started: Instant,
    /// Milliseconds since `started` at which the last confirmed feed round began; 0: none.
    confirmed_at: AtomicU64,
    feed: feed::FeedHandle,
    pub stats: Stats,
    /// Hits and misses, per [`Kind`] (also in Prometheus when built `with_metrics`).
    metrics: [CacheMetrics; 4],
}

/// What a lookup was for, in the metrics.
#[derive(Clone, Copy)]
enum Kind {
    Clients = 0,
    ApiKeys = 1,
    Accounts = 2,
    Revocations = 3,
}

/// How often the whole view was forgotten (the feed (re)connected or lost track), and
/// lookups that could not trust it. Lookups answered from memory and from the database
/// are counted per kind ([`HotCache::hits`], [`HotCache::misses`]).
#[derive(Default)]
pub struct Stats {
    pub resyncs: AtomicU64,
    /// Lookups that found the view not trusted (the feed late or gone), so went to the
    /// database.
    pub stale: AtomicU64,
}

impl Default for HotCache {
    fn default() -> Self {
        Self::new()
    }
}

impl HotCache {
    /// A view whose lookups are counted in `metrics` (`tollgate_cache_requests_total`).
    pub fn with_metrics(metrics: &Metrics) -> Self {
        Self {
            metrics: ["clients", "api_keys", "accounts", "revocations"]
                .map(|name| metrics.cache(name)),
            ..Self::new()
        }
    }

    pub fn new() -> Self {
        Self {
            metrics: std::array::from_fn(|_| CacheMetrics::detached()),
            clients: Table::new(CLIENTS, ABSENT),
            digests: Table::new(KEYS, ABSENT),
            keys: Table::new(KEYS, ABSENT),
            accounts: Table::new(ACCOUNTS, ABSENT),
            revocations: Table::new(REVOCATIONS, ABSENT),
            started: Instant::now(),
            confirmed_at: AtomicU64::new(0),
            feed: feed::FeedHandle::default(),
            stats: Stats::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1: 0 means "never confirmed".
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Whether the feed confirmed recently enough for the view to be used.
    pub fn is_fresh(&self) -> bool {
        let confirmed = self.confirmed_at.load(Ordering::Acquire);
        confirmed != 0
            && self.now_ms().saturating_sub(confirmed)
                <= u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX)
    }

    /// The feed applied every change committed before `round_started` (from
    /// [`HotCache::now_ms`]).
    fn confirm(&self, round_started: u64) {
        self.confirmed_at.fetch_max(round_started, Ordering::AcqRel);
        self.feed.confirmed(round_started);
    }

    /// Stops trusting the view until the next confirmed round.
    fn distrust(&self) {
        self.confirmed_at.store(0, Ordering::Release);
    }

    /// Applies one change read from the feed.
    fn apply(&self, kind: &str, key: &str) {
        match kind {
            "client" => self.clients.evict(key),
            "api_key" => {
                self.keys.evict(key);
                // A new key's digest may be remembered as unknown.
                self.digests.forget_absent();
            }
            "account" => self.accounts.evict(key),
            "revocation" => self.revocations.evict(key),
            _ => {
                tracing::warn!(
                    kind,
                    "unknown change in the feed; forgetting the whole view"
                );
                self.forget_all();
            }
        }
    }

    /// Forgets everything (the feed may have missed changes).
    fn forget_all(&self) {
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        self.clients.clear();
        self.digests.clear();
        self.keys.clear();
        self.accounts.clear();
        self.revocations.clear();
    }

    /// Waits (at most [`LEASE`]) until the feed has applied every change committed before
    /// this call, so that the instance that made a change acts on it at once. Returns at
    /// once when the view is not in use anyway.
    pub async fn catch_up(&self) {
        if !self.is_fresh() {
            return;
        }
        let wanted = self.now_ms();
        self.feed.wait_for_round(wanted, LEASE).await;
    }

    /// [`HotCache::catch_up`] for synchronous callers (tests, the CLI in-process).
    pub fn catch_up_blocking(&self) {
        if !self.is_fresh() {
            return;
        }
        let wanted = self.now_ms();
        self.feed.wait_for_round_blocking(wanted, LEASE);
    }

    /// Entries held, per kind: (values, "there is none").
    pub fn sizes(&self) -> [(&'static str, (usize, usize)); 5] {
        [
            ("clients", self.clients.len()),
            ("api_key_digests", self.digests.len()),
            ("api_keys", self.keys.len()),
            ("accounts", self.accounts.len()),
            ("revocations", self.revocations.len()),
        ]
    }

    /// Lookups from memory only: a miss is [`DbError::NotCached`].
    pub fn memory(&self) -> MemoryLookup<'_> {
        MemoryLookup { cache: self }
    }

    /// Lookups from memory, then the database (filling the view).
    pub fn backed<'a>(&'a self, conn: &'a mut DbConn) -> BackedLookup<'a> {
        BackedLookup { cache: self, conn }
    }

    fn hit(&self, kind: Kind) {
        self.metrics[kind as usize].hit();
    }

    fn miss(&self, kind: Kind) {
        self.metrics[kind as usize].miss();
    }

    /// Lookups answered from memory, of every kind.
    pub fn hits(&self) -> u64 {
        self.metrics.iter().map(CacheMetrics::hits).sum()
    }

    /// Lookups that read the database, of every kind.
    pub fn misses(&self) -> u64 {
        self.metrics.iter().map(CacheMetrics::misses).sum()
    }
}

/// What the hot path reads: clients, API keys with their accounts, revocations; and the
/// one write it may need (the first use of an API key).
pub trait Lookup {
    fn client(&mut self, id: &str) -> Result<Option<Arc<Client>>, DbError>;
    fn api_key(&mut self, digest: &[u8; 32]) -> Result<Option<FoundKey>, DbError>;
    fn api_key_by_id(&mut self, id: &str) -> Result<Option<FoundKey>, DbError>;
    fn is_revoked(&mut self, jti: &str) -> Result<bool, DbError>;
    /// Writes `last_used_at` of a key never used before, and whether this was its first
    /// use anywhere (then it is audited by the caller, in the same transaction).
    fn first_use(
        &mut self,
        key: &CachedKey,
        record: &mut dyn FnMut(&mut DbConn) -> Result<(), DbError>,
        now: i64,
    ) -> Result<(), DbError>;
}

pub struct MemoryLookup<'a> {
    cache: &'a HotCache,
}

fn from_memory<V>(cache: &HotCache, kind: Kind, cached: Cached<V>) -> Result<Option<V>, DbError> {
    if !cache.is_fresh() {
        cache.stats.stale.fetch_add(1, Ordering::Relaxed);
        return Err(DbError::NotCached);
    }
    match cached {
        Cached::Value(value) => {
            cache.hit(kind);
            Ok(Some(value))
        }
        Cached::Absent => {
            cache.hit(kind);
            Ok(None)
        }
        Cached::Unknown => Err(DbError::NotCached),
    }
}

impl MemoryLookup<'_> {
    fn key_with_account(&self, key: Arc<CachedKey>) -> Result<Option<FoundKey>, DbError> {
        let account = from_memory(
            self.cache,
            Kind::Accounts,
            self.cache.accounts.get(&key.key.account_id),
        )?;
        Ok(account.map(|account| (key, account)))
    }
}

impl Lookup for MemoryLookup<'_> {
    fn client(&mut self, id: &str) -> Result<Option<Arc<Client>>, DbError> {
        from_memory(self.cache, Kind::Clients, self.cache.clients.get(id))
    }

    fn api_key(&mut self, digest: &[u8; 32]) -> Result<Option<FoundKey>, DbError> {
        let Some(id) = from_memory(self.cache, Kind::ApiKeys, self.cache.digests.get(digest))?
        else {
            return Ok(None);
        };
        match from_memory(self.cache, Kind::ApiKeys, self.cache.keys.get(&id))? {
            Some(key) if key.digest == Some(*digest) => self.key_with_account(key),
            // Deleted, or its secret changed: only the database can tell.
            _ => Err(DbError::NotCached),
        }
    }

    fn api_key_by_id(&mut self, id: &str) -> Result<Option<FoundKey>, DbError> {
        match from_memory(self.cache, Kind::ApiKeys, self.cache.keys.get(id))? {
            Some(key) => self.key_with_account(key),
            None => Ok(None),
        }
    }

    fn is_revoked(&mut self, jti: &str) -> Result<bool, DbError> {
        Ok(from_memory(
            self.cache,
            Kind::Revocations,
            self.cache.revocations.get(jti),
        )?
        .is_some())
    }

    fn first_use(
        &mut self,
        _key: &CachedKey,
        _record: &mut dyn FnMut(&mut DbConn) -> Result<(), DbError>,
        _now: i64,
    ) -> Result<(), DbError> {
        Err(DbError::NotCached)
    }
}

pub struct BackedLookup<'a> {
    cache: &'a HotCache,
    conn: &'a mut DbConn,
}

impl BackedLookup<'_> {
    /// Remembers a key and its account as the database returned them.
    fn keep_key(
        &self,
        found: Option<(ApiKey, Account)>,
        digest: Option<[u8; 32]>,
        epochs: (u64, u64, u64),
    ) -> Option<FoundKey> {
        let (key, account) = found?;
        let key = CachedKey::new(key, digest);
        let account = Arc::new(account);
        if let Some(digest) = digest {
            self.cache
                .digests
                .fill(digest, Some(key.key.id.clone()), epochs.0);
        }
        self.cache
            .keys
            .fill(key.key.id.clone(), Some(key.clone()), epochs.1);
        self.cache
            .accounts
            .fill(account.id.clone(), Some(account.clone()), epochs.2);
        Some((key, account))
    }

    fn key_epochs(&self) -> (u64, u64, u64) {
        (
            self.cache.digests.epoch(),
            self.cache.keys.epoch(),
            self.cache.accounts.epoch(),
        )
    }
}

impl Lookup for BackedLookup<'_> {
    fn client(&mut self, id: &str) -> Result<Option<Arc<Client>>, DbError> {
        if let Ok(found) = self.cache.memory().client(id) {
            return Ok(found);
        }
        self.cache.miss(Kind::Clients);
        let epoch = self.cache.clients.epoch();
        let client = db::clients::find(self.conn, id)?.map(Arc::new);
        if db::storable(id) {
            self.cache
                .clients
                .fill(id.to_owned(), client.clone(), epoch);
        }
        Ok(client)
    }

    fn api_key(&mut self, digest: &[u8; 32]) -> Result<Option<FoundKey>, DbError> {
        if let Ok(found) = self.cache.memory().api_key(digest) {
            return Ok(found);
        }
        self.cache.miss(Kind::ApiKeys);
        let epochs = self.key_epochs();
        let found = db::api_keys::by_digest(self.conn, digest)?;
        if found.is_none() {
            self.cache.digests.fill(*digest, None, epochs.0);
        }
        Ok(self.keep_key(found, Some(*digest), epochs))
    }

    fn api_key_by_id(&mut self, id: &str) -> Result<Option<FoundKey>, DbError> {
        if let Ok(found) = self.cache.memory().api_key_by_id(id) {
            return Ok(found);
        }
        self.cache.miss(Kind::ApiKeys);
        let epochs = self.key_epochs();
        let found = db::api_keys::by_id(self.conn, id)?;
        if found.is_none() && db::storable(id) {
            self.cache.keys.fill(id.to_owned(), None, epochs.1);
        }
        Ok(self.keep_key(found, None, epochs))
    }

    fn is_revoked(&mut self, jti: &str) -> Result<bool, DbError> {
        if let Ok(found) = self.cache.memory().is_revoked(jti) {
            return Ok(found);
        }
        self.cache.miss(Kind::Revocations);
        let epoch = self.cache.revocations.epoch();
        let revoked = db::revocations::is_revoked(self.conn, jti)?;
        if db::storable(jti) {
            self.cache
                .revocations
                .fill(jti.to_owned(), revoked.then_some(()), epoch);
        }
        Ok(revoked)
    }

    fn first_use(
        &mut self,
        key: &CachedKey,
        record: &mut dyn FnMut(&mut DbConn) -> Result<(), DbError>,
        now: i64,
    ) -> Result<(), DbError> {
        db::transaction(self.conn, |conn| {
            // Only where it was still unset: another instance may have seen the first use.
            if db::api_keys::touch_first(conn, &key.key.id, now)? {
                record(conn)?;
            }
            Ok::<_, DbError>(())
        })?;
        key.mark_used(now);
        Ok(())
    }
}
