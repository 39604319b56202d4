//! # backend-cpu
//!
//! The fast CPU implementation of [`brain_core::Backend`]: f32 kernels, multi-threaded
//! with a dedicated rayon pool, GEMM through the `gemm` crate (wrapped in one file,
//! `src/gemm.rs`, so it can be swapped).
//!
//! Parallel strategy, per kernel family:
//! - GEMM / Linear: the `gemm` crate (parallel inside), few-row products through
//!   run-time-detected AVX2/FMA kernels, batches of small matrices one per task;
//!   Linear's bias is broadcast into `y` and accumulated onto by the GEMM.
//! - LayerNorm: rows; GroupNorm: the N·G groups (and channels inside a group when
//!   groups are fewer than threads); statistics in f64, two-pass; dγ/dβ from per-task
//!   f64 partials reduced once.
//! - Element-wise, dropout and Philox fills: chunks (Philox chunks start on 32-word
//!   boundaries, so streams are bit-identical to the reference at any thread count).
//! - Upsampling: N·C planes; reductions: rows, or chunks of a row when rows are few;
//!   AdamW: one flat work list over chunks of all tensors, global norm in f64.
//!
//! Every kernel validates its arguments with the same `brain_core::check` calls as
//! the reference backend, so a bad call returns the same [`BrainError`] and never
//! panics. Small problems run on the caller's thread (waking the pool would cost more
//! than the work); larger ones run inside the pool, parallel over rows, channels,
//! planes or chunks, with parameter-gradient sums reduced from per-task partials.
//!
//! ```
//! use backend_cpu::CpuBackend;
//! use brain_core::Backend;
//!
//! # fn main() -> Result<(), brain_core::BrainError> {
//! let be = CpuBackend::with_threads(2)?;
//! assert_eq!(be.name(), "cpu (2 threads)");
//! // y[2,3] = x[2,4] · W[3,4]ᵀ + b[3]
//! let x = be.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])?;
//! let w = be.upload(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])?;
//! let b = be.upload(&[0.5, 0.5, 0.5])?;
//! let mut y = be.alloc(6)?;
//! be.linear_forward(&x, &w, Some(&b), &mut y, 2, 4, 3)?;
//! assert_eq!(be.download_vec(&y)?, vec![1.5, 2.5, 7.5, 5.5, 6.5, 15.5]);
//!
//! // Wrong lengths are an error, not a panic.
//! assert!(be.linear_forward(&x, &w, Some(&b), &mut y, 2, 4, 2).is_err());
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
// Kernel functions take the Backend trait's arguments one for one; closures over
// zipped parallel iterators spell their tuple types out.
#![allow(clippy::too_many_arguments, clippy::type_complexity)]

mod adamw;
mod cka;
mod clip;
mod contrastive;
mod diffusion;
mod elementwise;
mod gemm;
mod mse;
mod norm;
mod par;
mod random;
mod reduce;
mod simd;
mod sims;
mod skinny;
mod sobel;
mod upsample;

use brain_core::check;
use brain_core::{
    Activation, AdamW, AdamWTensor, Backend, BrainError, ContrastiveLoss, Dropout, Gemm,
    GroupNormShape, HsicEstimator, ImageShape, Result, RowReduce, SchedulerStep, SobelLossForm,
    UpsampleMode, UpsampleShape,
};
use par::{Exec, SEQ_COMPUTE, SEQ_MEM};

/// A host buffer of f32 owned by the [`CpuBackend`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuBuffer(Vec<f32>);

impl CpuBuffer {
    /// The elements.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.0
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The underlying vector.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }
}

impl From<Vec<f32>> for CpuBuffer {
    fn from(v: Vec<f32>) -> Self {
        CpuBuffer(v)
    }
}

impl From<CpuBuffer> for Vec<f32> {
    fn from(b: CpuBuffer) -> Self {
        b.0
    }
}

impl AsRef<[f32]> for CpuBuffer {
    fn as_ref(&self) -> &[f32] {
        &self.0
    }
}

