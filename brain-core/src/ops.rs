//! Parameter types of the kernels: small `Copy` structs so call sites read as what
//! they mean and every backend receives exactly the same description.

/// C = alpha·op(A)·op(B) + beta·C, row-major, strided-batched.
///
/// op(A) is `m×k`: A is stored `m×k`, or `k×m` when `trans_a`. op(B) is `k×n`: B is
/// stored `k×n`, or `n×k` when `trans_b`. C is `m×n`. Matrix `i` of the batch starts
/// at `i·stride_*` elements; a stride of 0 broadcasts one matrix over the batch
/// (not allowed for C).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// A is stored transposed (`k×m`).
    pub trans_a: bool,
    /// B is stored transposed (`n×k`).
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f64,
    /// Scale of the existing C (0 overwrites, NaN in C included, as BLAS does).
    pub beta: f64,
    /// Number of matrices.
    pub batch: usize,
    /// Elements between consecutive A matrices.
    pub stride_a: usize,
    /// Elements between consecutive B matrices.
    pub stride_b: usize,
    /// Elements between consecutive C matrices.
    pub stride_c: usize,
}

impl Gemm {
    /// A single `m×k · k×n` product, alpha 1, beta 0.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Gemm {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            batch: 1,
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
        }
    }
    /// Set which operands are stored transposed.
    pub fn trans(mut self, trans_a: bool, trans_b: bool) -> Self {
        self.trans_a = trans_a;
        self.trans_b = trans_b;
        self
    }
    /// Set alpha and beta.
    pub fn scale(mut self, alpha: f64, beta: f64) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }
    /// Make it a batch of `batch` products with the given strides.
    pub fn batched(
        mut self,
        batch: usize,
        stride_a: usize,
        stride_b: usize,
        stride_c: usize,
    ) -> Self {
        self.batch = batch;
        self.stride_a = stride_a;
        self.stride_b = stride_b;
        self.stride_c = stride_c;
        self
    }
    /// A batch of densely packed products (strides = matrix sizes).
    pub fn batched_dense(self, batch: usize) -> Self {
        let (m, n, k) = (self.m, self.n, self.k);
        self.batched(batch, m * k, k * n, m * n)
    }
    /// FLOPs of the whole call (2·m·n·k per matrix).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}

/// Element-wise activation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// x·Φ(x) with the exact normal CDF (PyTorch `approximate='none'`).
    GeluErf,
    /// The tanh approximation (PyTorch `approximate='tanh'`).
    GeluTanh,
    /// x·σ(x).
    Silu,
}

/// Shape of a GroupNorm call on NCHW data (`spatial` = H·W, any trailing dims flattened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupNormShape {
    /// N.
    pub batch: usize,
    /// C, a multiple of `groups`.
    pub channels: usize,
    /// H·W.
    pub spatial: usize,
    /// Number of groups G; statistics are taken over (C/G)·H·W values.
    pub groups: usize,
}

/// Inverted dropout driven by the Philox stream `(seed, offset)`.
///
/// Element `i` is dropped when the top 24 bits of Philox word `i` are below
/// `round(p·2²⁴)`: an integer comparison, so every backend drops the same elements.
/// Kept values are scaled by 1/(1−p).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Drop probability in [0, 1).
    pub p: f64,
    /// Philox key.
    pub seed: u64,
    /// Philox stream (upper half of the counter); use a fresh one per call site and step.
    pub offset: u64,
}

impl Dropout {
    /// Threshold on the 24-bit uniform integer: dropped iff `bits < threshold`.
    pub fn threshold(&self) -> u32 {
        libm::round(self.p * 16_777_216.0) as u32
    }
    /// Scale applied to kept values.
    pub fn keep_scale(&self) -> f64 {
        1.0 / (1.0 - self.p)
    }
}

/// Upsampling rule on NCHW data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpsampleMode {
    /// Output pixel (y, x) copies input (y/k, x/k).
    Nearest,
    /// PyTorch bilinear with `align_corners=False`.
    Bilinear,
}

/// Shape of an integer-factor upsampling: `[N, C, H, W] → [N, C, H·k, W·k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsampleShape {
    /// N.
    pub batch: usize,
    /// C.
    pub channels: usize,
    /// Input H.
    pub height: usize,
    /// Input W.
    pub width: usize,
    /// k ≥ 1.
    pub factor: usize,
}

