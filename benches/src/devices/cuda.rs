//! The CUDA backend in a run (feature `cuda`).
//!
//! Seam for device timers: implement [`DeviceClock`] as `CudaEventClock` here and
//! pass it in [`visit`] instead of [`HostClock`]. What it needs from backend-cuda:
//! the stream every call is queued on, e.g. `CudaBackend::stream() ->
//! &Arc<cudarc::driver::CudaStream>` (or `CudaBackend::record_event()` returning a
//! `cudarc::driver::CudaEvent` created with timing enabled). `time(f)` then records
//! an event, runs `f`, records a second event, synchronizes on it and returns
//! `start.elapsed_ms(&end)`: the device time of the kernels `f` queued.
//!
//! Every device: this module expects `CudaBackend::device_count() -> Result<usize>`
//! and `CudaBackend::new(ordinal) -> Result<CudaBackend>` (typed errors when there is
//! no driver or no device), and runs each ordinal as `cuda:0`, `cuda:1`, ….

#[allow(unused_imports)]
use crate::clock::DeviceClock;
use crate::clock::HostClock;
use crate::devices::{DeviceKind, DeviceVisitor};
use backend_cuda::CudaBackend;

/// Open every CUDA device and hand each to `v`.
pub fn visit<V: DeviceVisitor>(v: &mut V) {
    let count = match CudaBackend::device_count() {
        Ok(0) => return v.skip("skipped: cuda: no CUDA device".into()),
        Ok(n) => n,
        Err(e) => return v.skip(format!("skipped: cuda: {e}")),
    };
    for ordinal in 0..count {
        match CudaBackend::new(ordinal) {
            Ok(be) => {
                let id = format!("cuda:{ordinal}");
                let kind = DeviceKind {
                    id: &id,
                    backend: "cuda",
                    host_probes: false,
                    scalar: false,
                };
                // Host clock until backend-cuda exposes its stream (module docs).
                v.device(kind, &be, &HostClock::new(&be));
            }
            Err(e) => v.skip(format!("skipped: cuda:{ordinal}: {e}")),
        }
    }
}
