//! # backend-wgpu
//!
//! A [`brain_core::Backend`] on wgpu, pinned to Vulkan, with kernels in WGSL
//! (`src/shaders/`, one file per kernel family). Lavapipe, Mesa's CPU Vulkan driver,
//! gives any Linux machine an adapter, so the suite runs without a GPU.
//!
//! **Work in progress** (issue 6): memory, GEMM, Linear, bias, activations and the
//! element-wise kernels are implemented; every other kernel returns
//! [`BrainError::Unsupported`] saying so.
//!
//! - Buffers are f32 storage buffers; every call records its own command buffer and
//!   submits it, so calls are asynchronous and ordered; `download` and `sync` wait.
//! - Pipelines are compiled on first use and cached for the life of the device.
//! - Driver errors (validation, device lost) never panic: they are returned by the
//!   next `sync` or `download`.
//!
//! ```
//! use backend_wgpu::WgpuBackend;
//! use brain_core::Backend;
//!
//! # fn main() -> Result<(), brain_core::BrainError> {
//! let be = match WgpuBackend::new() {
//!     Ok(be) => be,
//!     // No Vulkan adapter: a typed error, never a panic.
//!     Err(e) => return Ok(println!("skipped: {e}")),
//! };
//! let x = be.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])?;
//! let w = be.upload(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])?;
//! let b = be.upload(&[0.5, 0.5, 0.5])?;
//! let mut y = be.alloc(6)?;
//! be.linear_forward(&x, &w, Some(&b), &mut y, 2, 4, 3)?;
//! assert_eq!(be.download_vec(&y)?, vec![1.5, 2.5, 7.5, 5.5, 6.5, 15.5]);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
// The trait's kernels take their dimensions as plain arguments.
#![allow(clippy::too_many_arguments)]

mod gpu;

use brain_core::check;
use brain_core::{
    Activation, AdamW, AdamWTensor, Backend, BrainError, ContrastiveLoss, Dropout, Gemm,
    GroupNormShape, HsicEstimator, ImageShape, Result, RowReduce, SchedulerStep, SobelLossForm,
    UpsampleMode, UpsampleShape,
};
use gpu::{Gpu, Kernel, Params};

pub use gpu::ADAPTER_ENV;

/// Invocations per workgroup of the one-element-per-invocation kernels.
const WG: u64 = 256;

/// A device buffer of `len` f32 (storage, copy source and destination).
#[derive(Debug)]
pub struct WgpuBuffer {
    buf: wgpu::Buffer,
    len: usize,
}

impl WgpuBuffer {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The underlying wgpu buffer (at least 4 bytes, even when empty).
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buf
    }
}

/// The wgpu backend: one Vulkan device and its queue.
pub struct WgpuBackend {
    gpu: Gpu,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBackend")
            .field("adapter", &self.gpu.info().name)
            .finish()
    }
}

impl WgpuBackend {
    /// Open the best Vulkan adapter (discrete, integrated, virtual, then CPU), or the
    /// one whose name contains `$BRAIN_WGPU_ADAPTER`.
    ///
    /// # Errors
    /// [`BrainError::Unsupported`] when there is no Vulkan adapter or no device can be
    /// opened on it.
    pub fn new() -> Result<Self> {
        Ok(WgpuBackend { gpu: Gpu::new()? })
    }

