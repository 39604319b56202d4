//! Reuse of tensor buffers: a dropped [`WgpuBuffer`](crate::WgpuBuffer) hands its
//! wgpu buffer back to its device's pool (by size class), and `alloc`/`upload` take
//! from the pool before asking the driver, so the temporaries a training step
//! allocates inside its kernels cost no driver allocation once the step has run.
//!
//! # Why reuse is safe although queued work may still use a dropped buffer
//!
//! The host drops a `WgpuBuffer` as soon as it has *recorded* the kernels that use it;
//! those kernels may still be queued or running. Nothing here waits for them:
//!
//! - wgpu keeps every buffer referenced by a recorded or submitted command buffer
//!   alive until that submission has finished, so the pool holding a clone (or dropping it on
//!   eviction) never frees memory the device still reads or writes.
//! - Every use of a buffer goes through the device's one queue, whose submissions
//!   execute in order, and wgpu inserts the barriers between them (and between the
//!   commands of one encoder, where calls record their work in call order). The new
//!   owner's first use is the zero fill that `alloc` records (`clear_buffer`), or the
//!   data `upload` writes with `Queue::write_buffer` (which first submits the recorded
//!   work; the write is staged and executed before the next submission, i.e. after
//!   every command recorded before it); either lands after the
//!   previous owner's last kernel and before the new owner's first. The previous
//!   owner's last write can therefore never overwrite the new owner's data, nor can
//!   the new owner read the previous owner's values (the zero fill comes first).
//! - Tensor buffers are never mapped (no MAP_* usage; downloads go through staging
//!   buffers), so no host access can race with queued work either.
//!
//! The pool holds at most `capacity` bytes: when a returned buffer would exceed it,
//! the least recently returned buffers are evicted (dropped, freed by wgpu once idle);
//! a buffer larger than the whole capacity is dropped at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Bytes a pool may hold unless told otherwise.
pub(crate) const DEFAULT_CAPACITY: u64 = 1 << 30;

/// Smallest size class (bytes).
const MIN_CLASS: u64 = 256;

/// The size class of a request of `bytes`: rounded up to one of 16 steps per octave
/// (at most 6.25% larger), never past `max_binding` when the request fits a storage
/// binding (so that a buffer is bound whole exactly when its contents fit one), nor
/// past `max_buffer`.
pub(crate) fn class(bytes: u64, max_binding: u64, max_buffer: u64) -> u64 {
    let b = bytes.max(MIN_CLASS);
    let step = 1u64 << (63 - b.leading_zeros()).saturating_sub(4);
    let mut c = b.div_ceil(step).saturating_mul(step);
    if bytes <= max_binding {
        c = c.min(max_binding & !3);
    }
    c.min(max_buffer & !3).max(bytes)
}

/// Counters of a device's buffer pool, for tests and benchmarks.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Tensor buffers the driver created since the device was opened.
    pub driver_allocations: u64,
    /// `alloc` and `upload` calls served from the pool.
    pub reuses: u64,
    /// Buffers the pool holds now.
    pub pooled_buffers: usize,
    /// Bytes the pool holds now.
    pub pooled_bytes: u64,
    /// Bytes the pool may hold.
    pub capacity: u64,
}

struct State {
    /// Free buffers by size (their class), oldest first, each with its return number.
    free: HashMap<u64, VecDeque<(u64, wgpu::Buffer)>>,
    bytes: u64,
    capacity: u64,
    /// Return counter: orders buffers across classes for eviction.
    returned: u64,
    driver_allocations: u64,
    reuses: u64,
}

/// Free tensor buffers of one device.
pub(crate) struct Pool(Mutex<State>);

impl Pool {
    pub(crate) fn new(capacity: u64) -> Self {
        Pool(Mutex::new(State {
            free: HashMap::new(),
            bytes: 0,
            capacity,
            returned: 0,
            driver_allocations: 0,
            reuses: 0,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free buffer of exactly `class` bytes, the most recently returned one.
    pub(crate) fn take(&self, class: u64) -> Option<wgpu::Buffer> {
        let mut s = self.lock();
        let (_, buf) = s.free.get_mut(&class)?.pop_back()?;
        s.bytes -= class;
        s.reuses += 1;
        Some(buf)
    }

    /// Keep `buf` for reuse, evicting the least recently returned buffers beyond the
    /// capacity.
    pub(crate) fn put(&self, buf: wgpu::Buffer) {
        let size = buf.size();
        let mut s = self.lock();
        if size > s.capacity {
            return;
        }
        let capacity = s.capacity - size;
        s.evict_to(capacity);
        s.returned += 1;
        let n = s.returned;
        s.free.entry(size).or_default().push_back((n, buf));
        s.bytes += size;
    }

    /// Count a buffer the driver created.
    pub(crate) fn count_driver_allocation(&self) {
        self.lock().driver_allocations += 1;
    }

    /// Drop every free buffer (before retrying an allocation the driver refused).
    /// Returns whether there was any.
    pub(crate) fn clear(&self) -> bool {
        let mut s = self.lock();
        let had = s.bytes > 0 || s.free.values().any(|q| !q.is_empty());
        s.evict_to(0);
        had
    }

    pub(crate) fn set_capacity(&self, bytes: u64) {
        let mut s = self.lock();
        s.capacity = bytes;
        s.evict_to(bytes);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let s = self.lock();
        PoolStats {
            driver_allocations: s.driver_allocations,
            reuses: s.reuses,
            pooled_buffers: s.free.values().map(VecDeque::len).sum(),
            pooled_bytes: s.bytes,
            capacity: s.capacity,
        }
    }
}

impl State {
    /// Evict the least recently returned buffers until at most `bytes` remain.
    fn evict_to(&mut self, bytes: u64) {
        while self.bytes > bytes {
            // The class whose oldest buffer is the oldest of all (few classes: a scan).
            let oldest = self
                .free
                .iter()
                .filter_map(|(&size, q)| q.front().map(|&(n, _)| (n, size)))
                .min();
            let Some((_, size)) = oldest else {
                self.bytes = 0;
                return;
            };
            if let Some(q) = self.free.get_mut(&size) {
                q.pop_front();
                if q.is_empty() {
                    self.free.remove(&size);
                }
            }
            self.bytes -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::class;

    #[test]
    fn classes() {
        let (bind, buf) = (128 << 20, (1 << 31) - 1);
        assert_eq!(class(4, bind, buf), 256);
        assert_eq!(class(256, bind, buf), 256);
        assert_eq!(class(257, bind, buf), 272);
        assert_eq!(class(1000, bind, buf), 1024);
        assert_eq!(class(1025, bind, buf), 1088);
        for bytes in (4..1 << 28).step_by(4 * 7919) {
            let c = class(bytes, bind, buf);
            assert!(c >= bytes && c % 4 == 0, "{bytes} -> {c}");
            assert!(c <= bytes.max(256) + bytes.max(256) / 16, "{bytes} -> {c}");
            assert_eq!(c <= bind, bytes <= bind, "{bytes} -> {c}");
        }
        // Capped by the buffer limit (and a multiple of 4 below it).
        assert_eq!(class(2_100_000_000, bind, buf), buf & !3);
    }
}
