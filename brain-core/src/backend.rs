//! The narrow, kernel-shaped contract every device implements.
//!
//! Conventions for every kernel:
//! - Buffers are contiguous, row-major, of [`Backend::Elem`]; each kernel checks that
//!   every buffer's length equals what its dimensions imply (see [`crate::check`]) and
//!   returns [`BrainError::ShapeMismatch`](crate::BrainError) otherwise.
//! - Outputs are overwritten, except parameter gradients (`dweight`, `dbias`, `dgamma`,
//!   `dbeta`), which are accumulated (`+=`) so that one buffer can gather a batch, and
//!   the input gradients of the losses (`da`, `dpred`, …), which are accumulated too,
//!   so several loss terms on one prediction sum into one buffer.
//! - Losses write their value into a 1-element buffer (no host round trip); their
//!   backward takes `scale` = ∂(total)/∂(this loss), a host constant such as a weight.
//! - Scalars cross the trait as f64 and are rounded once to `Elem`.
//! - Calls may be asynchronous: only `download` and `sync` wait for the device.

use crate::element::Element;
use crate::error::Result;
use crate::ops::{
    Activation, AdamW, ContrastiveLoss, Dropout, Gemm, GroupNormShape, HsicEstimator, ImageShape,
    RowReduce, SchedulerStep, SobelLossForm, UpsampleMode, UpsampleShape,
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
    // ---------------------------------------------------------------- losses

    /// `loss[0] = mean((a − b)²)`.
    fn mse_forward(
        &self,
        a: &Self::Buffer,
        b: &Self::Buffer,
        loss: &mut Self::Buffer,
    ) -> Result<()>;
    /// `da += scale·2(a − b)/N`, `db −= the same`.
    fn mse_backward(
        &self,
        a: &Self::Buffer,
        b: &Self::Buffer,
        scale: f64,
        da: Option<&mut Self::Buffer>,
        db: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// Linear CKA from the `n×n` Gram matrices K = AAᵀ and L = BBᵀ: `out[0] = 1 − CKA`
    /// (the loss); when `out` has 4 elements also `out[1..4] = [HSIC(K,L), HSIC(K,K),
    /// HSIC(L,L)]`. `out` has 1 or 4 elements.
    fn cka_grams_forward(
        &self,
        k: &Self::Buffer,
        l: &Self::Buffer,
        n: usize,
        estimator: HsicEstimator,
        out: &mut Self::Buffer,
    ) -> Result<()>;
    /// Gradient of `scale·(1 − CKA)` with respect to K and L, symmetrised
    /// (G + Gᵀ, overwritten) so that the caller's `dA += dk·A`, `dB += dl·B`.
    fn cka_grams_backward(
        &self,
        k: &Self::Buffer,
        l: &Self::Buffer,
        n: usize,
        estimator: HsicEstimator,
        scale: f64,
        dk: Option<&mut Self::Buffer>,
        dl: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// Sims token loss on `a, b [batch, tokens, dim]`: `loss[0] = mean((s_A − s_B)²)`
    /// with `s_X[b, j] = cos(X[b,0], X[b,j])`, j ≥ 1, norms clamped at 1e-8.
    fn sims_forward(
        &self,
        a: &Self::Buffer,
        b: &Self::Buffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        loss: &mut Self::Buffer,
    ) -> Result<()>;
    /// `da`, `db` accumulated with the gradient of `scale·loss`.
    fn sims_backward(
        &self,
        a: &Self::Buffer,
        b: &Self::Buffer,
        batch: usize,
        tokens: usize,
        dim: usize,
        scale: f64,
        da: Option<&mut Self::Buffer>,
        db: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// `y = x / max(‖x‖, 1e-12)` per row of `x[rows, cols]`; saves `norms[rows]` = ‖x‖.
    fn l2_normalize_rows_forward(
        &self,
        x: &Self::Buffer,
        y: &mut Self::Buffer,
        norms: &mut Self::Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `dx` (overwritten) from `dy` through the row normalisation.
    fn l2_normalize_rows_backward(
        &self,
        dy: &Self::Buffer,
        x: &Self::Buffer,
        norms: &Self::Buffer,
        dx: &mut Self::Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<()>;

    /// Contrastive loss from `n×n` logits C_pt = p̂t̂ᵀ/τ (and, for SoftCLIP, C_tt = t̂t̂ᵀ/τ):
    /// max-subtracted softmax, exact at τ = 0.005.
    fn contrastive_forward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &Self::Buffer,
        logits_tt: Option<&Self::Buffer>,
        n: usize,
        loss: &mut Self::Buffer,
    ) -> Result<()>;
    /// Gradients of `scale·loss` with respect to the logits (overwritten).
    fn contrastive_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &Self::Buffer,
        logits_tt: Option<&Self::Buffer>,
        n: usize,
        scale: f64,
        dlogits_pt: &mut Self::Buffer,
        dlogits_tt: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// Contrastive logits of row-normalised inputs from the Gram matrices of the raw
    /// ones: `logits_pt = G_pt ∘ (r sᵀ)/τ` and, for SoftCLIP, `logits_tt = G_tt ∘ (s sᵀ)/τ`,
    /// with r = 1/max(√p_sq, 1e-12), s = 1/max(√t_sq, 1e-12) (G_pt = P·Tᵀ, G_tt = T·Tᵀ,
    /// p_sq, t_sq the squared row norms). InfoNCE passes no `g_tt` / `logits_tt`.
    fn clip_logits_forward(
        &self,
        kind: ContrastiveLoss,
        g_pt: &Self::Buffer,
        g_tt: Option<&Self::Buffer>,
        p_sq: &Self::Buffer,
        t_sq: &Self::Buffer,
        n: usize,
        temperature: f64,
        logits_pt: &mut Self::Buffer,
        logits_tt: Option<&mut Self::Buffer>,
    ) -> Result<()>;
    /// Backward through [`Backend::clip_logits_forward`] as `n×n` coefficients for the
    /// raw inputs: `dP += w_pt·T + d_p·P`, `dT += w_ptᵀ·P + w_tt·T` (outputs
    /// overwritten; `d_p` diagonal). See `reference::contrastive::clip_logits_backward`.
    fn clip_logits_backward(
        &self,
        kind: ContrastiveLoss,
        logits_pt: &Self::Buffer,
        logits_tt: Option<&Self::Buffer>,
        dlogits_pt: &Self::Buffer,
        dlogits_tt: Option<&Self::Buffer>,
        p_sq: &Self::Buffer,
        t_sq: &Self::Buffer,
        n: usize,
        temperature: f64,
        w_pt: &mut Self::Buffer,
        d_p: Option<&mut Self::Buffer>,
        w_tt: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// The Gram pass of the composite contrastive loss over the raw inputs
    /// `preds`, `targets` `[n, d]`, in one read of each: squared row norms
    /// `p_sq`, `t_sq` `[n]`, `g_pt = P·Tᵀ` and, for SoftCLIP, `g_tt = T·Tᵀ` `[n, n]`
    /// (InfoNCE passes none); all overwritten.
    fn clip_grams_forward(
        &self,
        kind: ContrastiveLoss,
        preds: &Self::Buffer,
        targets: &Self::Buffer,
        n: usize,
        d: usize,
        p_sq: &mut Self::Buffer,
        t_sq: &mut Self::Buffer,
        g_pt: &mut Self::Buffer,
        g_tt: Option<&mut Self::Buffer>,
    ) -> Result<()>;
    /// The coefficients of [`Backend::clip_logits_backward`] applied to the raw inputs
    /// `[n, d]`: `dpreds += w_pt·T + d_p·P`, `dtargets += w_ptᵀ·P + w_tt·T` (both
    /// optional, accumulated). Only the diagonal of `d_p` is read, and for InfoNCE
    /// only that of `w_tt`. See `reference::contrastive::clip_inputs_backward`.
    fn clip_inputs_backward(
        &self,
        kind: ContrastiveLoss,
        w_pt: &Self::Buffer,
        d_p: &Self::Buffer,
        w_tt: &Self::Buffer,
        preds: &Self::Buffer,
        targets: &Self::Buffer,
        n: usize,
        d: usize,
        dpreds: Option<&mut Self::Buffer>,
        dtargets: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    /// Sobel on NCHW, per channel, zero padding 1: gx, gy and √(gx² + gy² + 1e-6).
    fn sobel_forward(
        &self,
        x: &Self::Buffer,
        shape: &ImageShape,
        gx: &mut Self::Buffer,
        gy: &mut Self::Buffer,
        magnitude: &mut Self::Buffer,
    ) -> Result<()>;
    /// `dx` (overwritten) from any of the output gradients.
    fn sobel_backward(
        &self,
        x: &Self::Buffer,
        shape: &ImageShape,
        dgx: Option<&Self::Buffer>,
        dgy: Option<&Self::Buffer>,
        dmagnitude: Option<&Self::Buffer>,
        dx: &mut Self::Buffer,
    ) -> Result<()>;
    /// Fused Sobel loss between `pred` and `target` (see [`SobelLossForm`]).
    fn sobel_loss_forward(
        &self,
        pred: &Self::Buffer,
        target: &Self::Buffer,
        shape: &ImageShape,
        form: SobelLossForm,
        loss: &mut Self::Buffer,
    ) -> Result<()>;
    /// `dpred`, `dtarget` accumulated with the gradient of `scale·loss`.
    fn sobel_loss_backward(
        &self,
        pred: &Self::Buffer,
        target: &Self::Buffer,
        shape: &ImageShape,
        form: SobelLossForm,
        scale: f64,
        dpred: Option<&mut Self::Buffer>,
        dtarget: Option<&mut Self::Buffer>,
    ) -> Result<()>;

    // ---------------------------------------------------------------- diffusion

    /// One fused DDPM/DDIM update (see [`SchedulerStep`]); `noise` is required when
    /// `coef_noise ≠ 0`; `pred_x0` receives x̂₀ when given.
    fn scheduler_step(
        &self,
        step: &SchedulerStep,
        model_output: &Self::Buffer,
        sample: &Self::Buffer,
        noise: Option<&Self::Buffer>,
        prev_sample: &mut Self::Buffer,
        pred_x0: Option<&mut Self::Buffer>,
    ) -> Result<()>;
    /// `out[b] = sqrt_alpha_prod[b]·x0[b] + sqrt_one_minus_alpha_prod[b]·noise[b]` for
    /// each of the `sqrt_alpha_prod.len()` samples (per-sample timesteps).
    fn add_noise(
        &self,
        x0: &Self::Buffer,
        noise: &Self::Buffer,
        sqrt_alpha_prod: &[f64],
        sqrt_one_minus_alpha_prod: &[f64],
        out: &mut Self::Buffer,
    ) -> Result<()>;
    /// Classifier-free guidance: `out = uncond + scale·(cond − uncond)`.
    fn guidance_combine(
        &self,
        uncond: &Self::Buffer,
        cond: &Self::Buffer,
        scale: f64,
        out: &mut Self::Buffer,
    ) -> Result<()>;
}
