//! The devices a run covers: the CPU backend, the scalar reference backend, and the
//! GPU backends behind cargo features, with the seam their device timers go in.
//!
//! [`visit`] opens every device of one backend and hands each, with a
//! [`DeviceClock`] for it, to a [`DeviceVisitor`] (the report's runner, the criterion
//! harness). A GPU backend joins through one function in its module:
//!
//! - `wgpu` (feature `wgpu`, `wgpu.rs`): `backend_wgpu::WgpuBackend`, every adapter;
//! - `cuda` (feature `cuda`, `cuda.rs`): `backend_cuda::CudaBackend`, every device.
//!
//! Both features are off by default (CI does not build wgpu or cudarc); without them
//! a run prints `skipped: wgpu: …` / `skipped: cuda: …` and goes on, as it does
//! when the feature is on but no adapter or driver is found. wgpu is timed by
//! timestamp queries (`WgpuBackend::time_on_device`), CUDA by events on the backend's
//! stream (`CudaBackend::time_on_device`); an adapter without `TIMESTAMP_QUERY` falls
//! back to [`HostClock`], and the device's `clock` column says so.

use crate::clock::{DeviceClock, HostClock};
use brain_core::Backend;

#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "wgpu")]
mod wgpu;

/// What a device is, for whoever runs cases on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKind<'a> {
    /// Column key: `cpu`, `reference`, `wgpu:0`, `cuda:1`, ….
    pub id: &'a str,
    /// Backend: `cpu`, `reference`, `wgpu`, `cuda`.
    pub backend: &'a str,
    /// Add the CPU host probes (FMA peak, `memcpy`) to its floors.
    pub host_probes: bool,
    /// A slow scalar backend on the CPU (skips `paper`, judged by the CPU's floors).
    pub scalar: bool,
}

/// Receives every device opened by [`visit`].
pub trait DeviceVisitor {
    /// One device with the clock to time it by.
    fn device<B: Backend<Elem = f32>>(
        &mut self,
        kind: DeviceKind<'_>,
        be: &B,
        clock: &dyn DeviceClock,
    );
    /// A device (or backend) that could not be opened, as a `skipped: …` line.
    fn skip(&mut self, line: String);
}

/// Backends run when none are named: every one this build knows about (those behind
/// a cargo feature that is off print a `skipped:` line).
pub const DEFAULT_BACKENDS: [&str; 3] = ["cpu", "wgpu", "cuda"];
/// Every backend name a run accepts, in the order runs take them (the CPU first: the
/// reference backend and PyTorch on the CPU borrow its floors).
pub const KNOWN_BACKENDS: [&str; 4] = ["cpu", "reference", "wgpu", "cuda"];

/// Open every device of `backend` and hand each to `v`; `threads` sets the CPU
/// backend's pool size (default: all hardware threads).
pub fn visit<V: DeviceVisitor>(backend: &str, threads: Option<usize>, v: &mut V) {
    match backend {
        "cpu" => {
            let be = match threads {
                Some(t) => match backend_cpu::CpuBackend::with_threads(t) {
                    Ok(be) => be,
                    Err(e) => return v.skip(format!("skipped: cpu: {e}")),
                },
                None => backend_cpu::CpuBackend::new(),
            };
            let kind = DeviceKind {
                id: "cpu",
                backend: "cpu",
                host_probes: true,
                scalar: false,
            };
            v.device(kind, &be, &HostClock::new(&be));
        }
        "reference" => {
            let be = brain_core::reference::ReferenceBackend::<f32>::new();
            let kind = DeviceKind {
                id: "reference",
                backend: "reference",
                host_probes: false,
                scalar: true,
            };
            v.device(kind, &be, &HostClock::new(&be));
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            wgpu::visit(v);
            #[cfg(not(feature = "wgpu"))]
            v.skip(
                "skipped: wgpu: benches built without the `wgpu` feature (cargo run --release -p benches --features wgpu --bin report)".into(),
            );
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            cuda::visit(v);
            #[cfg(not(feature = "cuda"))]
            v.skip(
                "skipped: cuda: benches built without the `cuda` feature (cargo run --release -p benches --features cuda --bin report)".into(),
            );
        }
        other => v.skip(format!("skipped: {other}: unknown backend")),
    }
}

/// An error's message from just after its first `prefix` (e.g. `"cuda: "`), so
/// that a `skipped: cuda: …` line does not name the backend twice.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn strip(e: &brain_core::BrainError, prefix: &str) -> String {
    let s = e.to_string();
    match s.find(prefix) {
        Some(i) => s[i + prefix.len()..].to_string(),
        None => s,
    }
}

/// The CPU backend's pool size for `threads` (what PyTorch is given on the CPU).
pub fn cpu_threads(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| backend_cpu::CpuBackend::new().threads())
}