impl UpsampleShape {
    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }
    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.input_len() * self.factor * self.factor
    }
}

/// Reductions along the last dimension of a `[rows, cols]` tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowReduce {
    /// Σ x.
    Sum,
    /// Σ x / cols.
    Mean,
    /// max x (NaN if any element is NaN).
    Max,
    /// log Σ exp x, max-subtracted.
    LogSumExp,
    /// Σ x² (squared row norms).
    SumSquares,
}

/// Fused AdamW with optional global-norm gradient clipping, PyTorch semantics:
///
/// ```text
/// if max_grad_norm: c = min(1, max_grad_norm / (‖g‖₂ + 1e-6)),  g ← c·g   (‖g‖ over all tensors)
/// p ← p − lr·wd·p
/// m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
/// p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps)
/// ```
/// The clipped gradient is used, not written back: gradients are left as they were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε added to the bias-corrected √v.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Step number t, counted from 1.
    pub step: u64,
    /// Clip the global gradient norm to this value before the update.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamW {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step: 1,
            max_grad_norm: None,
        }
    }
}

/// The epsilon PyTorch's `clip_grad_norm_` adds to the norm.
pub const CLIP_NORM_EPS: f64 = 1e-6;

// ------------------------------------------------------------------ losses

/// Which HSIC estimator linear CKA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HsicEstimator {
    /// tr(KHLH)/(n−1)².
    Biased,
    /// Song et al. (2012); needs n > 3.
    Unbiased,
}

/// Contrastive losses on `n×n` logit matrices (rows of preds against rows of targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContrastiveLoss {
    /// MindEye's SoftCLIP: soft labels softmax(C_tt), both directions.
    SoftClip,
    /// Symmetric CLIP InfoNCE: labels on the diagonal, both directions.
    InfoNce,
}

/// An NCHW image or latent tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// N.
    pub batch: usize,
    /// C.
    pub channels: usize,
    /// H.
    pub height: usize,
    /// W.
    pub width: usize,
}

impl ImageShape {
    /// N·C·H·W.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }
    /// Whether any dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the Sobel loss compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SobelLossForm {
    /// mean((S(pred) − S(target))²) on the magnitude √(gx² + gy² + ε) (HAVIR eq. 2).
    Magnitude,
    /// mean((gx_p − gx_t)²) + mean((gy_p − gy_t)²).
    Components,
}

/// ε inside the Sobel magnitude √(gx² + gy² + ε).
pub const SOBEL_EPS: f64 = 1e-6;

/// ε of PyTorch's `F.normalize`: rows are divided by max(‖x‖, ε).
pub const NORMALIZE_EPS: f64 = 1e-12;

// ------------------------------------------------------------------ diffusion

/// What the denoiser predicts (diffusers' `prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PredictionType {
    /// The noise ε.
    Epsilon,
    /// v = √ᾱ·ε − √(1−ᾱ)·x₀.
    VPrediction,
    /// x₀ itself.
    Sample,
}

/// One fused scheduler update, coefficients computed on the host by the scheduler:
///
/// ```text
/// x̂₀ = from (model_output, sample, ᾱ_t, prediction)    [clamped to ±clip if set]
/// ε̂  = from the same                                    [recomputed from the clamped x̂₀]
/// prev = coef_x0·x̂₀ + coef_eps·ε̂ + coef_sample·sample + coef_noise·noise
/// ```
/// DDIM: coef_x0 = √ᾱ_prev, coef_eps = √(1−ᾱ_prev−σ²), coef_noise = σ.
/// DDPM: coef_x0 = √ᾱ_prev·β_t/(1−ᾱ_t), coef_sample = √α_t·(1−ᾱ_prev)/(1−ᾱ_t),
/// coef_noise = the standard deviation of the chosen variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedulerStep {
    /// What the model output means.
    pub prediction: PredictionType,
    /// ᾱ_t at the current timestep.
    pub alpha_prod_t: f64,
    /// Clamp x̂₀ to [−r, r] (diffusers' `clip_sample` with `clip_sample_range` r).
    pub clip_sample: Option<f64>,
    /// Coefficient of x̂₀.
    pub coef_x0: f64,
    /// Coefficient of ε̂.
    pub coef_eps: f64,
    /// Coefficient of the current sample.
    pub coef_sample: f64,
    /// Coefficient of the caller's noise (0: no noise buffer needed).
    pub coef_noise: f64,
}