impl AsMut<[f32]> for CpuBuffer {
    fn as_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

/// The multi-threaded f32 CPU backend. Kernels run synchronously: when a call
/// returns, its results are in the buffers.
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// Below this m·n·k·batch a GEMM runs on the caller's thread: waking the pool costs
/// ~10 µs, about a 96³ product on one core (measured: 64³ ran 3× slower through the
/// pool than on the caller's thread; 128³ ran 1.5× faster with 2 threads).
const SEQ_GEMM: usize = 1 << 20;
/// Normalisation kernels and AdamW: a few flops per element plus f64 sums.
const SEQ_NORM: usize = 1 << 15;

impl CpuBackend {
    /// A backend with one pool thread per available core.
    ///
    /// # Panics
    /// If the operating system refuses to start the pool's threads (use
    /// [`CpuBackend::with_threads`] to handle that as an error).
    pub fn new() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        match Self::with_threads(n) {
            Ok(b) => b,
            Err(e) => panic!("cannot start the CPU thread pool: {e}"),
        }
    }

    /// A backend whose pool has `threads` threads (at least 1).
    pub fn with_threads(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(check::invalid(
                "CpuBackend::with_threads",
                "the pool needs at least one thread".into(),
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("brain-cpu-{i}"))
            .build()
            .map_err(|e| BrainError::Backend(format!("cannot start the CPU thread pool: {e}")))?;
        Ok(CpuBackend { pool, threads })
    }

    /// Threads of the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Run `f` inside the pool when `work ≥ seq_below` (and there is more than one
    /// thread), else on the caller's thread with parallelism off.
    fn exec<R: Send>(&self, work: usize, seq_below: usize, f: impl FnOnce(Exec) -> R + Send) -> R {
        if self.threads > 1 && work >= seq_below {
            let threads = self.threads;
            self.pool.install(move || f(Exec { par: true, threads }))
        } else {
            f(Exec::SEQ)
        }
    }
}

fn same_len(op: &'static str, arg: &'static str, got: usize, expected: usize) -> Result<()> {
    check::len(op, arg, got, expected)
}

#[allow(clippy::too_many_arguments)]
impl Backend for CpuBackend {
    type Elem = f32;
    type Buffer = CpuBuffer;

    fn name(&self) -> String {
        if self.threads == 1 {
            "cpu (1 thread)".into()
        } else {
            format!("cpu ({} threads)", self.threads)
        }
    }

    // ---------------------------------------------------------------- memory

