//! One bounded map of the in-memory view: what the database said about a key (a value, or
//! that there is none), until a change to that key arrives.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shards per table. A read takes its shard's lock, which writes the lock's word: with one
/// lock, every lookup by every worker would write the same cache line.
const SHARDS: usize = 8;

/// Entries of one kind, in shards by key. Every eviction moves `epoch` on, and a value read
/// from the database is kept only if no eviction happened since the read began (see
/// [`Table::fill`]): otherwise a change that committed after the read but was applied
/// before the fill would be lost, and the stale value kept until the next change.
pub struct Table<K, V> {
    shards: Box<[Shard<K, V>]>,
    /// Picks a key's shard (keyed, so that nobody can aim every key at one shard).
    hasher: RandomState,
    /// Moved on under the evicting shard's lock, read by a fill under its own.
    epoch: AtomicU64,
    /// Most entries with a value, per shard; past it, an eighth of the shard's go.
    capacity: usize,
    /// Most "there is none" entries, per shard; past it, all of the shard's go, so a flood
    /// of unknown keys costs bounded memory and cannot push out the entries in use.
    negative_capacity: usize,
}

/// One shard, alone on its cache lines.
#[repr(align(128))]
struct Shard<K, V>(RwLock<Inner<K, V>>);

struct Inner<K, V> {
    entries: HashMap<K, Option<V>>,
    negatives: usize,
}

/// What the view holds for a key.
pub enum Cached<V> {
    /// The database has this value.
    Value(V),
    /// The database has no such key.
    Absent,
    /// Not known here: ask the database.
    Unknown,
}

impl<K: Eq + Hash, V: Clone> Table<K, V> {
    /// At most `capacity` values and `negative_capacity` "there is none" entries in all
    /// (each shard holds its share; at least one of each).
    pub fn new(capacity: usize, negative_capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Shard(RwLock::new(Inner {
                        entries: HashMap::new(),
                        negatives: 0,
                    }))
                })
                .collect(),
            hasher: RandomState::new(),
            epoch: AtomicU64::new(0),
            capacity: (capacity / SHARDS).max(1),
            negative_capacity: (negative_capacity / SHARDS).max(1),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<Inner<K, V>> {
        let at = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[at].0
    }

    pub fn get<Q>(&self, key: &Q) -> Cached<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Ok(inner) = self.shard(key).read() else {
            return Cached::Unknown;
        };
        match inner.entries.get(key) {
            Some(Some(value)) => Cached::Value(value.clone()),
            Some(None) => Cached::Absent,
            None => Cached::Unknown,
        }
    }

    /// Taken before reading the database for a later [`Table::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Keeps what the database said, unless something was evicted since `epoch`.
    pub fn fill(&self, key: K, value: Option<V>, epoch: u64) {
        let Ok(mut inner) = self.shard(&key).write() else {
            return;
        };
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        let is_negative = value.is_none();
        if is_negative && inner.negatives >= self.negative_capacity {
            inner.entries.retain(|_, value| value.is_some());
            inner.negatives = 0;
        }
        if !is_negative && inner.entries.len() - inner.negatives >= self.capacity {
            let mut seen = 0usize;
            inner.entries.retain(|_, value| {
                seen += 1;
                value.is_none() || !seen.is_multiple_of(8)
            });
        }
        match inner.entries.insert(key, value) {
            Some(None) if !is_negative => inner.negatives -= 1,
            Some(Some(_)) | None if is_negative => inner.negatives += 1,
            _ => {}
        }
    }

    /// Forgets one key (it changed in the database).
    pub fn evict<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Ok(mut inner) = self.shard(key).write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            if let Some(None) = inner.entries.remove(key) {
                inner.negatives -= 1;
            }
        }
    }

    /// Forgets every "there is none" entry (a key was added whose identity the change does
    /// not tell).
    pub fn forget_absent(&self) {
        for shard in &self.shards {
            if let Ok(mut inner) = shard.0.write() {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                inner.entries.retain(|_, value| value.is_some());
                inner.negatives = 0;
            }
        }
    }

    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut inner) = shard.0.write() {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                inner.entries = HashMap::new();
                inner.negatives = 0;
            }
        }
    }

    /// (entries with a value, "there is none" entries).
    pub fn len(&self) -> (usize, usize) {
        self.shards
            .iter()
            .fold((0, 0), |(values, negatives), shard| {
                shard.0.read().map_or((values, negatives), |inner| {
                    (
                        values + inner.entries.len() - inner.negatives,
                        negatives + inner.negatives,
                    )
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(table: &Table<String, u32>, key: &str) -> Option<Option<u32>> {
        match table.get(key) {
            Cached::Value(v) => Some(Some(v)),
            Cached::Absent => Some(None),
            Cached::Unknown => None,
        }
    }

    #[test]
    fn a_fill_that_raced_an_eviction_is_dropped() {
        let table = Table::new(100, 10);
        let epoch = table.epoch();
        table.evict("a");
        table.fill("a".to_owned(), Some(1), epoch);
        assert_eq!(value(&table, "a"), None);
        table.fill("a".to_owned(), Some(2), table.epoch());
        assert_eq!(value(&table, "a"), Some(Some(2)));
        table.evict("a");
        assert_eq!(value(&table, "a"), None);
    }

    #[test]
    fn unknown_keys_stay_within_their_bound_and_never_push_out_values() {
        let table = Table::new(100, 10);
        table.fill("kept".to_owned(), Some(7), table.epoch());
        for n in 0..1000 {
            table.fill(format!("unknown-{n}"), None, table.epoch());
            let (values, negatives) = table.len();
            assert_eq!(values, 1);
            assert!(negatives <= 10);
        }
        assert_eq!(value(&table, "kept"), Some(Some(7)));
        assert_eq!(value(&table, "unknown-999"), Some(None));
        table.forget_absent();
        assert_eq!(table.len(), (1, 0));
    }

    #[test]
    fn values_stay_within_their_bound() {
        let table = Table::new(64, 10);
        for n in 0..1000 {
            table.fill(format!("k{n}"), Some(n), table.epoch());
            assert!(table.len().0 <= 64);
        }
        // Replacing a negative entry with a value keeps the counts right.
        table.fill("x".to_owned(), None, table.epoch());
        table.fill("x".to_owned(), Some(1), table.epoch());
        assert_eq!(table.len().1, 0);
        table.fill("x".to_owned(), None, table.epoch());
        assert_eq!(table.len().1, 1);
    }
}
