//! The CUDA backend in a run (feature `cuda`): every device the driver sees, as
//! `cuda:0`, `cuda:1`, …, timed by CUDA events on the backend's stream.
//!
//! Without a driver (or with no device) the run prints `skipped: cuda: <reason>` and
//! goes on.

use crate::clock::DeviceClock;
use crate::devices::{strip, DeviceKind, DeviceVisitor};
use backend_cuda::CudaBackend;
use brain_core::{BrainError, Result};
use std::time::Duration;

/// CUDA events recorded on the backend's stream before and after the calls
/// (`CudaBackend::time_on_device`): the device time of the kernels they queued.
pub struct CudaEventClock<'a> {
    be: &'a CudaBackend,
}

impl DeviceClock for CudaEventClock<'_> {
    fn time(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Duration> {
        match self.be.time_on_device(|_| f())? {
            ((), Some(t)) => Ok(t),
            // The emulator has no device clock; it is never opened here.
            ((), None) => Err(BrainError::Unsupported(
                "cuda: no device timer (emulator)".into(),
            )),
        }
    }

    fn describe(&self) -> String {
        "CUDA events on the stream".into()
    }
}

/// Open every CUDA device and hand each to `v`.
pub fn visit<V: DeviceVisitor>(v: &mut V) {
    let count = match CudaBackend::device_count() {
        Ok(0) => return v.skip("skipped: cuda: no CUDA device".into()),
        Ok(n) => n,
        Err(e) => return v.skip(format!("skipped: cuda: {}", strip(&e, "cuda: "))),
    };
    for ordinal in 0..count {
        match CudaBackend::with_ordinal(ordinal) {
            Ok(be) => {
                let id = format!("cuda:{ordinal}");
                let kind = DeviceKind {
                    id: &id,
                    backend: "cuda",
                    host_probes: false,
                    scalar: false,
                };
                v.device(kind, &be, &CudaEventClock { be: &be });
            }
            Err(e) => v.skip(format!("skipped: cuda:{ordinal}: {}", strip(&e, "cuda: "))),
        }
    }
}
