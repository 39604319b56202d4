//! The narrow, kernel-shaped contract every device implements.
//!
//! Conventions for every kernel:
//! - Buffers are contiguous, row-major, of [`Backend::Elem`]; each kernel checks that
//!   every buffer's length equals what its dimensions imply (see [`crate::check`]) and
//!   returns [`BrainError::ShapeMismatch`](crate::BrainError) otherwise.
//! - Outputs are overwritten, except parameter gradients (`dweight`, `dbias`, `dgamma`,
//!   `dbeta`), which are accumulated (`+=`) so that one buffer can gather a batch.
//! - Scalars cross the trait as f64 and are rounded once to `Elem`.
//! - Calls may be asynchronous: only `download` and `sync` wait for the device.

use crate::element::Element;
use crate::error::Result;
use crate::ops::{
    Activation, AdamW, Dropout, Gemm, GroupNormShape, RowReduce, UpsampleMode, UpsampleShape,
};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// One parameter tensor as seen by the fused optimizer step.
pub struct AdamWTensor<'a, B: Backend + ?Sized> {
    /// Parameter, updated in place.
    pub param: &'a mut B::Buffer,
    /// Its gradient (read only).
    pub grad: &'a B::Buffer,
    /// First moment, updated in place.
    pub exp_avg: &'a mut B::Buffer,
    /// Second moment, updated in place.
    pub exp_avg_sq: &'a mut B::Buffer,
}

/// A compute device: memory management plus the kernels the mapping networks need.
///
/// Composite operations (layers, losses, models, sampling loops) live in brain-core
/// and are written once against this trait.
#[allow(clippy::too_many_arguments)]
pub trait Backend {
    /// Element type kernels compute in.
    type Elem: Element;
    /// A device buffer of `Elem`.
    type Buffer;

    /// Human-readable name with the device, e.g. `"cpu (2 threads)"`.
    fn name(&self) -> String;

    // ---------------------------------------------------------------- memory

    /// A zero-filled buffer of `len` elements.
    fn alloc(&self, len: usize) -> Result<Self::Buffer>;
    /// A buffer holding a copy of `data`.
    fn upload(&self, data: &[Self::Elem]) -> Result<Self::Buffer>;
    /// Overwrite `dst` with `data` (same length).
    fn write(&self, dst: &mut Self::Buffer, data: &[Self::Elem]) -> Result<()>;
    /// Copy `src` to host memory (same length). Blocks until the data is there.
    fn download(&self, src: &Self::Buffer, dst: &mut [Self::Elem]) -> Result<()>;
    /// Number of elements in `buf`.
    fn len(&self, buf: &Self::Buffer) -> usize;
    /// Wait for all queued work.
    fn sync(&self) -> Result<()>;
    /// Device-side copy, same length.
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<()>;
    /// Set every element to `value`.
    fn fill(&self, dst: &mut Self::Buffer, value: f64) -> Result<()>;

    /// Download into a new `Vec`.
    fn download_vec(&self, src: &Self::Buffer) -> Result<Vec<Self::Elem>> {
        let mut out = vec![<Self::Elem as num_traits::Zero>::zero(); self.len(src)];
        self.download(src, &mut out)?;
        Ok(out)
    }

    // ---------------------------------------------------------------- GEMM

    /// `C = alpha·op(A)·op(B) + beta·C` for each matrix of the batch (see [`Gemm`]).
    fn gemm(
        &self,
        g: &Gemm,
        a: &Self::Buffer,
        b: &Self::Buffer,
        c: &mut Self::Buffer,
    ) -> Result<()>;

    // ---------------------------------------------------------------- Linear

