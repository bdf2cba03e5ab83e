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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

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
