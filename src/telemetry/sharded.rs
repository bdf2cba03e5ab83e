//! Counting on the hot path without a cache line that every worker writes.
//!
//! An atomic that two cores add to moves between them on every add (about 150 ns on the
//! machines we benchmark on, against a few ns for a line the core already holds), and a
//! token request counted into several shared atomics pays that several times. Here each
//! thread adds to a slot of its own; whoever reads sums the slots.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots per counter: one per worker on the machines Tollgate runs on, beyond which
/// threads share slots (still exact, only shared again).
const SLOTS: usize = 16;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's slot, handed out round robin on first use.
fn slot() -> usize {
    SLOT.with(|slot| match slot.get() {
        Some(index) => index,
        None => {
            let index = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            slot.set(Some(index));
            index
        }
    })
}

/// One counter's slot, alone on its cache lines (128 bytes: adjacent-line prefetch pairs
/// 64-byte lines).
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicU64);

/// A monotonic counter, added to per thread and read as the sum.
pub struct ShardedCounter(Box<[Slot; SLOTS]>);

impl Default for ShardedCounter {
    fn default() -> Self {
        Self(Box::new(std::array::from_fn(|_| Slot::default())))
    }
}

impl ShardedCounter {
    #[inline]
    pub fn inc(&self) {
        if let Some(own) = self.0.get(slot()) {
            own.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The sum over every thread's adds (each slot read once: exact when nobody adds
    /// meanwhile, otherwise somewhere between the counts before and after).
    pub fn get(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, slot| {
            sum.wrapping_add(slot.0.load(Ordering::Relaxed))
        })
    }
}

/// Most buckets a [`ShardedHistogram`] counts: its bounds, then one for what is above the
/// last. With the sum, a thread's slot fills two cache lines exactly.
pub const MAX_BUCKETS: usize = 15;

#[repr(align(128))]
#[derive(Default)]
struct HistogramSlot {
    counts: [AtomicU64; MAX_BUCKETS],
    /// The sum of the observed values, as `f64` bits.
    sum: AtomicU64,
}

/// A histogram observed per thread and read as the sum of the threads' counts.
pub struct ShardedHistogram {
    /// Upper bounds, ascending; at most `MAX_BUCKETS - 1` (more are ignored).
    bounds: &'static [f64],
    slots: Box<[HistogramSlot; SLOTS]>,
}

/// A histogram's counts at one moment: `counts[i]` values at or below `bounds[i]` and above
/// the bound before it, then those above the last bound; not cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HistogramCounts {
    pub counts: [u64; MAX_BUCKETS],
    pub sum: f64,
}

impl HistogramCounts {
    pub fn add(&mut self, other: &Self) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count = count.wrapping_add(more);
        }
        self.sum += other.sum;
    }

    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, count| sum.wrapping_add(*count))
    }
}

impl ShardedHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds: bounds.get(..MAX_BUCKETS - 1).unwrap_or(bounds),
            slots: Box::new(std::array::from_fn(|_| HistogramSlot::default())),
        }
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    #[inline]
    pub fn observe(&self, value: f64) {
        let Some(own) = self.slots.get(slot()) else {
            return;
        };
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = own.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // A compare-and-swap on the thread's own line: threads share a slot only past
        // SLOTS threads, and then the loop is still exact.
        let _ = own
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// The counts over every thread (each slot read once, as [`ShardedCounter::get`]).
    pub fn counts(&self) -> HistogramCounts {
        let mut all = HistogramCounts::default();
        for slot in self.slots.iter() {
            let mut counts = HistogramCounts {
                sum: f64::from_bits(slot.sum.load(Ordering::Relaxed)),
                ..HistogramCounts::default()
            };
            for (count, atomic) in counts.counts.iter_mut().zip(&slot.counts) {
                *count = atomic.load(Ordering::Relaxed);
            }
            all.add(&counts);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_histogram_counts_each_value_once_in_its_bucket() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let histogram = Arc::new(ShardedHistogram::new(&BOUNDS));
        let threads: Vec<_> = (0..SLOTS + 2)
            .map(|_| {
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    for value in [0.0005, 0.001, 0.005, 0.05, 0.5] {
                        histogram.observe(value);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let counts = histogram.counts();
        let n = SLOTS as u64 + 2;
        assert_eq!(&counts.counts[..4], &[2 * n, n, n, n]);
        assert_eq!(counts.total(), 5 * n);
        assert!((counts.sum - 0.5565 * n as f64).abs() < 1e-9);
        assert!(std::mem::size_of::<HistogramSlot>() == 128);
    }

    #[test]
    fn adds_from_many_threads_all_count() {
        let counter = Arc::new(ShardedCounter::default());
        let threads: Vec<_> = (0..SLOTS + 3)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| counter.inc()))
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        counter.inc();
        assert_eq!(counter.get(), (SLOTS as u64 + 3) * 1000 + 1);
    }

    #[test]
    fn slots_do_not_share_a_cache_line() {
        assert!(std::mem::align_of::<Slot>() >= 128);
        let counter = ShardedCounter::default();
        let first = std::ptr::from_ref(&counter.0[0]) as usize;
        let second = std::ptr::from_ref(&counter.0[1]) as usize;
        assert!(second - first >= 128);
    }
}
