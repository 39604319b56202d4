//! Per-device floors, measured once per device through the `Backend` trait itself
//! (so they exist for any backend) and timed by the device's own clock:
//!
//! - **FLOP rate**: a large square `Backend::gemm`: the smallest power-of-two side
//!   from 256 whose call takes at least ~50 ms, up to a cap (4096 for `paper`);
//! - **bandwidth**: `Backend::copy` over a ladder of sizes (footprint = source +
//!   destination, 4 KiB doubling up to 1 GiB for `paper`), bytes read + written.
//!   A case is judged against the best bandwidth measured at footprints at least
//!   as large as the bytes it moves (cache-resident working sets are judged against
//!   the cache, DRAM-sized ones against DRAM; for small sizes the copy's own per-call
//!   cost is part of the floor), and cases larger than the ladder against its top.
//!
//! The report measures them before and after a device's cases and keeps the best of
//! each figure. On the CPU the host probes of [`crate::peak`] are added: the FMA peak
//! (12 independent AVX2 FMA chains per thread) and a `memcpy` over 256 MiB; each floor
//! uses the best figure available (a floor must not be slower than what the device
//! was seen to do).

use crate::case::Cost;
use crate::clock::{measure, DeviceClock, Policy};
use crate::peak::MachinePeak;
use crate::prepare::data;
use brain_core::{Backend, Gemm, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How far the floor probes go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorConfig {
    /// Largest GEMM side tried.
    pub max_gemm: usize,
    /// A GEMM call this long is large enough.
    pub gemm_target: Duration,
    /// Largest copy footprint (source + destination), bytes.
    pub max_copy_bytes: usize,
    /// Smallest copy footprint, bytes.
    pub min_copy_bytes: usize,
    /// Sampling policy of each probe.
    pub policy: Policy,
    /// Quick host probes (fewer FMA iterations, smaller buffers).
    pub quick_host: bool,
}

impl FloorConfig {
    /// Probes sized for a shape set: `tiny` (tests) is quick, `paper` goes to a 4096²
    /// GEMM and 1 GiB copies.
    pub fn for_set(set: crate::shapes::ShapeSet) -> Self {
        use crate::shapes::ShapeSet::*;
        let base = FloorConfig {
            max_gemm: 4096,
            gemm_target: Duration::from_millis(50),
            max_copy_bytes: 1 << 30,
            min_copy_bytes: 4 << 10,
            policy: Policy {
                budget: Duration::from_millis(300),
                ..Policy::kernels()
            },
            quick_host: false,
        };
        match set {
            Tiny => FloorConfig {
                max_gemm: 256,
                gemm_target: Duration::from_millis(2),
                max_copy_bytes: 8 << 20,
                policy: Policy::quick(),
                quick_host: true,
                ..base
            },
            Small => FloorConfig {
                max_gemm: 2048,
                max_copy_bytes: 256 << 20,
                ..base
            },
            Paper => base,
        }
    }
}

/// One point of the copy ladder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CopyPoint {
    /// Footprint: source + destination bytes (= bytes moved per call).
    pub bytes: f64,
    /// Median seconds per copy.
    pub secs: f64,
    /// bytes / secs / 1e9.
    pub gbs: f64,
}

/// The large GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GemmPoint {
    /// Side of the square NN product.
    pub n: usize,
    /// Median seconds.
    pub secs: f64,
    /// 2n³ / secs / 1e9.
    pub gflops: f64,
}

/// The host probes of the CPU (see [`crate::peak::MachinePeak`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HostPeak {
    /// Threads.
    pub threads: usize,
    /// Peak f32 FMA rate, GFLOP/s.
    pub fma_gflops: f64,
    /// `memcpy` bandwidth (read + write), GB/s.
    pub copy_gbs: f64,
    /// Its footprint (source + destination), bytes.
    pub copy_bytes: f64,
    /// Read-only bandwidth, GB/s.
    pub read_gbs: f64,
}

impl From<MachinePeak> for HostPeak {
    fn from(p: MachinePeak) -> Self {
        HostPeak {
            threads: p.threads,
            fma_gflops: p.fma_gflops,
            copy_gbs: p.copy_gbs,
            copy_bytes: 2.0 * p.buffer_bytes as f64,
            read_gbs: p.read_gbs,
        }
    }
}