    /// The adapter's description (name, driver, device type).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        self.gpu.info()
    }

    /// The device's limits (those of the adapter: the backend asks for all of them).
    pub fn limits(&self) -> &wgpu::Limits {
        self.gpu.limits()
    }

    /// Use at most `max` workgroups per dispatch dimension (fewer than the adapter
    /// allows), so that tests reach the x/y/z split with small problems.
    #[doc(hidden)]
    pub fn limit_workgroups_per_dimension(&mut self, max: u32) {
        self.gpu.set_max_workgroups_per_dimension(max);
    }

    /// erf of every element, by the approximation the GELU kernels use; for tests that
    /// measure its error on the adapter.
    #[doc(hidden)]
    pub fn erf_probe(&self, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
        same_len("erf_probe", "y", y.len, x.len)?;
        self.elementwise(
            "erf_probe",
            Kernel::ErfProbe,
            Params::new(),
            &[&x.buf, &y.buf],
            x.len,
        )
    }

    /// One invocation per element over `n` elements; `params` gets `n` prepended.
    fn elementwise(
        &self,
        op: &'static str,
        kernel: Kernel,
        params: Params,
        buffers: &[&wgpu::Buffer],
        n: usize,
    ) -> Result<()> {
        let params = Params::new().u(op, n)?.extend(params);
        self.gpu
            .dispatch(op, kernel, &params, buffers, (n as u64).div_ceil(WG))
    }

    /// `C = alpha·op(A)·op(B) + beta·C`, arguments already checked.
    fn gemm_unchecked(
        &self,
        op: &'static str,
        g: &Gemm,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        c: &wgpu::Buffer,
    ) -> Result<()> {
        if g.batch == 0 || g.m == 0 || g.n == 0 {
            return Ok(());
        }
        let (tiles_m, tiles_n) = (g.m.div_ceil(64), g.n.div_ceil(64));
        let groups = (tiles_m as u64)
            .checked_mul(tiles_n as u64)
            .and_then(|t| t.checked_mul(g.batch as u64))
            .ok_or(BrainError::SizeOverflow { op })?;
        // With one matrix the strides are never used (and may be anything).
        let stride = |s: usize| if g.batch == 1 { 0 } else { s };
        let params = Params::new()
            .u(op, g.m)?
            .u(op, g.n)?
            .u(op, g.k)?
            .u(op, tiles_n)?
            .u(op, tiles_m)?
            .u(op, groups as usize)?
            .u(op, stride(g.stride_a))?
            .u(op, stride(g.stride_b))?
            .u(op, stride(g.stride_c))?
            // beta = 0 overwrites C without reading it, as BLAS does.
            .u(op, usize::from(g.beta != 0.0))?
            .f(g.alpha)
            .f(g.beta);
        let kernel = Kernel::Gemm {
            trans_a: g.trans_a,
            trans_b: g.trans_b,
        };
        self.gpu.dispatch(op, kernel, &params, &[a, b, c], groups)
    }

    /// `y[o,c,i] += bias[c]`, arguments already checked.
    fn bias_add_unchecked(
        &self,
        op: &'static str,
        y: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        let n = outer * channels * inner;
        let params = Params::new().u(op, channels)?.u(op, inner)?.u(op, outer)?;
        self.elementwise(op, Kernel::BiasAdd, params, &[bias, y], n)
    }

    /// `dbias[c] += Σ dy[o,c,i]`, arguments already checked.
    fn bias_backward_unchecked(
        &self,
        op: &'static str,
        dy: &wgpu::Buffer,
        dbias: &wgpu::Buffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        if outer == 0 || inner == 0 {
            return Ok(()); // an empty sum adds nothing
        }
        let params = Params::new()
            .u(op, outer * channels * inner)?
            .u(op, channels)?
            .u(op, inner)?
            .u(op, outer)?;
        // One workgroup per channel.
        self.gpu.dispatch(
            op,
            Kernel::BiasBackward,
            &params,
            &[dy, dbias],
            channels as u64,
        )
    }
}

fn same_len(op: &'static str, arg: &'static str, got: usize, expected: usize) -> Result<()> {
    check::len(op, arg, got, expected)
}

/// The error of every kernel this branch has not written yet.
fn not_yet(kernel: &str) -> BrainError {
    BrainError::Unsupported(format!("wgpu: {kernel} not implemented yet"))
}

impl Backend for WgpuBackend {
    type Elem = f32;
    type Buffer = WgpuBuffer;

    fn name(&self) -> String {
        let i = self.gpu.info();
        format!(
            "wgpu ({}, {:?} via {:?}, {} {})",
            i.name, i.device_type, i.backend, i.driver, i.driver_info
        )
    }

    // ---------------------------------------------------------------- memory

