//! A counting global allocator: the number of allocations, the bytes allocated and the bytes
//! freed since start (so the live heap is their difference).
//!
//! The counters are striped: each thread adds to a cache-line-sized slot of its own (chosen
//! once per thread), so the worker threads of the benchmark never contend on one counter.
//! A [`Snapshot`] sums the slots. Counting costs one uncontended relaxed atomic add per
//! allocation and one per free. The `rgrid-bench` binary installs it, and so does `rgrid` when built with its
//! `bench` feature (the default `rgrid` keeps the system allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of counter slots; threads beyond this share slots (still exact, only contended).
const SLOTS: usize = 16;

/// One thread's counters, alone on its cache line.
#[repr(align(64))]
struct Slot {
    allocs: AtomicU64,
    bytes: AtomicU64,
    freed: AtomicU64,
}

static COUNTERS: [Slot; SLOTS] = [const {
    Slot {
        allocs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        freed: AtomicU64::new(0),
    }
}; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` and a type without `Drop`: no lazy initialisation and no destructor, so this
    // is safe to touch from inside the allocator.
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn slot() -> &'static Slot {
    let i = MY_SLOT
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
                s.set(i);
            }
            i
        })
        .unwrap_or(0);
    &COUNTERS[i % SLOTS]
}

fn count(size: usize) {
    let s = slot();
    s.allocs.fetch_add(1, Ordering::Relaxed);
    s.bytes.fetch_add(size as u64, Ordering::Relaxed);
}

fn count_free(size: usize) {
    slot().freed.fetch_add(size as u64, Ordering::Relaxed);
}

/// The system allocator, counting every allocation (and reallocation) it serves and the
/// bytes it frees.
#[derive(Debug)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` unchanged; the counters have no effect on memory.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_free(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        count_free(layout.size());
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocation counters at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Allocations so far.
    pub allocs: u64,
    /// Bytes requested so far.
    pub bytes: u64,
    /// Bytes freed so far (a reallocation frees the old size and requests the new one).
    pub freed: u64,
}

impl Snapshot {
    /// The counters now (all zero when [`CountingAlloc`] is not the global allocator).
    pub fn now() -> Snapshot {
        COUNTERS
            .iter()
            .fold(Snapshot::default(), |acc, s| Snapshot {
                allocs: acc.allocs + s.allocs.load(Ordering::Relaxed),
                bytes: acc.bytes + s.bytes.load(Ordering::Relaxed),
                freed: acc.freed + s.freed.load(Ordering::Relaxed),
            })
    }

    /// The counts since `earlier`.
    pub fn since(self, earlier: Snapshot) -> Snapshot {
        Snapshot {
            allocs: self.allocs.saturating_sub(earlier.allocs),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            freed: self.freed.saturating_sub(earlier.freed),
        }
    }

    /// Bytes allocated and not yet freed at this instant: the live heap, as requested (the
    /// allocator's own overhead and the memory it keeps are not in it). 0 when
    /// [`CountingAlloc`] is not the global allocator.
    pub fn live(self) -> u64 {
        self.bytes.saturating_sub(self.freed)
    }
}