/// One device's floors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floors {
    /// The large GEMM through the backend.
    pub gemm: GemmPoint,
    /// The copy ladder through the backend, increasing footprints.
    pub copy: Vec<CopyPoint>,
    /// Host probes (CPU devices only).
    pub host: Option<HostPeak>,
}

/// Which floor a case's time is bounded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Arithmetic: flops / FLOP rate.
    Compute,
    /// Memory: bytes / bandwidth.
    Memory,
}

impl Bound {
    /// `compute` or `memory`.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
        }
    }
}

impl Floors {
    /// Best FLOP rate seen, GFLOP/s: the large GEMM or the FMA probe.
    pub fn flop_rate(&self) -> f64 {
        let host = self.host.map_or(0.0, |h| h.fma_gflops);
        self.gemm.gflops.max(host)
    }

    /// Figure by figure, the better of two measurements of the same device (the
    /// faster GEMM, the faster copy at each ladder size, the better host probes).
    pub fn best(&self, other: &Floors) -> Floors {
        let gemm = if other.gemm.gflops > self.gemm.gflops {
            other.gemm
        } else {
            self.gemm
        };
        let copy = self
            .copy
            .iter()
            .map(|c| {
                other
                    .copy
                    .iter()
                    .find(|o| o.bytes == c.bytes && o.gbs > c.gbs)
                    .copied()
                    .unwrap_or(*c)
            })
            .collect();
        let host = match (self.host, other.host) {
            (Some(a), Some(b)) => Some(HostPeak {
                threads: a.threads.max(b.threads),
                fma_gflops: a.fma_gflops.max(b.fma_gflops),
                copy_gbs: a.copy_gbs.max(b.copy_gbs),
                copy_bytes: a.copy_bytes.min(b.copy_bytes),
                read_gbs: a.read_gbs.max(b.read_gbs),
            }),
            (a, b) => a.or(b),
        };
        Floors { gemm, copy, host }
    }

    /// Bandwidth at the top of the ladder (or the host probe, if better), GB/s.
    pub fn peak_bandwidth(&self) -> f64 {
        let top = self.copy.last().map_or(0.0, |c| c.gbs);
        top.max(self.host.map_or(0.0, |h| h.copy_gbs))
    }

    /// Bandwidth a case moving `bytes` is judged against (module docs), GB/s: the
    /// best copy seen at that footprint or a larger one (a copy that reached a rate
    /// over a larger working set shows the same rate is possible over a smaller one,
    /// so a ladder point depressed by noise does not lower the floor), the host
    /// `memcpy` probe included at its footprint; beyond the ladder, its top.
    pub fn bandwidth_for(&self, bytes: f64) -> f64 {
        let host = self
            .host
            .filter(|h| h.copy_bytes >= bytes)
            .map_or(0.0, |h| h.copy_gbs);
        let best = self
            .copy
            .iter()
            .filter(|c| c.bytes >= bytes)
            .map(|c| c.gbs)
            .fold(host, f64::max);
        if best > 0.0 {
            best
        } else {
            self.peak_bandwidth()
        }
    }

    /// Floor seconds of a case and what sets it.
    pub fn floor(&self, cost: &Cost) -> (f64, Bound) {
        let mem = cost.bytes / (self.bandwidth_for(cost.bytes) * 1e9);
        let comp = cost.flops / (self.flop_rate() * 1e9);
        if comp > mem {
            (comp, Bound::Compute)
        } else {
            (mem, Bound::Memory)
        }
    }
}