    fn alloc(&self, len: usize) -> Result<WgpuBuffer> {
        Ok(WgpuBuffer {
            buf: self.gpu.alloc(len)?,
            len,
        })
    }
    fn upload(&self, data: &[f32]) -> Result<WgpuBuffer> {
        Ok(WgpuBuffer {
            buf: self.gpu.upload(data)?,
            len: data.len(),
        })
    }
    fn write(&self, dst: &mut WgpuBuffer, data: &[f32]) -> Result<()> {
        same_len("write", "data", data.len(), dst.len)?;
        self.gpu.write(&dst.buf, data);
        Ok(())
    }
    fn download(&self, src: &WgpuBuffer, dst: &mut [f32]) -> Result<()> {
        same_len("download", "dst", dst.len(), src.len)?;
        self.gpu.download(&src.buf, dst)
    }
    fn len(&self, buf: &WgpuBuffer) -> usize {
        buf.len
    }
    fn sync(&self) -> Result<()> {
        self.gpu.sync()
    }
    fn copy(&self, src: &WgpuBuffer, dst: &mut WgpuBuffer) -> Result<()> {
        same_len("copy", "dst", dst.len, src.len)?;
        self.gpu.copy(&src.buf, &dst.buf, src.len);
        Ok(())
    }
    fn fill(&self, dst: &mut WgpuBuffer, value: f64) -> Result<()> {
        let params = Params::new().f(value);
        self.elementwise("fill", Kernel::Fill, params, &[&dst.buf], dst.len)
    }

    // ---------------------------------------------------------------- GEMM

    fn gemm(&self, g: &Gemm, a: &WgpuBuffer, b: &WgpuBuffer, c: &mut WgpuBuffer) -> Result<()> {
        check::gemm(g, a.len, b.len, c.len)?;
        self.gemm_unchecked("gemm", g, &a.buf, &b.buf, &c.buf)
    }

    // ---------------------------------------------------------------- Linear