    fn alloc(&self, len: usize) -> Result<CpuBuffer> {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| BrainError::OutOfMemory {
                bytes: len.saturating_mul(std::mem::size_of::<f32>()),
            })?;
        v.resize(len, 0.0);
        Ok(CpuBuffer(v))
    }
    fn upload(&self, data: &[f32]) -> Result<CpuBuffer> {
        let mut v = Vec::new();
        v.try_reserve_exact(data.len())
            .map_err(|_| BrainError::OutOfMemory {
                bytes: std::mem::size_of_val(data),
            })?;
        v.extend_from_slice(data);
        Ok(CpuBuffer(v))
    }
    fn write(&self, dst: &mut CpuBuffer, data: &[f32]) -> Result<()> {
        same_len("write", "data", data.len(), dst.len())?;
        self.exec(data.len(), SEQ_MEM, |ex| {
            elementwise::copy(ex, &mut dst.0, data)
        });
        Ok(())
    }
    fn download(&self, src: &CpuBuffer, dst: &mut [f32]) -> Result<()> {
        same_len("download", "dst", dst.len(), src.len())?;
        self.exec(dst.len(), SEQ_MEM, |ex| elementwise::copy(ex, dst, &src.0));
        Ok(())
    }
    fn len(&self, buf: &CpuBuffer) -> usize {
        buf.len()
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn copy(&self, src: &CpuBuffer, dst: &mut CpuBuffer) -> Result<()> {
        same_len("copy", "dst", dst.len(), src.len())?;
        self.exec(src.len(), SEQ_MEM, |ex| {
            elementwise::copy(ex, &mut dst.0, &src.0)
        });
        Ok(())
    }
    fn fill(&self, dst: &mut CpuBuffer, value: f64) -> Result<()> {
        let v = value as f32;
        self.exec(dst.len(), SEQ_MEM, |ex| {
            elementwise::fill(ex, &mut dst.0, v)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- GEMM

    fn gemm(&self, g: &Gemm, a: &CpuBuffer, b: &CpuBuffer, c: &mut CpuBuffer) -> Result<()> {
        check::gemm(g, a.len(), b.len(), c.len())?;
        let work =
            g.m.saturating_mul(g.n)
                .saturating_mul(g.k)
                .saturating_mul(g.batch);
        self.exec(work, SEQ_GEMM, |ex| {
            gemm::gemm_batched(ex, g, &a.0, &b.0, &mut c.0)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- Linear

    fn linear_forward(
        &self,
        x: &CpuBuffer,
        w: &CpuBuffer,
        b: Option<&CpuBuffer>,
        y: &mut CpuBuffer,
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Result<()> {
        check::linear(
            "linear_forward",
            x.len(),
            w.len(),
            b.map(|b| b.len()),
            y.len(),
            rows,
            in_f,
            out_f,
        )?;
        let work = rows.saturating_mul(in_f).saturating_mul(out_f);
        self.exec(work.max(y.len()), SEQ_GEMM, |ex| {
            // y = x·Wᵀ (+ the bias broadcast into y first, then accumulated onto).
            let beta = match b {
                Some(b) if out_f > 0 => {
                    let rows_of = |r: &mut [f32]| r.copy_from_slice(&b.0);
                    if ex.par {
                        use rayon::prelude::*;
                        y.0.par_chunks_exact_mut(out_f)
                            .with_min_len(Exec::min_items(out_f, par::MIN_CHUNK_MEM))
                            .for_each(rows_of);
                    } else {
                        y.0.chunks_exact_mut(out_f).for_each(rows_of);
                    }
                    1.0
                }
                _ => 0.0,
            };
            gemm::gemm(
                ex,
                rows,
                out_f,
                in_f,
                1.0,
                gemm::Mat::rows(&x.0, in_f),
                gemm::Mat::transposed(&w.0, in_f),
                beta,
                &mut y.0,
            );
        });
        Ok(())
    }

    fn linear_backward(
        &self,
        dy: &CpuBuffer,
        x: &CpuBuffer,
        w: &CpuBuffer,
        dx: Option<&mut CpuBuffer>,
        dw: Option<&mut CpuBuffer>,
        db: Option<&mut CpuBuffer>,
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Result<()> {
        const OP: &str = "linear_backward";
        check::linear(
            OP,
            x.len(),
            w.len(),
            db.as_ref().map(|b| b.len()),
            dy.len(),
            rows,
            in_f,
            out_f,
        )?;
        if let Some(dx) = &dx {
            same_len(OP, "dx", dx.len(), x.len())?;
        }
        if let Some(dw) = &dw {
            same_len(OP, "dweight", dw.len(), w.len())?;
        }
        let work = rows.saturating_mul(in_f).saturating_mul(out_f);
        self.exec(work.max(dy.len()), SEQ_GEMM, |ex| {
            if let Some(dx) = dx {
                // dx[rows,in] = dy[rows,out]·W[out,in]
                gemm::gemm(
                    ex,
                    rows,
                    in_f,
                    out_f,
                    1.0,
                    gemm::Mat::rows(&dy.0, out_f),
                    gemm::Mat::rows(&w.0, in_f),
                    0.0,
                    &mut dx.0,
                );
            }
            if let Some(dw) = dw {
                // dW[out,in] += dyᵀ·x
                gemm::gemm(
                    ex,
                    out_f,
                    in_f,
                    rows,
                    1.0,
                    gemm::Mat::transposed(&dy.0, out_f),
                    gemm::Mat::rows(&x.0, in_f),
                    1.0,
                    &mut dw.0,
                );
            }
            if let Some(db) = db {
                let sums = par::column_sums(ex, &dy.0, rows, out_f);
                for (d, s) in db.0.iter_mut().zip(sums) {
                    *d = (*d as f64 + s) as f32;
                }
            }
        });
        Ok(())
    }

    // ---------------------------------------------------------------- bias

    fn bias_add(
        &self,
        y: &mut CpuBuffer,
        b: &CpuBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_add", y.len(), b.len(), outer, channels, inner)?;
        self.exec(y.len(), SEQ_MEM, |ex| {
            elementwise::bias_add(ex, &mut y.0, &b.0, channels, inner)
        });
        Ok(())
    }
    fn bias_backward(
        &self,
        dy: &CpuBuffer,
        db: &mut CpuBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_backward", dy.len(), db.len(), outer, channels, inner)?;
        self.exec(dy.len(), SEQ_MEM, |ex| {
            elementwise::bias_backward(ex, &mut db.0, &dy.0, outer, channels, inner)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- activations

    fn activation_forward(&self, act: Activation, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        same_len("activation_forward", "y", y.len(), x.len())?;
        self.exec(x.len(), SEQ_COMPUTE, |ex| {
            elementwise::activation_forward(ex, act, &mut y.0, &x.0)
        });
        Ok(())
    }
    fn activation_backward(
        &self,
        act: Activation,
        x: &CpuBuffer,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        same_len("activation_backward", "dy", dy.len(), x.len())?;
        same_len("activation_backward", "dx", dx.len(), x.len())?;
        self.exec(x.len(), SEQ_COMPUTE, |ex| {
            elementwise::activation_backward(ex, act, &mut dx.0, &x.0, &dy.0)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- normalisation

    fn layernorm_forward(
        &self,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        beta: &CpuBuffer,
        y: &mut CpuBuffer,
        mean: &mut CpuBuffer,
        rstd: &mut CpuBuffer,
        rows: usize,
        cols: usize,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "layernorm_forward";
        check::layernorm(
            OP,
            x.len(),
            gamma.len(),
            beta.len(),
            (mean.len(), rstd.len()),
            rows,
            cols,
        )?;
        same_len(OP, "y", y.len(), x.len())?;
        // eps rounded to f32 once, as every kernel's scalars.
        let eps = eps as f32 as f64;
        self.exec(x.len(), SEQ_NORM, |ex| {
            norm::layernorm_forward(
                ex,
                &mut y.0,
                &mut mean.0,
                &mut rstd.0,
                &x.0,
                &gamma.0,
                &beta.0,
                cols,
                eps,
            )
        });
        Ok(())
    }
    fn layernorm_backward(
        &self,
        dy: &CpuBuffer,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        mean: &CpuBuffer,
        rstd: &CpuBuffer,
        dx: &mut CpuBuffer,
        dgamma: &mut CpuBuffer,
        dbeta: &mut CpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "layernorm_backward";
        check::layernorm(
            OP,
            x.len(),
            dgamma.len(),
            dbeta.len(),
            (mean.len(), rstd.len()),
            rows,
            cols,
        )?;
        same_len(OP, "gamma", gamma.len(), cols)?;
        same_len(OP, "dy", dy.len(), x.len())?;
        same_len(OP, "dx", dx.len(), x.len())?;
        self.exec(x.len(), SEQ_NORM, |ex| {
            norm::layernorm_backward(
                ex,
                &mut dx.0,
                &mut dgamma.0,
                &mut dbeta.0,
                &dy.0,
                &x.0,
                &gamma.0,
                &mean.0,
                &rstd.0,
                cols,
            )
        });
        Ok(())
    }

    fn groupnorm_forward(
        &self,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        beta: &CpuBuffer,
        y: &mut CpuBuffer,
        mean: &mut CpuBuffer,
        rstd: &mut CpuBuffer,
        s: &GroupNormShape,
        eps: f64,
    ) -> Result<()> {
        const OP: &str = "groupnorm_forward";
        check::groupnorm(
            OP,
            x.len(),
            gamma.len(),
            beta.len(),
            (mean.len(), rstd.len()),
            s,
        )?;
        same_len(OP, "y", y.len(), x.len())?;
        let eps = eps as f32 as f64;
        self.exec(x.len(), SEQ_NORM, |ex| {
            norm::groupnorm_forward(
                ex,
                &mut y.0,
                &mut mean.0,
                &mut rstd.0,
                &x.0,
                &gamma.0,
                &beta.0,
                s,
                eps,
            )
        });
        Ok(())
    }
    fn groupnorm_backward(
        &self,
        dy: &CpuBuffer,
        x: &CpuBuffer,
        gamma: &CpuBuffer,
        mean: &CpuBuffer,
        rstd: &CpuBuffer,
        dx: &mut CpuBuffer,
        dgamma: &mut CpuBuffer,
        dbeta: &mut CpuBuffer,
        s: &GroupNormShape,
    ) -> Result<()> {
        const OP: &str = "groupnorm_backward";
        check::groupnorm(
            OP,
            x.len(),
            dgamma.len(),
            dbeta.len(),
            (mean.len(), rstd.len()),
            s,
        )?;
        same_len(OP, "gamma", gamma.len(), s.channels)?;
        same_len(OP, "dy", dy.len(), x.len())?;
        same_len(OP, "dx", dx.len(), x.len())?;
        self.exec(x.len(), SEQ_NORM, |ex| {
            norm::groupnorm_backward(
                ex,
                &mut dx.0,
                &mut dgamma.0,
                &mut dbeta.0,
                &dy.0,
                &x.0,
                &gamma.0,
                &mean.0,
                &rstd.0,
                s,
            )
        });
        Ok(())
    }

    // ---------------------------------------------------------------- dropout

    fn dropout_forward(&self, d: &Dropout, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        check::dropout("dropout_forward", d)?;
        same_len("dropout_forward", "y", y.len(), x.len())?;
        self.exec(x.len(), SEQ_COMPUTE, |ex| {
            random::dropout(ex, d, &mut y.0, &x.0)
        });
        Ok(())
    }
    fn dropout_backward(&self, d: &Dropout, dy: &CpuBuffer, dx: &mut CpuBuffer) -> Result<()> {
        check::dropout("dropout_backward", d)?;
        same_len("dropout_backward", "dx", dx.len(), dy.len())?;
        self.exec(dy.len(), SEQ_COMPUTE, |ex| {
            random::dropout(ex, d, &mut dx.0, &dy.0)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- upsampling

    fn upsample_forward(
        &self,
        mode: UpsampleMode,
        s: &UpsampleShape,
        x: &CpuBuffer,
        y: &mut CpuBuffer,
    ) -> Result<()> {
        check::upsample("upsample_forward", x.len(), y.len(), s)?;
        self.exec(y.len(), SEQ_MEM / 2, |ex| match mode {
            UpsampleMode::Nearest => upsample::nearest_forward(ex, &mut y.0, &x.0, s),
            UpsampleMode::Bilinear => upsample::bilinear_forward(ex, &mut y.0, &x.0, s),
        });
        Ok(())
    }
    fn upsample_backward(
        &self,
        mode: UpsampleMode,
        s: &UpsampleShape,
        dy: &CpuBuffer,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        check::upsample("upsample_backward", dx.len(), dy.len(), s)?;
        self.exec(dy.len(), SEQ_MEM / 2, |ex| match mode {
            UpsampleMode::Nearest => upsample::nearest_backward(ex, &mut dx.0, &dy.0, s),
            UpsampleMode::Bilinear => upsample::bilinear_backward(ex, &mut dx.0, &dy.0, s),
        });
        Ok(())
    }

    // ---------------------------------------------------------------- element-wise

    fn add(&self, a: &CpuBuffer, b: &CpuBuffer, out: &mut CpuBuffer) -> Result<()> {
        same_len("add", "b", b.len(), a.len())?;
        same_len("add", "out", out.len(), a.len())?;
        self.exec(a.len(), SEQ_MEM, |ex| {
            elementwise::add(ex, &mut out.0, &a.0, &b.0)
        });
        Ok(())
    }
    fn scale(&self, x: &mut CpuBuffer, alpha: f64) -> Result<()> {
        let alpha = alpha as f32;
        self.exec(x.len(), SEQ_MEM, |ex| {
            elementwise::scale(ex, &mut x.0, alpha)
        });
        Ok(())
    }
    fn axpy(&self, alpha: f64, x: &CpuBuffer, y: &mut CpuBuffer) -> Result<()> {
        same_len("axpy", "y", y.len(), x.len())?;
        let alpha = alpha as f32;
        self.exec(x.len(), SEQ_MEM, |ex| {
            elementwise::axpy(ex, &mut y.0, alpha, &x.0)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- reductions

    fn reduce_rows(
        &self,
        op: RowReduce,
        x: &CpuBuffer,
        out: &mut CpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        check::reduce_rows("reduce_rows", x.len(), out.len(), rows, cols)?;
        let seq_below = if op == RowReduce::LogSumExp {
            SEQ_COMPUTE
        } else {
            SEQ_MEM
        };
        self.exec(x.len(), seq_below, |ex| {
            reduce::reduce_rows(ex, op, &mut out.0, &x.0, rows, cols)
        });
        Ok(())
    }

    // ---------------------------------------------------------------- optimizer

    fn adamw_step(
        &self,
        cfg: &AdamW,
        tensors: &mut [AdamWTensor<'_, Self>],
        grad_norm: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        const OP: &str = "adamw_step";
        check::adamw(cfg)?;
        for t in tensors.iter() {
            same_len(OP, "grad", t.grad.len(), t.param.len())?;
            same_len(OP, "exp_avg", t.exp_avg.len(), t.param.len())?;
            same_len(OP, "exp_avg_sq", t.exp_avg_sq.len(), t.param.len())?;
        }
        if let Some(n) = &grad_norm {
            same_len(OP, "grad_norm", n.len(), 1)?;
        }
        let total: usize = tensors.iter().map(|t| t.param.len()).sum();
        let slices: Vec<adamw::Slices<'_>> = tensors
            .iter_mut()
            .map(|t| {
                (
                    t.param.as_mut_slice(),
                    t.grad.as_slice(),
                    t.exp_avg.as_mut_slice(),
                    t.exp_avg_sq.as_mut_slice(),
                )
            })
            .collect();
        let norm = self.exec(total, SEQ_NORM, |ex| adamw::step(ex, cfg, slices));
        if let Some(n) = grad_norm {
            n.0[0] = norm;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- randomness

    fn fill_uniform(&self, out: &mut CpuBuffer, seed: u64, offset: u64) -> Result<()> {
        self.exec(out.len(), SEQ_COMPUTE, |ex| {
            random::fill_uniform(ex, &mut out.0, seed, offset)
        });
        Ok(())
    }
    fn fill_normal(
        &self,
        out: &mut CpuBuffer,
        seed: u64,
        offset: u64,
        mean: f64,
        std: f64,
    ) -> Result<()> {
        let (mean, std) = (mean as f32, std as f32);
        self.exec(out.len(), SEQ_COMPUTE / 4, |ex| {
            random::fill_normal(ex, &mut out.0, seed, offset, mean, std)
        });
        Ok(())
    }
    fn philox_bits(&self, out: &mut CpuBuffer, seed: u64, offset: u64) -> Result<()> {
        if out.len() % 2 != 0 {
            return Err(check::invalid(
                "philox_bits",
                format!(
                    "output length {} must be even (two halves per word)",
                    out.len()
                ),
            ));
        }
        self.exec(out.len(), SEQ_COMPUTE, |ex| {
            random::philox_bits(ex, &mut out.0, seed, offset)
        });
        Ok(())
    }

    fn mse_forward(&self, a: &CpuBuffer, b: &CpuBuffer, loss: &mut CpuBuffer) -> Result<()> {
        mse::mse_forward(self, a, b, loss)
    }
    fn mse_backward(
        &self,
        a: &CpuBuffer,
        b: &CpuBuffer,
        scale: f64,
        da: Option<&mut CpuBuffer>,
        db: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        mse::mse_backward(self, a, b, scale, da, db)
    }
    fn cka_grams_forward(
        &self,
        k: &CpuBuffer,
        l: &CpuBuffer,
        n: usize,
        estimator: HsicEstimator,
        out: &mut CpuBuffer,
    ) -> Result<()> {
        cka::cka_grams_forward(self, k, l, n, estimator, out)
    }
    fn cka_grams_backward(
        &self,
        k: &CpuBuffer,
        l: &CpuBuffer,
        n: usize,
        estimator: HsicEstimator,
        scale: f64,
        dk: Option<&mut CpuBuffer>,
        dl: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        cka::cka_grams_backward(self, k, l, n, estimator, scale, dk, dl)
    }
    fn sims_forward(
        &self,
        a: &CpuBuffer,
        b: &CpuBuffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        loss: &mut CpuBuffer,
    ) -> Result<()> {
        sims::sims_forward(self, a, b, batch, tokens, dim, loss)
    }
    fn sims_backward(
        &self,
        a: &CpuBuffer,
        b: &CpuBuffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        scale: f64,
        da: Option<&mut CpuBuffer>,
        db: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        sims::sims_backward(self, a, b, batch, tokens, dim, scale, da, db)
    }
    fn l2_normalize_rows_forward(
        &self,
        x: &CpuBuffer,
        y: &mut CpuBuffer,
        norms: &mut CpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        contrastive::l2_normalize_rows_forward(self, x, y, norms, rows, cols)
    }
    fn l2_normalize_rows_backward(
        &self,
        dy: &CpuBuffer,
        x: &CpuBuffer,
        norms: &CpuBuffer,
        dx: &mut CpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        contrastive::l2_normalize_rows_backward(self, dy, x, norms, dx, rows, cols)
    }
    fn contrastive_forward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &CpuBuffer,
        logits_tt: Option<&CpuBuffer>,
        n: usize,
        loss: &mut CpuBuffer,
    ) -> Result<()> {
        contrastive::contrastive_forward(self, kind, logits_pt, logits_tt, n, loss)
    }
    fn contrastive_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &CpuBuffer,
        logits_tt: Option<&CpuBuffer>,
        n: usize,
        scale: f64,
        dlogits_pt: &mut CpuBuffer,
        dlogits_tt: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        contrastive::contrastive_backward(
            self, kind, logits_pt, logits_tt, n, scale, dlogits_pt, dlogits_tt,
        )
    }
    fn clip_logits_forward(
        &self,
        kind: ContrastiveLoss,
        g_pt: &CpuBuffer,
        g_tt: Option<&CpuBuffer>,
        p_sq: &CpuBuffer,
        t_sq: &CpuBuffer,
        n: usize,
        temperature: f64,
        logits_pt: &mut CpuBuffer,
        logits_tt: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        // n×n work: the reference kernel on the buffers' slices, on this thread.
        brain_core::reference::contrastive::clip_logits_forward_checked(
            kind,
            g_pt.as_slice(),
            g_tt.map(CpuBuffer::as_slice),
            p_sq.as_slice(),
            t_sq.as_slice(),
            n,
            temperature,
            logits_pt.as_mut_slice(),
            logits_tt.map(CpuBuffer::as_mut_slice),
        )
    }
    fn clip_logits_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &CpuBuffer,
        logits_tt: Option<&CpuBuffer>,
        dlogits_pt: &CpuBuffer,
        dlogits_tt: Option<&CpuBuffer>,
        p_sq: &CpuBuffer,
        t_sq: &CpuBuffer,
        n: usize,
        temperature: f64,
        w_pt: &mut CpuBuffer,
        d_p: Option<&mut CpuBuffer>,
        w_tt: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        brain_core::reference::contrastive::clip_logits_backward_checked(
            kind,
            logits_pt.as_slice(),
            logits_tt.map(CpuBuffer::as_slice),
            dlogits_pt.as_slice(),
            dlogits_tt.map(CpuBuffer::as_slice),
            p_sq.as_slice(),
            t_sq.as_slice(),
            n,
            temperature,
            w_pt.as_mut_slice(),
            d_p.map(CpuBuffer::as_mut_slice),
            w_tt.map(CpuBuffer::as_mut_slice),
        )
    }
    fn clip_grams_forward(
        &self,
        kind: ContrastiveLoss,
        preds: &CpuBuffer,
        targets: &CpuBuffer,
        n: usize,
        d: usize,
        p_sq: &mut CpuBuffer,
        t_sq: &mut CpuBuffer,
        g_pt: &mut CpuBuffer,
        g_tt: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        clip::clip_grams_forward(self, kind, preds, targets, n, d, p_sq, t_sq, g_pt, g_tt)
    }
    fn clip_inputs_backward(
        &self,
        kind: ContrastiveLoss,
        w_pt: &CpuBuffer,
        d_p: &CpuBuffer,
        w_tt: &CpuBuffer,
        preds: &CpuBuffer,
        targets: &CpuBuffer,
        n: usize,
        d: usize,
        dpreds: Option<&mut CpuBuffer>,
        dtargets: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        clip::clip_inputs_backward(
            self, kind, w_pt, d_p, w_tt, preds, targets, n, d, dpreds, dtargets,
        )
    }
    fn sobel_forward(
        &self,
        x: &CpuBuffer,
        shape: &ImageShape,
        gx: &mut CpuBuffer,
        gy: &mut CpuBuffer,
        magnitude: &mut CpuBuffer,
    ) -> Result<()> {
        sobel::sobel_forward(self, x, shape, gx, gy, magnitude)
    }
    fn sobel_backward(
        &self,
        x: &CpuBuffer,
        shape: &ImageShape,
        dgx: Option<&CpuBuffer>,
        dgy: Option<&CpuBuffer>,
        dmagnitude: Option<&CpuBuffer>,
        dx: &mut CpuBuffer,
    ) -> Result<()> {
        sobel::sobel_backward(self, x, shape, dgx, dgy, dmagnitude, dx)
    }
    fn sobel_loss_forward(
        &self,
        pred: &CpuBuffer,
        target: &CpuBuffer,
        shape: &ImageShape,
        form: SobelLossForm,
        loss: &mut CpuBuffer,
    ) -> Result<()> {
        sobel::sobel_loss_forward(self, pred, target, shape, form, loss)
    }
    fn sobel_loss_backward(
        &self,
        pred: &CpuBuffer,
        target: &CpuBuffer,
        shape: &ImageShape,
        form: SobelLossForm,
        scale: f64,
        dpred: Option<&mut CpuBuffer>,
        dtarget: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        sobel::sobel_loss_backward(self, pred, target, shape, form, scale, dpred, dtarget)
    }
    fn scheduler_step(
        &self,
        step: &SchedulerStep,
        model_output: &CpuBuffer,
        sample: &CpuBuffer,
        noise: Option<&CpuBuffer>,
        prev_sample: &mut CpuBuffer,
        pred_x0: Option<&mut CpuBuffer>,
    ) -> Result<()> {
        diffusion::scheduler_step(
            self,
            step,
            model_output,
            sample,
            noise,
            prev_sample,
            pred_x0,
        )
    }
    fn add_noise(
        &self,
        x0: &CpuBuffer,
        noise: &CpuBuffer,
        sqrt_alpha_prod: &[f64],
        sqrt_one_minus_alpha_prod: &[f64],
        out: &mut CpuBuffer,
    ) -> Result<()> {
        diffusion::add_noise(
            self,
            x0,
            noise,
            sqrt_alpha_prod,
            sqrt_one_minus_alpha_prod,
            out,
        )
    }
    fn guidance_combine(
        &self,
        uncond: &CpuBuffer,
        cond: &CpuBuffer,
        scale: f64,
        out: &mut CpuBuffer,
    ) -> Result<()> {
        diffusion::guidance_combine(self, uncond, cond, scale, out)
    }
}
