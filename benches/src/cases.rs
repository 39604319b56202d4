//! The benchmarked kernels and shapes, shared by the criterion bench
//! (`benches/kernels.rs`) and the quick summary binary (`src/bin/summary.rs`), plus
//! the summary table: each kernel's median time and its fraction of the floor
//! measured in the same run (SPEC §9).

use crate::peak::MachinePeak;
use brain_core::{Backend, Gemm, Result};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// One benchmarked kernel call with its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// `Backend::gemm`.
    Gemm(Gemm),
    /// `Backend::layernorm_forward` on `x[rows, cols]`.
    LayerNormForward {
        /// Rows (tokens).
        rows: usize,
        /// Normalised dimension.
        cols: usize,
    },
    /// `Backend::layernorm_backward` on `x[rows, cols]`.
    LayerNormBackward {
        /// Rows (tokens).
        rows: usize,
        /// Normalised dimension.
        cols: usize,
    },
}

/// The work one call does, and so what its speed is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Compute kernels (GEMM): floating-point operations, plus the least bytes the
    /// call must move (read A and B once, write C). The floor is the roofline
    /// `max(flops / FMA peak, bytes / copy bandwidth)`; the rate is GFLOP/s.
    Flops {
        /// Floating-point operations (an FMA is 2).
        flops: u64,
        /// Least bytes moved.
        bytes: u64,
    },
    /// Memory-bound kernels: bytes moved. The floor is `bytes / copy bandwidth`; the
    /// rate is GB/s.
    Bytes(u64),
}

impl Work {
    /// The floor time in seconds on `peak`.
    pub fn floor_secs(&self, peak: &MachinePeak) -> f64 {
        match *self {
            Work::Flops { flops, bytes } => {
                (flops as f64 / (peak.fma_gflops * 1e9)).max(bytes as f64 / (peak.copy_gbs * 1e9))
            }
            Work::Bytes(bytes) => bytes as f64 / (peak.copy_gbs * 1e9),
        }
    }

    /// GFLOP/s or GB/s at `secs` per call.
    pub fn rate(&self, secs: f64) -> f64 {
        match *self {
            Work::Flops { flops, .. } => flops as f64 / secs / 1e9,
            Work::Bytes(bytes) => bytes as f64 / secs / 1e9,
        }
    }

    /// Unit of [`Work::rate`].
    pub fn unit(&self) -> &'static str {
        match self {
            Work::Flops { .. } => "GFLOP/s",
            Work::Bytes(_) => "GB/s",
        }
    }

    /// Whether the floor is set by memory rather than arithmetic on `peak`.
    pub fn memory_bound(&self, peak: &MachinePeak) -> bool {
        match *self {
            Work::Flops { flops, bytes } => {
                bytes as f64 / peak.copy_gbs > flops as f64 / peak.fma_gflops
            }
            Work::Bytes(_) => true,
        }
    }
}

const F32: u64 = 4;

impl Kernel {
    /// GEMM `m×k · k×n` with the given transposes.
    pub fn gemm(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Kernel::Gemm(Gemm::new(m, n, k).trans(trans_a, trans_b))
    }

    /// Short name, also the criterion function id: `gemm_nn`, `layernorm_fwd`, ….
    pub fn name(&self) -> String {
        match self {
            Kernel::Gemm(g) => {
                let t = |x: bool| if x { 't' } else { 'n' };
                format!("gemm_{}{}", t(g.trans_a), t(g.trans_b))
            }
            Kernel::LayerNormForward { .. } => "layernorm_fwd".into(),
            Kernel::LayerNormBackward { .. } => "layernorm_bwd".into(),
        }
    }

    /// Shape, also the criterion parameter: `m×n×k` for GEMM, `rows×cols` otherwise.
    pub fn shape(&self) -> String {
        match *self {
            Kernel::Gemm(g) => format!("{}x{}x{}", g.m, g.n, g.k),
            Kernel::LayerNormForward { rows, cols } | Kernel::LayerNormBackward { rows, cols } => {
                format!("{rows}x{cols}")
            }
        }
    }

