//! # backend-wgpu
//!
//! A [`brain_core::Backend`] on wgpu, pinned to Vulkan, with kernels in WGSL
//! (`src/shaders/`, one file per kernel family). Lavapipe, Mesa's CPU Vulkan driver,
//! gives any Linux machine an adapter, so the suite runs without a GPU.
//!
//! Every kernel of the [`Backend`](brain_core::Backend) trait is a WGSL compute
//! shader (`src/ops/<family>.rs` beside `src/shaders/<family>.wgsl`): a GEMM tiled
//! through workgroup memory, fused element-wise kernels, and deterministic
//! workgroup-tree reductions (multi-pass through device temporaries, so losses and
//! the optimizer's gradient norm stay on the device). The shared conformance suite
//! passes on lavapipe.
//!
//! - Buffers are f32 storage buffers. Calls record their dispatches, copies and zero
//!   fills into one shared command encoder (each dispatch's parameters in a slot of
//!   a uniform arena, bound by dynamic offset), submitted every 128 commands and
//!   before a `write`, `download` or `sync`: calls are asynchronous and ordered, and
//!   a kernel costs no command buffer, submission or uniform buffer of its own.
//! - Dropped buffers return to a per-device pool (by size class, bounded) that `alloc`
//!   and `upload` reuse, so a training step's temporaries cost no driver allocation
//!   once it has run.
//! - Tensors larger than the adapter's storage binding limit (128 MiB on lavapipe and
//!   many GPUs) work in the kernels that bind buffer ranges in chunks, with the
//!   results of one dispatch: the element-wise kernels, activations, bias, GEMM and
//!   Linear, AdamW (sum of squares and update), the Philox fills and dropout, MSE, the
//!   diffusion kernels (scheduler step, add_noise, guidance), and, in ranges of rows,
//!   row L2 normalisation, row reductions, LayerNorm and the GroupNorm forward. A
//!   chunk of rows starts at an aligned offset of every binding, so those need
//!   `min_storage_buffer_offset_alignment / 4` rows to fit one binding: a row wider
//!   than that share is refused with [`BrainError::Unsupported`](brain_core::BrainError::Unsupported), as are tensors
//!   beyond one binding in the other kernels (GroupNorm backward, upsample, Sobel,
//!   CKA, sims, the contrastive losses and Gram passes).
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
mod half;
mod ops;
mod pool;

use brain_core::check;
use brain_core::{
    Activation, AdamW, AdamWTensor, Backend, ContrastiveLoss, Dropout, Gemm, GroupNormShape,
    HsicEstimator, ImageShape, Result, RowReduce, SchedulerStep, SobelLossForm, UpsampleMode,
    UpsampleShape,
};
use gpu::{Gpu, Kernel, Params, Part};
use std::sync::Weak;

pub use gpu::ADAPTER_ENV;
#[doc(hidden)]
pub use gpu::{adapter_names, DeviceTime};
pub use half::{WgpuF16Backend, WgpuF16Buffer};
#[doc(hidden)]
pub use pool::PoolStats;

/// Invocations per workgroup of the one-element-per-invocation kernels.
const WG: u64 = 256;

/// A device buffer of `len` f32 (storage, copy source and destination). Dropping it
/// returns its memory to the device's pool.
#[derive(Debug)]
pub struct WgpuBuffer {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) len: usize,
    /// The pool of the device the buffer belongs to (gone with the device).
    pool: Weak<pool::Pool>,
}

impl Drop for WgpuBuffer {
    fn drop(&mut self) {
        // Queued kernels may still use the buffer: reuse is ordered after them (pool.rs).
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.buf.clone());
        }
    }
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
    /// The underlying wgpu buffer: at least 4 bytes, even when empty, and possibly
    /// larger than `4·len` (a pooled size class).
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buf
    }
}

/// The wgpu backend: one Vulkan device and its queue.
pub struct WgpuBackend {
    pub(crate) gpu: Gpu,
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
    /// [`BrainError::Unsupported`](brain_core::BrainError::Unsupported) when there is no Vulkan adapter or no device can be
    /// opened on it.
    pub fn new() -> Result<Self> {
        Ok(WgpuBackend { gpu: Gpu::new()? })
    }

    /// The backend on the `index`-th Vulkan adapter in enumeration order (the order
    /// of `adapter_names`), whatever `$BRAIN_WGPU_ADAPTER` says; for benchmarks that
    /// cover every adapter.
    #[doc(hidden)]
    pub fn with_adapter_index(index: usize) -> Result<Self> {
        Ok(WgpuBackend {
            gpu: Gpu::with_adapter_index(index)?,
        })
    }

