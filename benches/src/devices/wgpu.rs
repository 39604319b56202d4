//! The wgpu backend in a run (feature `wgpu`).
//!
//! Seam for device timers: implement [`DeviceClock`] as `WgpuTimestampClock` here
//! and pass it in [`visit`] instead of [`HostClock`]. What it needs from
//! backend-wgpu:
//!
//! 1. the device opened with `wgpu::Features::TIMESTAMP_QUERY` (and
//!    `TIMESTAMP_QUERY_INSIDE_ENCODERS`) when the adapter has them;
//! 2. its `wgpu::Device` and `wgpu::Queue` (e.g. `WgpuBackend::device()`,
//!    `WgpuBackend::queue()`), since every backend call submits its own command
//!    buffer.
//!
//! `time(f)` then submits an encoder that writes timestamp 0 into a 2-entry query
//! set, runs `f` (which submits the kernels), submits an encoder that writes
//! timestamp 1 and resolves the set into a buffer, maps it, and returns
//! `(t1 − t0) · queue.get_timestamp_period()` nanoseconds. Submissions on one queue
//! execute in order, so the interval covers the kernels `f` queued.
//!
//! Every adapter: `WgpuBackend::new()` opens the best Vulkan adapter (or the one named
//! by `$BRAIN_WGPU_ADAPTER`); benchmarking each adapter needs an enumeration (e.g.
//! `backend_wgpu::adapter_names() -> Vec<String>` and
//! `WgpuBackend::with_adapter(&name)`), looped over here as `wgpu:0`, `wgpu:1`, ….

#[allow(unused_imports)]
use crate::clock::DeviceClock;
use crate::clock::HostClock;
use crate::devices::{DeviceKind, DeviceVisitor};
use backend_wgpu::WgpuBackend;

/// Open the wgpu device and hand it to `v`.
pub fn visit<V: DeviceVisitor>(v: &mut V) {
    match WgpuBackend::new() {
        Ok(be) => {
            let kind = DeviceKind {
                id: "wgpu:0",
                backend: "wgpu",
                host_probes: false,
                scalar: false,
            };
            // Host clock until backend-wgpu exposes timestamp queries (module docs).
            v.device(kind, &be, &HostClock::new(&be));
        }
        Err(e) => v.skip(format!("skipped: wgpu: {e}")),
    }
}