    /// The work one call does. GEMM: 2·m·n·k flops; A, B read and C written (and
    /// read when beta ≠ 0) once. LayerNorm forward: read x, write y, read gamma and
    /// beta, write mean and rstd. Backward: read dy, x, gamma, mean, rstd, write dx,
    /// read-modify-write dgamma and dbeta.
    pub fn work(&self) -> Work {
        match *self {
            Kernel::Gemm(g) => {
                let (m, n, k, b) = (g.m as u64, g.n as u64, g.k as u64, g.batch as u64);
                let c_passes = if g.beta == 0.0 { 1 } else { 2 };
                Work::Flops {
                    flops: g.flops() as u64,
                    bytes: F32 * b * (m * k + k * n + c_passes * m * n),
                }
            }
            Kernel::LayerNormForward { rows, cols } => {
                let (r, c) = (rows as u64, cols as u64);
                Work::Bytes(F32 * (2 * r * c + 2 * c + 2 * r))
            }
            Kernel::LayerNormBackward { rows, cols } => {
                let (r, c) = (rows as u64, cols as u64);
                Work::Bytes(F32 * (3 * r * c + c + 2 * r + 4 * c))
            }
        }
    }
}

/// Rows of a Linear-like skinny GEMM: 16 tokens.
pub const SKINNY_ROWS: usize = 16;
/// Features of the skinny GEMM (in = out).
pub const SKINNY_FEATURES: usize = 4096;
/// LayerNorm width (ViT-B/CLIP hidden size).
pub const LN_COLS: usize = 768;

/// Shapes run on the fast CPU backend.
pub fn cpu_cases() -> Vec<Kernel> {
    let (r, f) = (SKINNY_ROWS, SKINNY_FEATURES);
    let mut v = vec![
        Kernel::gemm(256, 256, 256, false, false),
        Kernel::gemm(1024, 1024, 1024, false, false),
        // x[16,4096]·W: W stored k×n (NN) and PyTorch Linear's n×k (NT).
        Kernel::gemm(r, f, f, false, false),
        Kernel::gemm(r, f, f, false, true),
    ];
    for rows in [4096, 16 * 257] {
        v.push(Kernel::LayerNormForward {
            rows,
            cols: LN_COLS,
        });
        v.push(Kernel::LayerNormBackward {
            rows,
            cols: LN_COLS,
        });
    }
    v
}

/// Small shapes for the scalar reference backend (it is slow).
pub fn reference_cases() -> Vec<Kernel> {
    vec![
        Kernel::gemm(256, 256, 256, false, false),
        Kernel::LayerNormForward {
            rows: 256,
            cols: LN_COLS,
        },
        Kernel::LayerNormBackward {
            rows: 256,
            cols: LN_COLS,
        },
    ]
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32) * (2.0 / 16_777_216.0) - 1.0
        })
        .collect()
}

enum Bufs<T> {
    Gemm {
        a: T,
        b: T,
        c: T,
    },
    LnFwd {
        x: T,
        gamma: T,
        beta: T,
        y: T,
        mean: T,
        rstd: T,
    },
    LnBwd {
        dy: T,
        x: T,
        gamma: T,
        mean: T,
        rstd: T,
        dx: T,
        dgamma: T,
        dbeta: T,
    },
}

const LN_EPS: f64 = 1e-5;

/// A kernel with its device buffers allocated and filled, ready to be called
/// repeatedly (buffers are allocated here, outside any timed region).
pub struct Prepared<'a, B: Backend<Elem = f32>> {
    be: &'a B,
    kernel: Kernel,
    bufs: Bufs<B::Buffer>,
}

impl<'a, B: Backend<Elem = f32>> Prepared<'a, B> {
    /// Allocate and fill the buffers of `kernel` on `be`.
    pub fn new(be: &'a B, kernel: Kernel) -> Result<Self> {
        let bufs = match kernel {
            Kernel::Gemm(g) => Bufs::Gemm {
                a: be.upload(&data(g.m * g.k, 1))?,
                b: be.upload(&data(g.k * g.n, 2))?,
                c: be.alloc(g.m * g.n)?,
            },
            Kernel::LayerNormForward { rows, cols } => Bufs::LnFwd {
                x: be.upload(&data(rows * cols, 3))?,
                gamma: be.upload(&data(cols, 4))?,
                beta: be.upload(&data(cols, 5))?,
                y: be.alloc(rows * cols)?,
                mean: be.alloc(rows)?,
                rstd: be.alloc(rows)?,
            },
            Kernel::LayerNormBackward { rows, cols } => {
                let x = be.upload(&data(rows * cols, 3))?;
                let gamma = be.upload(&data(cols, 4))?;
                let beta = be.upload(&data(cols, 5))?;
                let mut y = be.alloc(rows * cols)?;
                let mut mean = be.alloc(rows)?;
                let mut rstd = be.alloc(rows)?;
                be.layernorm_forward(
                    &x, &gamma, &beta, &mut y, &mut mean, &mut rstd, rows, cols, LN_EPS,
                )?;
                Bufs::LnBwd {
                    dy: be.upload(&data(rows * cols, 6))?,
                    x,
                    gamma,
                    mean,
                    rstd,
                    dx: be.alloc(rows * cols)?,
                    dgamma: be.alloc(cols)?,
                    dbeta: be.alloc(cols)?,
                }
            }
        };
        be.sync()?;
        Ok(Prepared { be, kernel, bufs })
    }