    /// `y[rows,out] = x[rows,in] · weight[out,in]ᵀ + bias[out]` (PyTorch layout).
    fn linear_forward(
        &self,
        x: &Self::Buffer,
        weight: &Self::Buffer,
        bias: Option<&Self::Buffer>,
        y: &mut Self::Buffer,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()>;

    /// `dx = dy·W` (overwritten), `dweight += dyᵀ·x`, `dbias += Σ_rows dy`.
    fn linear_backward(
        &self,
        dy: &Self::Buffer,
        x: &Self::Buffer,
        weight: &Self::Buffer,
        dx: Option<&mut Self::Buffer>,
        dweight: Option<&mut Self::Buffer>,
        dbias: Option<&mut Self::Buffer>,
        rows: usize,
        in_features: usize,
        out_features: usize,
    ) -> Result<()>;

    // ---------------------------------------------------------------- bias

    /// `y[o,c,i] += bias[c]` over `[outer, channels, inner]` (inner = 1 for rows).
    fn bias_add(
        &self,
        y: &mut Self::Buffer,
        bias: &Self::Buffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()>;
    /// `dbias[c] += Σ_{o,i} dy[o,c,i]`.
    fn bias_backward(
        &self,
        dy: &Self::Buffer,
        dbias: &mut Self::Buffer,
        outer: usize,
        channels: usize,
        inner: usize,
    ) -> Result<()>;

    // ---------------------------------------------------------------- activations

    /// `y = f(x)` element-wise.
    fn activation_forward(
        &self,
        act: Activation,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;
    /// `dx = dy · f'(x)` element-wise.
    fn activation_backward(
        &self,
        act: Activation,
        x: &Self::Buffer,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;

    // ---------------------------------------------------------------- normalisation

    /// LayerNorm over the last dim of `x[rows, cols]`, biased variance; saves
    /// `mean[rows]` and `rstd[rows]` = 1/√(var + eps) for the backward pass.
    fn layernorm_forward(
        &self,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        y: &mut Self::Buffer,
        mean: &mut Self::Buffer,
        rstd: &mut Self::Buffer,
        rows: usize,
        cols: usize,
        eps: f64,
    ) -> Result<()>;

    /// `dx` overwritten; `dgamma += Σ dy·x̂`, `dbeta += Σ dy`.
    fn layernorm_backward(
        &self,
        dy: &Self::Buffer,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        mean: &Self::Buffer,
        rstd: &Self::Buffer,
        dx: &mut Self::Buffer,
        dgamma: &mut Self::Buffer,
        dbeta: &mut Self::Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()>;

    /// GroupNorm on `x[N, C, spatial]`, affine per channel; saves `mean[N·G]`, `rstd[N·G]`.
    fn groupnorm_forward(
        &self,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        beta: &Self::Buffer,
        y: &mut Self::Buffer,
        mean: &mut Self::Buffer,
        rstd: &mut Self::Buffer,
        shape: &GroupNormShape,
        eps: f64,
    ) -> Result<()>;

    /// `dx` overwritten; `dgamma`, `dbeta` accumulated.
    fn groupnorm_backward(
        &self,
        dy: &Self::Buffer,
        x: &Self::Buffer,
        gamma: &Self::Buffer,
        mean: &Self::Buffer,
        rstd: &Self::Buffer,
        dx: &mut Self::Buffer,
        dgamma: &mut Self::Buffer,
        dbeta: &mut Self::Buffer,
        shape: &GroupNormShape,
    ) -> Result<()>;

    // ---------------------------------------------------------------- dropout

    /// `y = x·keep/(1−p)` with the keep mask drawn from Philox (see [`Dropout`]).
    fn dropout_forward(&self, d: &Dropout, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;
    /// `dx = dy·keep/(1−p)`: the mask is regenerated from `(seed, offset)`, never stored.
    fn dropout_backward(&self, d: &Dropout, dy: &Self::Buffer, dx: &mut Self::Buffer)
        -> Result<()>;

    // ---------------------------------------------------------------- upsampling

    /// `[N,C,H,W] → [N,C,H·k,W·k]`.
    fn upsample_forward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
    ) -> Result<()>;
    /// `dx` (overwritten) from `dy`.
    fn upsample_backward(
        &self,
        mode: UpsampleMode,
        shape: &UpsampleShape,
        dy: &Self::Buffer,
        dx: &mut Self::Buffer,
    ) -> Result<()>;

    // ---------------------------------------------------------------- element-wise

    /// `out = a + b` (residual add).
    fn add(&self, a: &Self::Buffer, b: &Self::Buffer, out: &mut Self::Buffer) -> Result<()>;
    /// `x ← alpha·x`.
    fn scale(&self, x: &mut Self::Buffer, alpha: f64) -> Result<()>;
    /// `y ← alpha·x + y`.
    fn axpy(&self, alpha: f64, x: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;

    // ---------------------------------------------------------------- reductions

    /// `out[r] = reduce(x[r, :])` over `x[rows, cols]`.
    fn reduce_rows(
        &self,
        op: RowReduce,
        x: &Self::Buffer,
        out: &mut Self::Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()>;

    // ---------------------------------------------------------------- optimizer

    /// One fused AdamW step over all `tensors` (see [`AdamW`]). When `grad_norm` is
    /// given (a 1-element buffer) the global gradient norm before clipping is written
    /// there, on the device, so logging it costs no extra sync.
    fn adamw_step(
        &self,
        cfg: &AdamW,
        tensors: &mut [AdamWTensor<'_, Self>],
        grad_norm: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    // ---------------------------------------------------------------- randomness

    /// Uniforms in [0, 1): element `i` = (top 24 bits of Philox word `i`)·2⁻²⁴.
    fn fill_uniform(&self, out: &mut Self::Buffer, seed: u64, offset: u64) -> Result<()>;
    /// Normals `mean + std·z`, Box–Muller on word pairs (see [`crate::philox`]).
    fn fill_normal(
        &self,
        out: &mut Self::Buffer,
        seed: u64,
        offset: u64,
        mean: f64,
        std: f64,
    ) -> Result<()>;
    /// The raw 32-bit Philox words, for bit-exact cross-backend checks: `out[2i]` =
    /// high 16 bits of word `i`, `out[2i+1]` = low 16 bits (both exact in any float).
    fn philox_bits(&self, out: &mut Self::Buffer, seed: u64, offset: u64) -> Result<()>;
}