    /// The adapter's description (name, driver, device type).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        self.gpu.info()
    }

    /// The device's limits (those of the adapter: the backend asks for all of them).
    pub fn limits(&self) -> &wgpu::Limits {
        self.gpu.limits()
    }

    /// The features the adapter offers (e.g. `SHADER_F16`, `TIMESTAMP_QUERY`); the
    /// device enables only those the kernels use.
    pub fn adapter_features(&self) -> wgpu::Features {
        self.gpu.adapter_features()
    }

    /// Use at most `max` workgroups per dispatch dimension (fewer than the adapter
    /// allows), so that tests reach the x/y/z split with small problems.
    #[doc(hidden)]
    pub fn limit_workgroups_per_dimension(&mut self, max: u32) {
        self.gpu.set_max_workgroups_per_dimension(max);
    }

    /// Bind at most `bytes` (rounded down to the offset alignment) per storage
    /// binding, fewer than the adapter allows, so that tests reach the chunked paths
    /// of big tensors with small ones. Buffers allocated before keep their sizes.
    #[doc(hidden)]
    pub fn limit_storage_binding_size(&mut self, bytes: u64) {
        self.gpu.set_max_binding(bytes);
    }

    /// Counters of the buffer pool (driver allocations, reuses, bytes held).
    #[doc(hidden)]
    pub fn pool_stats(&self) -> PoolStats {
        self.gpu.pool_stats()
    }

    /// Let the buffer pool hold at most `bytes` (evicting the least recently freed
    /// buffers beyond); 0 disables pooling.
    #[doc(hidden)]
    pub fn set_pool_capacity(&self, bytes: u64) {
        self.gpu.set_pool_capacity(bytes);
    }

    /// Whether [`WgpuBackend::time_on_device`] can time on the device (the adapter
    /// offers `TIMESTAMP_QUERY`, enabled on the device whenever offered).
    #[doc(hidden)]
    pub fn has_timestamps(&self) -> bool {
        self.adapter_features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Run `f` and time on the device every kernel dispatch it records (timestamps at
    /// the beginning and end of each compute pass), for benchmarks. The time is `None`
    /// when the adapter offers no timestamp queries. Waits for the device before and
    /// after `f`.
    #[doc(hidden)]
    pub fn time_on_device<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T>,
    ) -> Result<(T, Option<DeviceTime>)> {
        self.gpu.time(|| f(self))
    }

    /// erf of every element, by the approximation the GELU kernels use; for tests that
    /// measure its error on the adapter.
    #[doc(hidden)]
    pub fn erf_probe(&self, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
        ops::activation::erf_probe(self, x, y)
    }

    /// One invocation per element over `n` elements; `params` gets `n` prepended.
    #[allow(dead_code)] // the entry point of the kernel families written elsewhere
    pub(crate) fn elementwise(
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

    /// [`WgpuBackend::elementwise`] for kernels whose every buffer is indexed by the
    /// element index alone (each holds at least `n` elements): tensors larger than one
    /// storage binding are processed in chunks, each binding the same element range of
    /// every buffer (the kernel sees the chunk as elements `0..n'`, `n'` its first
    /// Params word). One dispatch, as `elementwise`, when everything fits.
    pub(crate) fn elementwise_chunked(
        &self,
        op: &'static str,
        kernel: Kernel,
        params: Params,
        buffers: &[&wgpu::Buffer],
        n: usize,
    ) -> Result<()> {
        let parts: Vec<Part<'_>> = buffers.iter().map(|b| Part::Rows(b, 1)).collect();
        self.gpu.dispatch_rows(op, kernel, &parts, n, |_, len| {
            let p = Params::new().u(op, len)?.extend(params.clone());
            Ok((p, (len as u64).div_ceil(WG)))
        })
    }

    fn wrap(&self, buf: wgpu::Buffer, len: usize) -> WgpuBuffer {
        WgpuBuffer {
            buf,
            len,
            pool: self.gpu.pool(),
        }
    }
}

pub(crate) fn same_len(
    op: &'static str,
    arg: &'static str,
    got: usize,
    expected: usize,
) -> Result<()> {
    check::len(op, arg, got, expected)
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
        Ok(self.wrap(self.gpu.alloc(len)?, len))
    }
    fn upload(&self, data: &[f32]) -> Result<WgpuBuffer> {
        Ok(self.wrap(self.gpu.upload(data)?, data.len()))
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
        ops::elementwise::fill(self, dst, value)
    }

    // ---------------------------------------------------------------- GEMM, Linear, bias

    fn gemm(&self, g: &Gemm, a: &WgpuBuffer, b: &WgpuBuffer, c: &mut WgpuBuffer) -> Result<()> {
        ops::gemm::gemm(self, g, a, b, c)
    }
    fn linear_forward(
        &self,
        x: &WgpuBuffer,
        weight: &WgpuBuffer,
        bias: Option<&WgpuBuffer>,
        y: &mut WgpuBuffer,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()> {
        ops::gemm::linear_forward(self, x, weight, bias, y, rows, in_features, out_features)
    }
    fn linear_backward(
        &self,
        dy: &WgpuBuffer,
        x: &WgpuBuffer,
        weight: &WgpuBuffer,
        dx: Option<&mut WgpuBuffer>,
        dweight: Option<&mut WgpuBuffer>,
        dbias: Option<&mut WgpuBuffer>,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()> {
        ops::gemm::linear_backward(
            self,
            dy,
            x,
            weight,
            dx,
            dweight,
            dbias,
            rows,
            in_features,
            out_features,
        )
    }
    fn bias_add(
        &self,
        y: &mut WgpuBuffer,
        bias: &WgpuBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        ops::bias::bias_add(self, y, bias, outer, channels, inner)
    }
    fn bias_backward(
        &self,
        dy: &WgpuBuffer,
        dbias: &mut WgpuBuffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()> {
        ops::bias::bias_backward(self, dy, dbias, outer, channels, inner)
    }

    // ---------------------------------------------------------------- activations, element-wise

    fn activation_forward(
        &self,
        act: Activation,
        x: &WgpuBuffer,
        y: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::activation::forward(self, act, x, y)
    }
    fn activation_backward(
        &self,
        act: Activation,
        x: &WgpuBuffer,
        dy: &WgpuBuffer,
        dx: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::activation::backward(self, act, x, dy, dx)
    }
    fn add(&self, a: &WgpuBuffer, b: &WgpuBuffer, out: &mut WgpuBuffer) -> Result<()> {
        ops::elementwise::add(self, a, b, out)
    }
    fn scale(&self, x: &mut WgpuBuffer, alpha: f64) -> Result<()> {
        ops::elementwise::scale(self, x, alpha)
    }
    fn axpy(&self, alpha: f64, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
        ops::elementwise::axpy(self, alpha, x, y)
    }

    // ---------------------------------------------------------------- the other families (src/ops/)
    fn layernorm_forward(
        &self,
        x: &WgpuBuffer,
        gamma: &WgpuBuffer,
        beta: &WgpuBuffer,
        y: &mut WgpuBuffer,
        mean: &mut WgpuBuffer,
        rstd: &mut WgpuBuffer,
        rows: usize,
        cols: usize,
        eps: f64,
    ) -> Result<()> {
        ops::norm::layernorm_forward(self, x, gamma, beta, y, mean, rstd, rows, cols, eps)
    }
    fn layernorm_backward(
        &self,
        dy: &WgpuBuffer,
        x: &WgpuBuffer,
        gamma: &WgpuBuffer,
        mean: &WgpuBuffer,
        rstd: &WgpuBuffer,
        dx: &mut WgpuBuffer,
        dgamma: &mut WgpuBuffer,
        dbeta: &mut WgpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        ops::norm::layernorm_backward(
            self, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, cols,
        )
    }
    fn groupnorm_forward(
        &self,
        x: &WgpuBuffer,
        gamma: &WgpuBuffer,
        beta: &WgpuBuffer,
        y: &mut WgpuBuffer,
        mean: &mut WgpuBuffer,
        rstd: &mut WgpuBuffer,
        shape: &GroupNormShape,
        eps: f64,
    ) -> Result<()> {
        ops::norm::groupnorm_forward(self, x, gamma, beta, y, mean, rstd, shape, eps)
    }
    fn groupnorm_backward(
        &self,
        dy: &WgpuBuffer,
        x: &WgpuBuffer,
        gamma: &WgpuBuffer,
        mean: &WgpuBuffer,
        rstd: &WgpuBuffer,
        dx: &mut WgpuBuffer,
        dgamma: &mut WgpuBuffer,
        dbeta: &mut WgpuBuffer,
        shape: &GroupNormShape,
    ) -> Result<()> {
        ops::norm::groupnorm_backward(self, dy, x, gamma, mean, rstd, dx, dgamma, dbeta, shape)
    }
    fn dropout_forward(&self, d: &Dropout, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
        ops::random::dropout_forward(self, d, x, y)
    }
    fn dropout_backward(&self, d: &Dropout, dy: &WgpuBuffer, dx: &mut WgpuBuffer) -> Result<()> {
        ops::random::dropout_backward(self, d, dy, dx)
    }
    fn upsample_forward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        x: &WgpuBuffer,
        y: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::upsample::upsample_forward(self, mode, shape, x, y)
    }
    fn upsample_backward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        dy: &WgpuBuffer,
        dx: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::upsample::upsample_backward(self, mode, shape, dy, dx)
    }
    fn reduce_rows(
        &self,
        op: RowReduce,
        x: &WgpuBuffer,
        out: &mut WgpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        ops::reduce::reduce_rows(self, op, x, out, rows, cols)
    }
    fn adamw_step(
        &self,
        cfg: &AdamW,
        tensors: &mut [AdamWTensor<'_, WgpuBackend>],
        grad_norm: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::adamw::adamw_step(self, cfg, tensors, grad_norm)
    }
    fn fill_uniform(&self, out: &mut WgpuBuffer, seed: u64, offset: u64) -> Result<()> {
        ops::random::fill_uniform(self, out, seed, offset)
    }
    fn fill_normal(
        &self,
        out: &mut WgpuBuffer,
        seed: u64,
        offset: u64,
        mean: f64,
        std: f64,
    ) -> Result<()> {
        ops::random::fill_normal(self, out, seed, offset, mean, std)
    }
    fn philox_bits(&self, out: &mut WgpuBuffer, seed: u64, offset: u64) -> Result<()> {
        ops::random::philox_bits(self, out, seed, offset)
    }
    fn mse_forward(&self, a: &WgpuBuffer, b: &WgpuBuffer, loss: &mut WgpuBuffer) -> Result<()> {
        ops::mse::mse_forward(self, a, b, loss)
    }
    fn mse_backward(
        &self,
        a: &WgpuBuffer,
        b: &WgpuBuffer,
        scale: f64,
        da: Option<&mut WgpuBuffer>,
        db: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::mse::mse_backward(self, a, b, scale, da, db)
    }
    fn cka_grams_forward(
        &self,
        k: &WgpuBuffer,
        l: &WgpuBuffer,
        n: usize,
        estimator: HsicEstimator,
        out: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::cka::cka_grams_forward(self, k, l, n, estimator, out)
    }
    fn cka_grams_backward(
        &self,
        k: &WgpuBuffer,
        l: &WgpuBuffer,
        n: usize,
        estimator: HsicEstimator,
        scale: f64,
        dk: Option<&mut WgpuBuffer>,
        dl: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::cka::cka_grams_backward(self, k, l, n, estimator, scale, dk, dl)
    }
    fn sims_forward(
        &self,
        a: &WgpuBuffer,
        b: &WgpuBuffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        loss: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::sims::sims_forward(self, a, b, batch, tokens, dim, loss)
    }
    fn sims_backward(
        &self,
        a: &WgpuBuffer,
        b: &WgpuBuffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        scale: f64,
        da: Option<&mut WgpuBuffer>,
        db: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::sims::sims_backward(self, a, b, batch, tokens, dim, scale, da, db)
    }
    fn l2_normalize_rows_forward(
        &self,
        x: &WgpuBuffer,
        y: &mut WgpuBuffer,
        norms: &mut WgpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        ops::contrastive::l2_normalize_rows_forward(self, x, y, norms, rows, cols)
    }
    fn l2_normalize_rows_backward(
        &self,
        dy: &WgpuBuffer,
        x: &WgpuBuffer,
        norms: &WgpuBuffer,
        dx: &mut WgpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        ops::contrastive::l2_normalize_rows_backward(self, dy, x, norms, dx, rows, cols)
    }
    fn contrastive_forward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &WgpuBuffer,
        logits_tt: Option<&WgpuBuffer>,
        n: usize,
        loss: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::contrastive::contrastive_forward(self, kind, logits_pt, logits_tt, n, loss)
    }
    fn contrastive_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &WgpuBuffer,
        logits_tt: Option<&WgpuBuffer>,
        n: usize,
        scale: f64,
        dlogits_pt: &mut WgpuBuffer,
        dlogits_tt: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::contrastive::contrastive_backward(
            self, kind, logits_pt, logits_tt, n, scale, dlogits_pt, dlogits_tt,
        )
    }
    fn clip_logits_forward(
        &self,
        kind: ContrastiveLoss,
        g_pt: &WgpuBuffer,
        g_tt: Option<&WgpuBuffer>,
        p_sq: &WgpuBuffer,
        t_sq: &WgpuBuffer,
        n: usize,
        temperature: f64,
        logits_pt: &mut WgpuBuffer,
        logits_tt: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::contrastive::clip_logits_forward(
            self,
            kind,
            g_pt,
            g_tt,
            p_sq,
            t_sq,
            n,
            temperature,
            logits_pt,
            logits_tt,
        )
    }
    fn clip_logits_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &WgpuBuffer,
        logits_tt: Option<&WgpuBuffer>,
        dlogits_pt: &WgpuBuffer,
        dlogits_tt: Option<&WgpuBuffer>,
        p_sq: &WgpuBuffer,
        t_sq: &WgpuBuffer,
        n: usize,
        temperature: f64,
        w_pt: &mut WgpuBuffer,
        d_p: Option<&mut WgpuBuffer>,
        w_tt: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::contrastive::clip_logits_backward(
            self,
            kind,
            logits_pt,
            logits_tt,
            dlogits_pt,
            dlogits_tt,
            p_sq,
            t_sq,
            n,
            temperature,
            w_pt,
            d_p,
            w_tt,
        )
    }
    fn clip_grams_forward(
        &self,
        kind: ContrastiveLoss,
        preds: &WgpuBuffer,
        targets: &WgpuBuffer,
        n: usize,
        d: usize,
        p_sq: &mut WgpuBuffer,
        t_sq: &mut WgpuBuffer,
        g_pt: &mut WgpuBuffer,
        g_tt: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::contrastive::clip_grams_forward(
            self, kind, preds, targets, n, d, p_sq, t_sq, g_pt, g_tt,
        )
    }
    fn clip_inputs_backward(
        &self,
        kind: ContrastiveLoss,
        w_pt: &WgpuBuffer,
        d_p: &WgpuBuffer,
        w_tt: &WgpuBuffer,
        preds: &WgpuBuffer,
        targets: &WgpuBuffer,
        n: usize,
        d: usize,
        dpreds: Option<&mut WgpuBuffer>,
        dtargets: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::contrastive::clip_inputs_backward(
            self, kind, w_pt, d_p, w_tt, preds, targets, n, d, dpreds, dtargets,
        )
    }
    fn sobel_forward(
        &self,
        x: &WgpuBuffer,
        shape: &ImageShape,
        gx: &mut WgpuBuffer,
        gy: &mut WgpuBuffer,
        magnitude: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::sobel::sobel_forward(self, x, shape, gx, gy, magnitude)
    }
    fn sobel_backward(
        &self,
        x: &WgpuBuffer,
        shape: &ImageShape,
        dgx: Option<&WgpuBuffer>,
        dgy: Option<&WgpuBuffer>,
        dmagnitude: Option<&WgpuBuffer>,
        dx: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::sobel::sobel_backward(self, x, shape, dgx, dgy, dmagnitude, dx)
    }
    fn sobel_loss_forward(
        &self,
        pred: &WgpuBuffer,
        target: &WgpuBuffer,
        shape: &ImageShape,
        form: SobelLossForm,
        loss: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::sobel::sobel_loss_forward(self, pred, target, shape, form, loss)
    }
    fn sobel_loss_backward(
        &self,
        pred: &WgpuBuffer,
        target: &WgpuBuffer,
        shape: &ImageShape,
        form: SobelLossForm,
        scale: f64,
        dpred: Option<&mut WgpuBuffer>,
        dtarget: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::sobel::sobel_loss_backward(self, pred, target, shape, form, scale, dpred, dtarget)
    }
    fn scheduler_step(
        &self,
        step: &SchedulerStep,
        model_output: &WgpuBuffer,
        sample: &WgpuBuffer,
        noise: Option<&WgpuBuffer>,
        prev_sample: &mut WgpuBuffer,
        pred_x0: Option<&mut WgpuBuffer>,
    ) -> Result<()> {
        ops::diffusion::scheduler_step(
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
        x0: &WgpuBuffer,
        noise: &WgpuBuffer,
        sqrt_alpha_prod: &[f64],
        sqrt_one_minus_alpha_prod: &[f64],
        out: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::diffusion::add_noise(
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
        uncond: &WgpuBuffer,
        cond: &WgpuBuffer,
        scale: f64,
        out: &mut WgpuBuffer,
    ) -> Result<()> {
        ops::diffusion::guidance_combine(self, uncond, cond, scale, out)
    }
}