    /// The kernel.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// One call of the kernel, then `sync` (so asynchronous backends are timed whole).
    pub fn run(&mut self) -> Result<()> {
        let be = self.be;
        match (&self.kernel, &mut self.bufs) {
            (Kernel::Gemm(g), Bufs::Gemm { a, b, c }) => be.gemm(g, a, b, c)?,
            (
                &Kernel::LayerNormForward { rows, cols },
                Bufs::LnFwd {
                    x,
                    gamma,
                    beta,
                    y,
                    mean,
                    rstd,
                },
            ) => be.layernorm_forward(x, gamma, beta, y, mean, rstd, rows, cols, LN_EPS)?,
            (
                &Kernel::LayerNormBackward { rows, cols },
                Bufs::LnBwd {
                    dy,
                    x,
                    gamma,
                    mean,
                    rstd,
                    dx,
                    dgamma,
                    dbeta,
                },
            ) => be.layernorm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols)?,
            _ => unreachable!("buffers always match their kernel"),
        }
        be.sync()
    }
}

/// Median wall time of `f` over samples of one call each: after a warm-up, samples
/// are taken until `budget` is spent, at least `min_samples` and at most
/// `max_samples` of them.
pub fn median_time<F: FnMut()>(
    mut f: F,
    budget: Duration,
    min_samples: usize,
    max_samples: usize,
) -> Duration {
    let warm = Instant::now();
    for _ in 0..3 {
        f();
        if warm.elapsed() > budget / 10 {
            break;
        }
    }
    let start = Instant::now();
    let mut samples = Vec::with_capacity(max_samples);
    while samples.len() < min_samples.max(1)
        || (samples.len() < max_samples && start.elapsed() < budget)
    {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// One line of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Backend label.
    pub backend: String,
    /// The kernel.
    pub kernel: Kernel,
    /// Median time of one call.
    pub median: Duration,
}

impl Row {
    /// GFLOP/s (GEMM) or GB/s (memory-bound kernels), decimal units.
    pub fn rate(&self) -> f64 {
        self.kernel.work().rate(self.median.as_secs_f64())
    }

    /// Floor time over median time (see [`Work::floor_secs`]); for a compute-bound
    /// GEMM this is GFLOP/s ÷ FMA peak, for LayerNorm GB/s ÷ copy bandwidth.
    pub fn fraction(&self, peak: &MachinePeak) -> f64 {
        self.kernel.work().floor_secs(peak) / self.median.as_secs_f64()
    }
}

/// Time every case on `be` (median of up to 200 calls within ~1 s each).
pub fn measure_rows<B: Backend<Elem = f32>>(
    be: &B,
    label: &str,
    cases: &[Kernel],
) -> Result<Vec<Row>> {
    let mut rows = Vec::with_capacity(cases.len());
    for &kernel in cases {
        let mut prep = Prepared::new(be, kernel)?;
        prep.run()?; // surface errors before timing
        let median = median_time(
            || prep.run().expect("kernel failed"),
            Duration::from_secs(1),
            5,
            200,
        );
        rows.push(Row {
            backend: label.to_string(),
            kernel,
            median,
        });
        black_box(&prep);
    }
    Ok(rows)
}

/// The summary: every CPU case and every reference case, timed.
pub fn summary() -> Result<Vec<Row>> {
    let cpu = crate::cpu_backend();
    let mut rows = measure_rows(&cpu, "cpu", &cpu_cases())?;
    let reference = brain_core::reference::ReferenceBackend::<f32>::new();
    rows.extend(measure_rows(
        &reference,
        "reference-f32",
        &reference_cases(),
    )?);
    Ok(rows)
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// The summary as a Markdown table, judged against `peak`.
pub fn markdown_table(rows: &[Row], peak: &MachinePeak) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| backend | kernel | shape | median | rate | fraction of floor | floor set by |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|");
    for r in rows {
        let work = r.kernel.work();
        let floor = if work.memory_bound(peak) {
            "memory"
        } else {
            "FMA"
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} {} | {:.1}% | {} |",
            r.backend,
            r.kernel.name(),
            r.kernel.shape(),
            fmt_duration(r.median),
            r.rate(),
            work.unit(),
            100.0 * r.fraction(peak),
            floor
        );
    }
    out
}
