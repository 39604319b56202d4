//! The wgpu backend in a run (feature `wgpu`): every Vulkan adapter, as `wgpu:0`,
//! `wgpu:1`, … (or only the one `$BRAIN_WGPU_ADAPTER` names), timed by timestamp
//! queries where the adapter offers them.

use crate::clock::{DeviceClock, HostClock};
use crate::devices::{strip, DeviceKind, DeviceVisitor};
use backend_wgpu::{WgpuBackend, ADAPTER_ENV};
use brain_core::Result;
use std::cell::Cell;
use std::time::Duration;

/// Timestamp queries around every compute pass the calls record
/// (`WgpuBackend::time_on_device`); a timing is the span from the beginning of the
/// first dispatch to the end of the last. Calls that record no dispatch (the copy
/// floor: buffer copies are not compute passes), or more than the backend can time,
/// are timed by the host clock around `sync` instead, and [`DeviceClock::describe`]
/// counts them.
pub struct WgpuTimestampClock<'a> {
    be: &'a WgpuBackend,
    timed: Cell<usize>,
    host: Cell<usize>,
}

impl DeviceClock for WgpuTimestampClock<'_> {
    fn time(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Duration> {
        let ((), t) = self.be.time_on_device(|_| f())?;
        match t {
            Some(t) if t.dispatches > 0 && t.untimed == 0 => {
                self.timed.set(self.timed.get() + 1);
                Ok(t.span)
            }
            _ => {
                self.host.set(self.host.get() + 1);
                HostClock::new(self.be).time(f)
            }
        }
    }

    fn describe(&self) -> String {
        let host = self.host.get();
        if host == 0 {
            "wgpu timestamp queries (first dispatch to last)".into()
        } else {
            format!(
                "wgpu timestamp queries (first dispatch to last); host clock around sync for {host} of {} timings (no timed dispatch, e.g. copies)",
                host + self.timed.get()
            )
        }
    }
}

/// The clock for `be`: timestamps when the adapter offers them, otherwise the host
/// clock around `sync`, labelled as such.
fn clock_for<'a>(be: &'a WgpuBackend) -> Box<dyn DeviceClock + 'a> {
    if be.has_timestamps() {
        Box::new(WgpuTimestampClock {
            be,
            timed: Cell::new(0),
            host: Cell::new(0),
        })
    } else {
        Box::new(NoTimestamps(HostClock::new(be)))
    }
}

/// The host clock on an adapter without `TIMESTAMP_QUERY`, saying so.
struct NoTimestamps<'a>(HostClock<'a, WgpuBackend>);

impl DeviceClock for NoTimestamps<'_> {
    fn time(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Duration> {
        self.0.time(f)
    }
    fn describe(&self) -> String {
        "host clock around sync (adapter has no TIMESTAMP_QUERY)".into()
    }
}

/// Open every Vulkan adapter (only `$BRAIN_WGPU_ADAPTER`'s when set) and hand each to
/// `v`.
pub fn visit<V: DeviceVisitor>(v: &mut V) {
    let pinned = std::env::var(ADAPTER_ENV).is_ok_and(|s| !s.is_empty());
    let count = if pinned {
        1
    } else {
        backend_wgpu::adapter_names().len().max(1)
    };
    for i in 0..count {
        // With no adapter, `new` says why.
        let be = if pinned || count == 1 {
            WgpuBackend::new()
        } else {
            WgpuBackend::with_adapter_index(i)
        };
        match be {
            Ok(be) => {
                let id = format!("wgpu:{i}");
                let kind = DeviceKind {
                    id: &id,
                    backend: "wgpu",
                    host_probes: false,
                    scalar: false,
                };
                let clock = clock_for(&be);
                v.device(kind, &be, clock.as_ref());
            }
            Err(e) if count == 1 => v.skip(format!("skipped: wgpu: {}", strip(&e, "wgpu: "))),
            Err(e) => v.skip(format!("skipped: wgpu:{i}: {}", strip(&e, "wgpu: "))),
        }
    }
}