/// Measure the floors of `be` with `clock` (and the CPU host probes when `host_probes`).
/// `progress` gets one line per probe.
pub fn measure_floors<B: Backend<Elem = f32>>(
    be: &B,
    clock: &dyn DeviceClock,
    cfg: &FloorConfig,
    host_probes: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<Floors> {
    // Large GEMM: grow until a call takes long enough.
    let mut n = 256.min(cfg.max_gemm);
    let gemm = loop {
        let g = Gemm::new(n, n, n);
        let a = be.upload(&data(n * n, 11))?;
        let b = be.upload(&data(n * n, 12))?;
        let mut c = be.alloc(n * n)?;
        let t = measure(clock, &mut || be.gemm(&g, &a, &b, &mut c), &cfg.policy)?;
        let secs = t.median.as_secs_f64();
        if t.median >= cfg.gemm_target || n * 2 > cfg.max_gemm {
            break GemmPoint {
                n,
                secs,
                gflops: g.flops() / secs / 1e9,
            };
        }
        n *= 2;
    };
    progress(&format!(
        "floor: gemm {n}³ {:.1} GFLOP/s ({})",
        gemm.gflops,
        crate::report::fmt_secs(gemm.secs)
    ));

    // Copy ladder.
    let mut copy = Vec::new();
    let mut bytes = cfg.min_copy_bytes.max(8);
    while bytes <= cfg.max_copy_bytes {
        let len = bytes / 8; // f32 elements of each of the two buffers
        let src = be.upload(&data(len, 13))?;
        let mut dst = be.alloc(len)?;
        let t = measure(clock, &mut || be.copy(&src, &mut dst), &cfg.policy)?;
        let secs = t.median.as_secs_f64();
        let moved = (8 * len) as f64;
        copy.push(CopyPoint {
            bytes: moved,
            secs,
            gbs: moved / secs / 1e9,
        });
        bytes *= 2;
    }
    if let Some(top) = copy.last() {
        progress(&format!(
            "floor: copy {:.0} MiB {:.1} GB/s (ladder of {} sizes from {:.0} KiB)",
            top.bytes / (1 << 20) as f64,
            top.gbs,
            copy.len(),
            copy[0].bytes / 1024.0
        ));
    }

    let host = host_probes.then(|| {
        let p = if cfg.quick_host {
            MachinePeak::measure_quick()
        } else {
            MachinePeak::measure()
        };
        progress(&format!("floor: host probes: {p}"));
        HostPeak::from(p)
    });
    Ok(Floors { gemm, copy, host })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floors() -> Floors {
        Floors {
            gemm: GemmPoint {
                n: 1024,
                secs: 0.01,
                gflops: 200.0,
            },
            copy: vec![
                CopyPoint {
                    bytes: 1e6,
                    secs: 1e-5,
                    gbs: 100.0,
                },
                CopyPoint {
                    bytes: 1e9,
                    secs: 0.05,
                    gbs: 20.0,
                },
            ],
            host: None,
        }
    }

    #[test]
    fn bandwidth_follows_the_ladder() {
        let f = floors();
        assert_eq!(f.bandwidth_for(5e5), 100.0);
        assert_eq!(f.bandwidth_for(2e6), 20.0);
        assert_eq!(f.bandwidth_for(5e9), 20.0);
        // A noisy dip is covered by a larger footprint's better figure.
        let mut g = floors();
        g.copy[0].gbs = 10.0;
        assert_eq!(g.bandwidth_for(5e5), 20.0);
        g.host = Some(HostPeak {
            threads: 2,
            fma_gflops: 100.0,
            copy_gbs: 30.0,
            copy_bytes: 5e8,
            read_gbs: 30.0,
        });
        assert_eq!(g.bandwidth_for(5e5), 30.0);
        assert_eq!(g.bandwidth_for(8e8), 20.0);
    }

    #[test]
    fn best_keeps_the_faster_figures() {
        let a = floors();
        let mut b = floors();
        b.gemm.gflops = 300.0;
        b.copy[0].gbs = 50.0;
        b.copy[1].gbs = 25.0;
        let c = a.best(&b);
        assert_eq!(c.gemm.gflops, 300.0);
        assert_eq!(c.copy[0].gbs, 100.0);
        assert_eq!(c.copy[1].gbs, 25.0);
    }

    #[test]
    fn the_slower_floor_wins() {
        let f = floors();
        let (s, b) = f.floor(&Cost {
            flops: 2e9,
            bytes: 1e6,
        });
        assert_eq!(b, Bound::Compute);
        assert!((s - 0.01).abs() < 1e-12);
        let (s, b) = f.floor(&Cost {
            flops: 0.0,
            bytes: 2e9,
        });
        assert_eq!(b, Bound::Memory);
        assert!((s - 0.1).abs() < 1e-12);
    }
}