    fn linear_forward(
        &self,
        x: &WgpuBuffer,
        w: &WgpuBuffer,
        b: Option<&WgpuBuffer>,
        y: &mut WgpuBuffer,
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Result<()> {
        const OP: &str = "linear_forward";
        check::linear(OP, x.len, w.len, b.map(|b| b.len), y.len, rows, in_f, out_f)?;
        // y[rows,out] = x[rows,in]·W[out,in]ᵀ, then the bias broadcast over rows.
        let g = Gemm::new(rows, out_f, in_f).trans(false, true);
        self.gemm_unchecked(OP, &g, &x.buf, &w.buf, &y.buf)?;
        if let Some(b) = b {
            self.bias_add_unchecked(OP, &y.buf, &b.buf, rows, out_f, 1)?;
        }
        Ok(())
    }

    fn linear_backward(
        &self,
        dy: &WgpuBuffer,
        x: &WgpuBuffer,
        w: &WgpuBuffer,
        dx: Option<&mut WgpuBuffer>,
        dw: Option<&mut WgpuBuffer>,
        db: Option<&mut WgpuBuffer>,
        rows: usize,
        in_f: usize,
        out_f: usize,
    ) -> Result<()> {
        const OP: &str = "linear_backward";
        check::linear(
            OP,
            x.len,
            w.len,
            db.as_ref().map(|b| b.len),
            dy.len,
            rows,
            in_f,
            out_f,
        )?;
        if let Some(dx) = &dx {
            same_len(OP, "dx", dx.len, x.len)?;
        }
        if let Some(dw) = &dw {
            same_len(OP, "dweight", dw.len, w.len)?;
        }
        if let Some(dx) = dx {
            // dx[rows,in] = dy[rows,out]·W[out,in] (overwritten)
            let g = Gemm::new(rows, in_f, out_f);
            self.gemm_unchecked(OP, &g, &dy.buf, &w.buf, &dx.buf)?;
        }
        if let Some(dw) = dw {
            // dW[out,in] += dyᵀ·x: dy is stored [rows,out] = k×m, hence trans_a.
            let g = Gemm::new(out_f, in_f, rows)
                .trans(true, false)
                .scale(1.0, 1.0);
            self.gemm_unchecked(OP, &g, &dy.buf, &x.buf, &dw.buf)?;
        }
        if let Some(db) = db {
            // db[out] += Σ_rows dy: the bias gradient over [rows, out, 1].
            self.bias_backward_unchecked(OP, &dy.buf, &db.buf, rows, out_f, 1)?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- bias

    fn bias_add(
        &self,
        y: &mut WgpuBuffer,
        b: &WgpuBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_add", y.len, b.len, outer, channels, inner)?;
        self.bias_add_unchecked("bias_add", &y.buf, &b.buf, outer, channels, inner)
    }
    fn bias_backward(
        &self,
        dy: &WgpuBuffer,
        db: &mut WgpuBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        check::bias("bias_backward", dy.len, db.len, outer, channels, inner)?;
        self.bias_backward_unchecked("bias_backward", &dy.buf, &db.buf, outer, channels, inner)
    }

    // ---------------------------------------------------------------- activations

    fn activation_forward(
        &self,
        act: Activation,
        x: &WgpuBuffer,
        y: &mut WgpuBuffer,
    ) -> Result<()> {
        const OP: &str = "activation_forward";
        same_len(OP, "y", y.len, x.len)?;
        let k = Kernel::ActivationForward(act);
        self.elementwise(OP, k, Params::new(), &[&x.buf, &y.buf], x.len)
    }
    fn activation_backward(
        &self,
        act: Activation,
        x: &WgpuBuffer,
        dy: &WgpuBuffer,
        dx: &mut WgpuBuffer,
    ) -> Result<()> {
        const OP: &str = "activation_backward";
        same_len(OP, "dy", dy.len, x.len)?;
        same_len(OP, "dx", dx.len, x.len)?;
        let k = Kernel::ActivationBackward(act);
        self.elementwise(OP, k, Params::new(), &[&x.buf, &dy.buf, &dx.buf], x.len)
    }

    // ---------------------------------------------------------------- element-wise

    fn add(&self, a: &WgpuBuffer, b: &WgpuBuffer, out: &mut WgpuBuffer) -> Result<()> {
        same_len("add", "b", b.len, a.len)?;
        same_len("add", "out", out.len, a.len)?;
        self.elementwise(
            "add",
            Kernel::Add,
            Params::new(),
            &[&a.buf, &b.buf, &out.buf],
            a.len,
        )
    }
    fn scale(&self, x: &mut WgpuBuffer, alpha: f64) -> Result<()> {
        let params = Params::new().f(alpha);
        self.elementwise("scale", Kernel::Scale, params, &[&x.buf], x.len)
    }
    fn axpy(&self, alpha: f64, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
        same_len("axpy", "y", y.len, x.len)?;
        let params = Params::new().f(alpha);
        self.elementwise("axpy", Kernel::Axpy, params, &[&x.buf, &y.buf], x.len)
    }

    // ---------------------------------------------------------------- not yet on wgpu
    fn layernorm_forward(
        &self,
        _x: &Self::Buffer,
        _gamma: &Self::Buffer,
        _beta: &Self::Buffer,
        _y: &mut Self::Buffer,
        _mean: &mut Self::Buffer,
        _rstd: &mut Self::Buffer,
        _rows: usize,
        _cols: usize,
        _eps: f64,
    ) -> Result<()> {
        Err(not_yet("layernorm_forward"))
    }
    fn layernorm_backward(
        &self,
        _dy: &Self::Buffer,
        _x: &Self::Buffer,
        _gamma: &Self::Buffer,
        _mean: &Self::Buffer,
        _rstd: &Self::Buffer,
        _dx: &mut Self::Buffer,
        _dgamma: &mut Self::Buffer,
        _dbeta: &mut Self::Buffer,
        _rows: usize,
        _cols: usize,
    ) -> Result<()> {
        Err(not_yet("layernorm_backward"))
    }
    fn groupnorm_forward(
        &self,
        _x: &Self::Buffer,
        _gamma: &Self::Buffer,
        _beta: &Self::Buffer,
        _y: &mut Self::Buffer,
        _mean: &mut Self::Buffer,
        _rstd: &mut Self::Buffer,
        _shape: &GroupNormShape,
        _eps: f64,
    ) -> Result<()> {
        Err(not_yet("groupnorm_forward"))
    }
    fn groupnorm_backward(
        &self,
        _dy: &Self::Buffer,
        _x: &Self::Buffer,
        _gamma: &Self::Buffer,
        _mean: &Self::Buffer,
        _rstd: &Self::Buffer,
        _dx: &mut Self::Buffer,
        _dgamma: &mut Self::Buffer,
        _dbeta: &mut Self::Buffer,
        _shape: &GroupNormShape,
    ) -> Result<()> {
        Err(not_yet("groupnorm_backward"))
    }
    fn dropout_forward(
        &self,
        _d: &Dropout,
        _x: &Self::Buffer,
        _y: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("dropout_forward"))
    }
    fn dropout_backward(
        &self,
        _d: &Dropout,
        _dy: &Self::Buffer,
        _dx: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("dropout_backward"))
    }
    fn upsample_forward(
        &self,
        _mode: UpsampleMode,
        _shape: &UpsampleShape,
        _x: &Self::Buffer,
        _y: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("upsample_forward"))
    }
    fn upsample_backward(
        &self,
        _mode: UpsampleMode,
        _shape: &UpsampleShape,
        _dy: &Self::Buffer,
        _dx: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("upsample_backward"))
    }
    fn reduce_rows(
        &self,
        _op: RowReduce,
        _x: &Self::Buffer,
        _out: &mut Self::Buffer,
        _rows: usize,
        _cols: usize,
    ) -> Result<()> {
        Err(not_yet("reduce_rows"))
    }
    fn adamw_step(
        &self,
        _cfg: &AdamW,
        _tensors: &mut [AdamWTensor<'_, Self>],
        _grad_norm: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("adamw_step"))
    }
    fn fill_uniform(&self, _out: &mut Self::Buffer, _seed: u64, _offset: u64) -> Result<()> {
        Err(not_yet("fill_uniform"))
    }
    fn fill_normal(
        &self,
        _out: &mut Self::Buffer,
        _seed: u64,
        _offset: u64,
        _mean: f64,
        _std: f64,
    ) -> Result<()> {
        Err(not_yet("fill_normal"))
    }
    fn philox_bits(&self, _out: &mut Self::Buffer, _seed: u64, _offset: u64) -> Result<()> {
        Err(not_yet("philox_bits"))
    }
    fn mse_forward(
        &self,
        _a: &Self::Buffer,
        _b: &Self::Buffer,
        _loss: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("mse_forward"))
    }
    fn mse_backward(
        &self,
        _a: &Self::Buffer,
        _b: &Self::Buffer,
        _scale: f64,
        _da: Option<&mut Self::Buffer>,
        _db: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("mse_backward"))
    }
    fn cka_grams_forward(
        &self,
        _k: &Self::Buffer,
        _l: &Self::Buffer,
        _n: usize,
        _estimator: HsicEstimator,
        _out: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("cka_grams_forward"))
    }
    fn cka_grams_backward(
        &self,
        _k: &Self::Buffer,
        _l: &Self::Buffer,
        _n: usize,
        _estimator: HsicEstimator,
        _scale: f64,
        _dk: Option<&mut Self::Buffer>,
        _dl: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("cka_grams_backward"))
    }
    fn sims_forward(
        &self,
        _a: &Self::Buffer,
        _b: &Self::Buffer,
        _batch: usize,
        _tokens: usize,
        _dim: usize,
        _loss: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("sims_forward"))
    }
    fn sims_backward(
        &self,
        _a: &Self::Buffer,
        _b: &Self::Buffer,
        _batch: usize,
        _tokens: usize,
        _dim: usize,
        _scale: f64,
        _da: Option<&mut Self::Buffer>,
        _db: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("sims_backward"))
    }
    fn l2_normalize_rows_forward(
        &self,
        _x: &Self::Buffer,
        _y: &mut Self::Buffer,
        _norms: &mut Self::Buffer,
        _rows: usize,
        _cols: usize,
    ) -> Result<()> {
        Err(not_yet("l2_normalize_rows_forward"))
    }
    fn l2_normalize_rows_backward(
        &self,
        _dy: &Self::Buffer,
        _x: &Self::Buffer,
        _norms: &Self::Buffer,
        _dx: &mut Self::Buffer,
        _rows: usize,
        _cols: usize,
    ) -> Result<()> {
        Err(not_yet("l2_normalize_rows_backward"))
    }
    fn contrastive_forward(
        &self,
        _kind: ContrastiveLoss,
        _logits_pt: &Self::Buffer,
        _logits_tt: Option<&Self::Buffer>,
        _n: usize,
        _loss: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("contrastive_forward"))
    }
    fn contrastive_backward(
        &self,
        _kind: ContrastiveLoss,
        _logits_pt: &Self::Buffer,
        _logits_tt: Option<&Self::Buffer>,
        _n: usize,
        _scale: f64,
        _dlogits_pt: &mut Self::Buffer,
        _dlogits_tt: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("contrastive_backward"))
    }
    fn clip_logits_forward(
        &self,
        _kind: ContrastiveLoss,
        _g_pt: &Self::Buffer,
        _g_tt: Option<&Self::Buffer>,
        _p_sq: &Self::Buffer,
        _t_sq: &Self::Buffer,
        _n: usize,
        _temperature: f64,
        _logits_pt: &mut Self::Buffer,
        _logits_tt: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("clip_logits_forward"))
    }
    fn clip_logits_backward(
        &self,
        _kind: ContrastiveLoss,
        _logits_pt: &Self::Buffer,
        _logits_tt: Option<&Self::Buffer>,
        _dlogits_pt: &Self::Buffer,
        _dlogits_tt: Option<&Self::Buffer>,
        _p_sq: &Self::Buffer,
        _t_sq: &Self::Buffer,
        _n: usize,
        _temperature: f64,
        _w_pt: &mut Self::Buffer,
        _d_p: Option<&mut Self::Buffer>,
        _w_tt: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("clip_logits_backward"))
    }
    fn clip_grams_forward(
        &self,
        _kind: ContrastiveLoss,
        _preds: &Self::Buffer,
        _targets: &Self::Buffer,
        _n: usize,
        _d: usize,
        _p_sq: &mut Self::Buffer,
        _t_sq: &mut Self::Buffer,
        _g_pt: &mut Self::Buffer,
        _g_tt: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("clip_grams_forward"))
    }
    fn clip_inputs_backward(
        &self,
        _kind: ContrastiveLoss,
        _w_pt: &Self::Buffer,
        _d_p: &Self::Buffer,
        _w_tt: &Self::Buffer,
        _preds: &Self::Buffer,
        _targets: &Self::Buffer,
        _n: usize,
        _d: usize,
        _dpreds: Option<&mut Self::Buffer>,
        _dtargets: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("clip_inputs_backward"))
    }
    fn sobel_forward(
        &self,
        _x: &Self::Buffer,
        _shape: &ImageShape,
        _gx: &mut Self::Buffer,
        _gy: &mut Self::Buffer,
        _magnitude: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("sobel_forward"))
    }
    fn sobel_backward(
        &self,
        _x: &Self::Buffer,
        _shape: &ImageShape,
        _dgx: Option<&Self::Buffer>,
        _dgy: Option<&Self::Buffer>,
        _dmagnitude: Option<&Self::Buffer>,
        _dx: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("sobel_backward"))
    }
    fn sobel_loss_forward(
        &self,
        _pred: &Self::Buffer,
        _target: &Self::Buffer,
        _shape: &ImageShape,
        _form: SobelLossForm,
        _loss: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("sobel_loss_forward"))
    }
    fn sobel_loss_backward(
        &self,
        _pred: &Self::Buffer,
        _target: &Self::Buffer,
        _shape: &ImageShape,
        _form: SobelLossForm,
        _scale: f64,
        _dpred: Option<&mut Self::Buffer>,
        _dtarget: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("sobel_loss_backward"))
    }
    fn scheduler_step(
        &self,
        _step: &SchedulerStep,
        _model_output: &Self::Buffer,
        _sample: &Self::Buffer,
        _noise: Option<&Self::Buffer>,
        _prev_sample: &mut Self::Buffer,
        _pred_x0: Option<&mut Self::Buffer>,
    ) -> Result<()> {
        Err(not_yet("scheduler_step"))
    }
    fn add_noise(
        &self,
        _x0: &Self::Buffer,
        _noise: &Self::Buffer,
        _sqrt_alpha_prod: &[f64],
        _sqrt_one_minus_alpha_prod: &[f64],
        _out: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("add_noise"))
    }
    fn guidance_combine(
        &self,
        _uncond: &Self::Buffer,
        _cond: &Self::Buffer,
        _scale: f64,
        _out: &mut Self::Buffer,
    ) -> Result<()> {
        Err(not_yet("guidance_combine"))
    }
}
