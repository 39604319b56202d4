//! The case list: every [`brain_core::Backend`] kernel, forward and backward, the
//! composite losses, and one training step of each model, at one shape set; each case
//! knows the bytes it moves and the flops it does, so that it can be placed against a
//! device's floors ([`crate::floors`]).
//!
//! Bytes are the least any implementation moves: every input read once, every output
//! written once, and accumulated outputs (`+=`: parameter and loss-input gradients)
//! read and written, 4 bytes per f32. Flops are counted where arithmetic can set the
//! floor: GEMM-like products at 2·m·n·k, the models at 6·parameters·batch (forward 2,
//! backward 4 per parameter and sample). Element-wise arithmetic is not counted (those
//! kernels are judged against bandwidth), so kernels heavy in transcendental functions
//! (GELU, Philox, Box–Muller, the Sobel magnitude's square roots) have floors they
//! cannot reach.

use crate::shapes::{ShapeSet, Shapes};
use brain_core::model::ModelConfig;
use brain_core::{
    Activation, ContrastiveLoss, Gemm, GroupNormShape, HsicEstimator, ImageShape, RowReduce,
    SobelLossForm, UpsampleMode, UpsampleShape,
};
use serde_json::{json, Value};

/// A composite loss: forward and backward of a `brain_core::loss` type (or the Sobel
/// loss kernels), gradients of both inputs (the Sobel loss: of the prediction only),
/// as `benches/pytorch/time_losses.py` times them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// `mse_forward` + `mse_backward`.
    Mse,
    /// `CkaLoss` with the given estimator.
    Cka(HsicEstimator),
    /// `sims_forward` + `sims_backward`.
    Sims,
    /// `MultiGranularityLoss`: (1 − CKA) + Sims.
    Mg,
    /// `ClipLoss` at τ = 0.005.
    Clip(ContrastiveLoss),
    /// Sobel loss (magnitude) on latents, gradient of the prediction.
    Sobel,
}

/// Which model a training step runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelKind {
    /// `brain_core::model::BrainMclip`.
    BrainMclip,
    /// `brain_core::model::Havir`.
    Havir,
}

/// One benchmarked operation with its dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `gemm`.
    Gemm(Gemm),
    /// `linear_forward` with bias.
    LinearFwd {
        /// Rows.
        rows: usize,
        /// In features.
        inp: usize,
        /// Out features.
        out: usize,
    },
    /// `linear_backward`: dx, dweight and dbias.
    LinearBwd {
        /// Rows.
        rows: usize,
        /// In features.
        inp: usize,
        /// Out features.
        out: usize,
    },
    /// `bias_add` over `[outer, channels, 1]`.
    BiasAdd {
        /// Rows.
        outer: usize,
        /// Channels.
        channels: usize,
    },
    /// `bias_backward` over `[outer, channels, 1]`.
    BiasBwd {
        /// Rows.
        outer: usize,
        /// Channels.
        channels: usize,
    },
    /// `activation_forward` on `len` elements.
    ActFwd(Activation, usize),
    /// `activation_backward` on `len` elements.
    ActBwd(Activation, usize),
    /// `layernorm_forward`.
    LayerNormFwd {
        /// Rows.
        rows: usize,
        /// Normalised width.
        cols: usize,
    },
    /// `layernorm_backward`.
    LayerNormBwd {
        /// Rows.
        rows: usize,
        /// Normalised width.
        cols: usize,
    },
    /// `groupnorm_forward`.
    GroupNormFwd(GroupNormShape),
    /// `groupnorm_backward`.
    GroupNormBwd(GroupNormShape),
    /// `dropout_forward`, p = 0.15.
    DropoutFwd(usize),
    /// `dropout_backward`, p = 0.15.
    DropoutBwd(usize),
    /// `upsample_forward`.
    UpsampleFwd(UpsampleMode, UpsampleShape),
    /// `upsample_backward`.
    UpsampleBwd(UpsampleMode, UpsampleShape),
    /// `add`.
    Add(usize),
    /// `scale`.
    Scale(usize),
    /// `axpy`.
    Axpy(usize),
    /// `reduce_rows`.
    ReduceRows(RowReduce, usize, usize),
    /// `adamw_step` over `tensors` tensors of `params` parameters in all, writing the
    /// gradient norm.
    AdamW {
        /// Tensors.
        tensors: usize,
        /// Parameters in all.
        params: usize,
    },
    /// `philox_bits` into `len` elements.
    PhiloxBits(usize),
    /// `fill_uniform`.
    Uniform(usize),
    /// `fill_normal`.
    Normal(usize),
    /// `mse_forward`.
    MseFwd(usize),
    /// `mse_backward`, both gradients.
    MseBwd(usize),
    /// `cka_grams_forward` on `n×n` Gram matrices (4 outputs).
    CkaGramsFwd(HsicEstimator, usize),
    /// `cka_grams_backward`, both gradients.
    CkaGramsBwd(HsicEstimator, usize),
    /// `sims_forward` on `[batch, tokens, dim]`.
    SimsFwd(usize, usize, usize),
    /// `sims_backward`, both gradients.
    SimsBwd(usize, usize, usize),
    /// `l2_normalize_rows_forward`.
    L2NormFwd {
        /// Rows.
        rows: usize,
        /// Row width.
        cols: usize,
    },
    /// `l2_normalize_rows_backward`.
    L2NormBwd {
        /// Rows.
        rows: usize,
        /// Row width.
        cols: usize,
    },
    /// `contrastive_forward` on `n×n` logits.
    ContrastiveFwd(ContrastiveLoss, usize),
    /// `contrastive_backward`.
    ContrastiveBwd(ContrastiveLoss, usize),
    /// `clip_logits_forward`.
    ClipLogitsFwd(ContrastiveLoss, usize),
    /// `clip_logits_backward`.
    ClipLogitsBwd(ContrastiveLoss, usize),
    /// `clip_grams_forward` on `[n, d]` inputs.
    ClipGramsFwd(ContrastiveLoss, usize, usize),
    /// `clip_inputs_backward` on `[n, d]` inputs, both gradients.
    ClipInputsBwd(ContrastiveLoss, usize, usize),
    /// `sobel_forward`.
    SobelFwd(ImageShape),
    /// `sobel_backward` from all three output gradients.
    SobelBwd(ImageShape),
    /// `sobel_loss_forward` (magnitude form).
    SobelLossFwd(ImageShape),
    /// `sobel_loss_backward` (magnitude form), gradient of the prediction.
    SobelLossBwd(ImageShape),
    /// `scheduler_step`: one DDIM step of Versatile Diffusion's scheduler (η = 0).
    SchedulerStep(ImageShape),
    /// `add_noise` with per-sample coefficients.
    AddNoise(ImageShape),
    /// `guidance_combine`.
    Guidance(ImageShape),
    /// A composite loss, forward + backward, on tokens (latents for Sobel).
    Loss(LossKind, (usize, usize, usize), ImageShape),
    /// One training step of a model: forward (train mode), loss, backward, AdamW.
    Step(ModelKind, ModelConfig, usize),
}

/// What a case is judged by: flops and least bytes moved per call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Cost {
    /// Floating-point operations (an FMA is 2); 0 where arithmetic is not counted.
    pub flops: f64,
    /// Least bytes moved.
    pub bytes: f64,
}

/// A case: an operation at a shape set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    /// The shape set it belongs to.
    pub set: ShapeSet,
    /// What it runs.
    pub op: Op,
}

const F32: f64 = 4.0;

fn act_name(a: Activation) -> &'static str {
    match a {
        Activation::GeluErf => "gelu_erf",
        Activation::GeluTanh => "gelu_tanh",
        Activation::Silu => "silu",
    }
}

fn reduce_name(r: RowReduce) -> &'static str {
    match r {
        RowReduce::Sum => "sum",
        RowReduce::Mean => "mean",
        RowReduce::Max => "max",
        RowReduce::LogSumExp => "logsumexp",
        RowReduce::SumSquares => "sum_squares",
    }
}

fn est_name(e: HsicEstimator) -> &'static str {
    match e {
        HsicEstimator::Biased => "biased",
        HsicEstimator::Unbiased => "unbiased",
    }
}

fn clip_name(k: ContrastiveLoss) -> &'static str {
    match k {
        ContrastiveLoss::SoftClip => "softclip",
        ContrastiveLoss::InfoNce => "infonce",
    }
}

fn mode_name(m: UpsampleMode) -> &'static str {
    match m {
        UpsampleMode::Nearest => "nearest",
        UpsampleMode::Bilinear => "bilinear",
    }
}

fn img(s: &ImageShape) -> String {
    format!("{}x{}x{}x{}", s.batch, s.channels, s.height, s.width)
}

impl Op {
    /// Kernel name, also the criterion function id and the PyTorch script's key:
    /// `gemm_nt`, `layernorm_bwd`, `loss_mg`, `step_havir`, ….
    pub fn name(&self) -> String {
        use Op::*;
        match *self {
            Gemm(g) => {
                let t = |x: bool| if x { 't' } else { 'n' };
                format!("gemm_{}{}", t(g.trans_a), t(g.trans_b))
            }
            LinearFwd { .. } => "linear_fwd".into(),
            LinearBwd { .. } => "linear_bwd".into(),
            BiasAdd { .. } => "bias_add".into(),
            BiasBwd { .. } => "bias_bwd".into(),
            ActFwd(a, _) => format!("{}_fwd", act_name(a)),
            ActBwd(a, _) => format!("{}_bwd", act_name(a)),
            LayerNormFwd { .. } => "layernorm_fwd".into(),
            LayerNormBwd { .. } => "layernorm_bwd".into(),
            GroupNormFwd(_) => "groupnorm_fwd".into(),
            GroupNormBwd(_) => "groupnorm_bwd".into(),
            DropoutFwd(_) => "dropout_fwd".into(),
            DropoutBwd(_) => "dropout_bwd".into(),
            UpsampleFwd(m, _) => format!("upsample_{}_fwd", mode_name(m)),
            UpsampleBwd(m, _) => format!("upsample_{}_bwd", mode_name(m)),
            Add(_) => "add".into(),
            Scale(_) => "scale".into(),
            Axpy(_) => "axpy".into(),
            ReduceRows(r, _, _) => format!("reduce_{}", reduce_name(r)),
            AdamW { .. } => "adamw".into(),
            PhiloxBits(_) => "philox_bits".into(),
            Uniform(_) => "fill_uniform".into(),
            Normal(_) => "fill_normal".into(),
            MseFwd(_) => "mse_fwd".into(),
            MseBwd(_) => "mse_bwd".into(),
            CkaGramsFwd(e, _) => format!("cka_grams_{}_fwd", est_name(e)),
            CkaGramsBwd(e, _) => format!("cka_grams_{}_bwd", est_name(e)),
            SimsFwd(..) => "sims_fwd".into(),
            SimsBwd(..) => "sims_bwd".into(),
            L2NormFwd { .. } => "l2norm_fwd".into(),
            L2NormBwd { .. } => "l2norm_bwd".into(),
            ContrastiveFwd(k, _) => format!("contrastive_{}_fwd", clip_name(k)),
            ContrastiveBwd(k, _) => format!("contrastive_{}_bwd", clip_name(k)),
            ClipLogitsFwd(k, _) => format!("clip_logits_{}_fwd", clip_name(k)),
            ClipLogitsBwd(k, _) => format!("clip_logits_{}_bwd", clip_name(k)),
            ClipGramsFwd(k, ..) => format!("clip_grams_{}_fwd", clip_name(k)),
            ClipInputsBwd(k, ..) => format!("clip_inputs_{}_bwd", clip_name(k)),
            SobelFwd(_) => "sobel_fwd".into(),
            SobelBwd(_) => "sobel_bwd".into(),
            SobelLossFwd(_) => "sobel_loss_fwd".into(),
            SobelLossBwd(_) => "sobel_loss_bwd".into(),
            SchedulerStep(_) => "scheduler_step_ddim".into(),
            AddNoise(_) => "add_noise".into(),
            Guidance(_) => "guidance_combine".into(),
            Loss(k, ..) => match k {
                LossKind::Mse => "loss_mse".into(),
                LossKind::Cka(e) => format!("loss_cka_{}", est_name(e)),
                LossKind::Sims => "loss_sims".into(),
                LossKind::Mg => "loss_mg".into(),
                LossKind::Clip(c) => format!("loss_{}", clip_name(c)),
                LossKind::Sobel => "loss_sobel".into(),
            },
            Step(m, ..) => match m {
                ModelKind::BrainMclip => "step_brainmclip".into(),
                ModelKind::Havir => "step_havir".into(),
            },
        }
    }

    /// The dimensions, as short text: `m×n×k` for GEMM, `rows×in→out` for Linear, the
    /// tensor shape otherwise, `batch 16, 0.74B params` for a model step.
    pub fn shape(&self) -> String {
        use Op::*;
        match *self {
            Gemm(g) => format!("{}x{}x{}", g.m, g.n, g.k),
            LinearFwd { rows, inp, out } | LinearBwd { rows, inp, out } => {
                format!("{rows}x{inp}->{out}")
            }
            BiasAdd { outer, channels } | BiasBwd { outer, channels } => {
                format!("{outer}x{channels}")
            }
            ActFwd(_, n)
            | ActBwd(_, n)
            | DropoutFwd(n)
            | DropoutBwd(n)
            | Add(n)
            | Scale(n)
            | Axpy(n)
            | PhiloxBits(n)
            | Uniform(n)
            | Normal(n)
            | MseFwd(n)
            | MseBwd(n) => {
                format!("{n}")
            }
            LayerNormFwd { rows, cols }
            | LayerNormBwd { rows, cols }
            | L2NormFwd { rows, cols }
            | L2NormBwd { rows, cols }
            | ReduceRows(_, rows, cols) => format!("{rows}x{cols}"),
            GroupNormFwd(g) | GroupNormBwd(g) => {
                format!("{}x{}x{}/g{}", g.batch, g.channels, g.spatial, g.groups)
            }
            UpsampleFwd(_, u) | UpsampleBwd(_, u) => format!(
                "{}x{}x{}x{}*{}",
                u.batch, u.channels, u.height, u.width, u.factor
            ),
            AdamW { tensors, params } => format!("{params}/{tensors}t"),
            CkaGramsFwd(_, n)
            | CkaGramsBwd(_, n)
            | ContrastiveFwd(_, n)
            | ContrastiveBwd(_, n)
            | ClipLogitsFwd(_, n)
            | ClipLogitsBwd(_, n) => format!("{n}x{n}"),
            SimsFwd(b, t, d) | SimsBwd(b, t, d) => format!("{b}x{t}x{d}"),
            ClipGramsFwd(_, n, d) | ClipInputsBwd(_, n, d) => format!("{n}x{d}"),
            SobelFwd(s) | SobelBwd(s) | SobelLossFwd(s) | SobelLossBwd(s) | SchedulerStep(s)
            | AddNoise(s) | Guidance(s) => img(&s),
            Loss(k, (b, t, d), lat) => match k {
                LossKind::Sobel => img(&lat),
                _ => format!("{b}x{t}x{d}"),
            },
            Step(_, cfg, batch) => {
                format!("batch {batch}, {:.3e} params", param_count(&cfg) as f64)
            }
        }
    }

    /// Flops and least bytes of one call (module docs).
    pub fn cost(&self) -> Cost {
        use Op::*;
        let c = |flops: f64, elems: f64| Cost {
            flops,
            bytes: F32 * elems,
        };
        let u = |x: usize| x as f64;
        match *self {
            Gemm(g) => {
                let (m, n, k, b) = (u(g.m), u(g.n), u(g.k), u(g.batch));
                let c_passes = if g.beta == 0.0 { 1.0 } else { 2.0 };
                c(g.flops(), b * (m * k + k * n + c_passes * m * n))
            }
            LinearFwd { rows, inp, out } => {
                let (r, i, o) = (u(rows), u(inp), u(out));
                c(2.0 * r * i * o, r * i + o * i + o + r * o)
            }
            LinearBwd { rows, inp, out } => {
                let (r, i, o) = (u(rows), u(inp), u(out));
                // read dy, x, W; write dx; read-modify-write dW and db.
                c(4.0 * r * i * o, r * o + 2.0 * r * i + 3.0 * o * i + 2.0 * o)
            }
            BiasAdd { outer, channels } => c(0.0, 2.0 * u(outer) * u(channels) + u(channels)),
            BiasBwd { outer, channels } => c(0.0, u(outer) * u(channels) + 2.0 * u(channels)),
            ActFwd(_, n) | DropoutFwd(n) | DropoutBwd(n) | Scale(n) => c(0.0, 2.0 * u(n)),
            ActBwd(_, n) | Add(n) | Axpy(n) => c(0.0, 3.0 * u(n)),
            LayerNormFwd { rows, cols } => {
                let (r, cl) = (u(rows), u(cols));
                c(0.0, 2.0 * r * cl + 2.0 * cl + 2.0 * r)
            }
            LayerNormBwd { rows, cols } => {
                let (r, cl) = (u(rows), u(cols));
                c(0.0, 3.0 * r * cl + cl + 2.0 * r + 4.0 * cl)
            }
            GroupNormFwd(g) => {
                let n = u(g.batch * g.channels * g.spatial);
                c(
                    0.0,
                    2.0 * n + 2.0 * u(g.channels) + 2.0 * u(g.batch * g.groups),
                )
            }
            GroupNormBwd(g) => {
                let n = u(g.batch * g.channels * g.spatial);
                c(
                    0.0,
                    3.0 * n + 5.0 * u(g.channels) + 2.0 * u(g.batch * g.groups),
                )
            }
            UpsampleFwd(_, s) | UpsampleBwd(_, s) => c(0.0, u(s.input_len()) + u(s.output_len())),
            ReduceRows(_, rows, cols) => c(0.0, u(rows) * u(cols) + u(rows)),
            AdamW { params, .. } => c(0.0, 7.0 * u(params) + 1.0),
            PhiloxBits(n) | Uniform(n) | Normal(n) => c(0.0, u(n)),
            MseFwd(n) => c(0.0, 2.0 * u(n) + 1.0),
            MseBwd(n) => c(0.0, 6.0 * u(n)),
            CkaGramsFwd(_, n) => c(0.0, 2.0 * u(n * n) + 4.0),
            CkaGramsBwd(_, n) => c(0.0, 4.0 * u(n * n)),
            SimsFwd(b, t, d) => c(0.0, 2.0 * u(b * t * d) + 1.0),
            SimsBwd(b, t, d) => c(0.0, 6.0 * u(b * t * d)),
            L2NormFwd { rows, cols } => c(0.0, 2.0 * u(rows * cols) + u(rows)),
            L2NormBwd { rows, cols } => c(0.0, 3.0 * u(rows * cols) + u(rows)),
            ContrastiveFwd(k, n) => c(0.0, mats(k) * u(n * n) + 1.0),
            ContrastiveBwd(k, n) => c(0.0, 2.0 * mats(k) * u(n * n)),
            ClipLogitsFwd(k, n) => c(0.0, 2.0 * mats(k) * u(n * n) + 2.0 * u(n)),
            ClipLogitsBwd(k, n) => {
                // read logits and their gradients, p_sq, t_sq; write w_pt, d_p, w_tt.
                c(0.0, 2.0 * mats(k) * u(n * n) + 2.0 * u(n) + 3.0 * u(n * n))
            }
            ClipGramsFwd(k, n, d) => {
                let (n, d) = (u(n), u(d));
                c(
                    2.0 * mats(k) * n * n * d + 4.0 * n * d,
                    2.0 * n * d + 2.0 * n + mats(k) * n * n,
                )
            }
            ClipInputsBwd(k, n, d) => {
                let (n, d) = (u(n), u(d));
                let products = match k {
                    ContrastiveLoss::SoftClip => 3.0,
                    ContrastiveLoss::InfoNce => 2.0,
                };
                c(
                    2.0 * products * n * n * d,
                    3.0 * n * n + 2.0 * n * d + 4.0 * n * d,
                )
            }
            SobelFwd(s) => c(0.0, 4.0 * u(s.len())),
            SobelBwd(s) => c(0.0, 5.0 * u(s.len())),
            SobelLossFwd(s) => c(0.0, 2.0 * u(s.len()) + 1.0),
            SobelLossBwd(s) => c(0.0, 4.0 * u(s.len())),
            SchedulerStep(s) | AddNoise(s) | Guidance(s) => c(0.0, 3.0 * u(s.len())),
            Loss(k, (b, t, d), lat) => {
                let (n, w) = (u(b), u(t * d));
                let io = 4.0 * n * w; // read a, b; write da, db
                let gram = 2.0 * n * n * w;
                match k {
                    LossKind::Mse | LossKind::Sims => c(0.0, io),
                    LossKind::Cka(_) | LossKind::Mg => c(4.0 * gram, io),
                    LossKind::Clip(ContrastiveLoss::SoftClip) => c(5.0 * gram, io),
                    LossKind::Clip(ContrastiveLoss::InfoNce) => c(3.0 * gram, io),
                    LossKind::Sobel => c(0.0, 3.0 * u(lat.len())),
                }
            }
            Step(_, cfg, batch) => {
                let p = param_count(&cfg) as f64;
                // Weights read forward and backward, gradients written, AdamW's 7 streams.
                c(6.0 * p * u(batch), 10.0 * p)
            }
        }
    }

    /// The dimensions as JSON, for the PyTorch script (`time_kernels.py`).
    pub fn params(&self) -> Value {
        use Op::*;
        match *self {
            Gemm(g) => json!({"m": g.m, "n": g.n, "k": g.k,
                "trans_a": g.trans_a, "trans_b": g.trans_b}),
            LinearFwd { rows, inp, out } | LinearBwd { rows, inp, out } => {
                json!({"rows": rows, "in": inp, "out": out})
            }
            BiasAdd { outer, channels } | BiasBwd { outer, channels } => {
                json!({"outer": outer, "channels": channels})
            }
            ActFwd(a, n) | ActBwd(a, n) => json!({"act": act_name(a), "len": n}),
            DropoutFwd(n) | DropoutBwd(n) => json!({"len": n, "p": DROPOUT_P}),
            Add(n) | Scale(n) | Axpy(n) | PhiloxBits(n) | Uniform(n) | Normal(n) | MseFwd(n)
            | MseBwd(n) => json!({"len": n}),
            LayerNormFwd { rows, cols }
            | LayerNormBwd { rows, cols }
            | L2NormFwd { rows, cols }
            | L2NormBwd { rows, cols } => json!({"rows": rows, "cols": cols}),
            ReduceRows(r, rows, cols) => {
                json!({"op": reduce_name(r), "rows": rows, "cols": cols})
            }
            GroupNormFwd(g) | GroupNormBwd(g) => json!({"batch": g.batch,
                "channels": g.channels, "spatial": g.spatial, "groups": g.groups}),
            UpsampleFwd(m, s) | UpsampleBwd(m, s) => json!({"mode": mode_name(m),
                "shape": [s.batch, s.channels, s.height, s.width], "factor": s.factor}),
            AdamW { tensors, params } => json!({"tensors": tensors, "params": params}),
            CkaGramsFwd(e, n) | CkaGramsBwd(e, n) => {
                json!({"estimator": est_name(e), "n": n})
            }
            SimsFwd(b, t, d) | SimsBwd(b, t, d) => json!({"shape": [b, t, d]}),
            ContrastiveFwd(k, n)
            | ContrastiveBwd(k, n)
            | ClipLogitsFwd(k, n)
            | ClipLogitsBwd(k, n) => {
                json!({"kind": clip_name(k), "n": n, "temperature": TEMPERATURE})
            }
            ClipGramsFwd(k, n, d) | ClipInputsBwd(k, n, d) => {
                json!({"kind": clip_name(k), "n": n, "d": d})
            }
            SobelFwd(s) | SobelBwd(s) | SobelLossFwd(s) | SobelLossBwd(s) | SchedulerStep(s)
            | AddNoise(s) | Guidance(s) => {
                json!({"shape": [s.batch, s.channels, s.height, s.width]})
            }
            Loss(_, (b, t, d), s) => json!({"tokens": [b, t, d],
                "latents": [s.batch, s.channels, s.height, s.width],
                "temperature": TEMPERATURE}),
            Step(_, cfg, batch) => json!({
                "config": serde_json::to_value(cfg).unwrap_or(Value::Null),
                "batch": batch,
                "params": param_count(&cfg),
            }),
        }
    }
}

/// Number of `n×n` logit matrices of a contrastive kind (SoftCLIP: C_pt and C_tt).
fn mats(k: ContrastiveLoss) -> f64 {
    match k {
        ContrastiveLoss::SoftClip => 2.0,
        ContrastiveLoss::InfoNce => 1.0,
    }
}

fn param_count(cfg: &ModelConfig) -> usize {
    match cfg {
        ModelConfig::BrainMclip(c) => c.param_count(),
        ModelConfig::Havir(c) => c.param_count(),
    }
}

/// Dropout probability of the dropout cases (the `paper` presets').
pub const DROPOUT_P: f64 = 0.15;
/// Temperature of the contrastive cases (SPEC default).
pub const TEMPERATURE: f64 = 0.005;

impl Case {
    /// `small/gemm_nn/512x512x512`: unique within a report.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.set, self.op.name(), self.op.shape())
    }
    /// See [`Op::name`].
    pub fn name(&self) -> String {
        self.op.name()
    }
    /// See [`Op::shape`].
    pub fn shape(&self) -> String {
        self.op.shape()
    }
    /// See [`Op::cost`].
    pub fn cost(&self) -> Cost {
        self.op.cost()
    }
    /// Whether this is a model training step (slow to build, big in memory).
    pub fn is_model_step(&self) -> bool {
        matches!(self.op, Op::Step(..))
    }
}

/// Every case of one shape set, in a fixed order: GEMM and Linear, the layer
/// kernels, element-wise and reductions, optimizer and randomness, loss kernels,
/// Sobel, diffusion, the composite losses, then the two model steps.
pub fn cases(set: ShapeSet) -> Vec<Case> {
    let s: Shapes = set.shapes();
    let mut ops = Vec::new();
    let (gm, gn, gk) = s.gemm;
    for (ta, tb) in [(false, false), (false, true), (true, false)] {
        ops.push(Op::Gemm(Gemm::new(gm, gn, gk).trans(ta, tb)));
    }
    let (rows, inp, out) = s.linear;
    ops.push(Op::LinearFwd { rows, inp, out });
    ops.push(Op::LinearBwd { rows, inp, out });
    let (r, c) = s.rows_cols;
    ops.push(Op::BiasAdd {
        outer: r,
        channels: c,
    });
    ops.push(Op::BiasBwd {
        outer: r,
        channels: c,
    });
    for a in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
        ops.push(Op::ActFwd(a, s.elems));
        ops.push(Op::ActBwd(a, s.elems));
    }
    ops.push(Op::LayerNormFwd { rows: r, cols: c });
    ops.push(Op::LayerNormBwd { rows: r, cols: c });
    ops.push(Op::GroupNormFwd(s.groupnorm));
    ops.push(Op::GroupNormBwd(s.groupnorm));
    ops.push(Op::DropoutFwd(s.elems));
    ops.push(Op::DropoutBwd(s.elems));
    for m in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        ops.push(Op::UpsampleFwd(m, s.upsample));
        ops.push(Op::UpsampleBwd(m, s.upsample));
    }
    ops.push(Op::Add(s.elems));
    ops.push(Op::Scale(s.elems));
    ops.push(Op::Axpy(s.elems));
    for red in [
        RowReduce::Sum,
        RowReduce::Mean,
        RowReduce::Max,
        RowReduce::LogSumExp,
        RowReduce::SumSquares,
    ] {
        ops.push(Op::ReduceRows(red, r, c));
    }
    ops.push(Op::AdamW {
        tensors: s.adamw.0,
        params: s.adamw.1,
    });
    ops.push(Op::PhiloxBits(s.elems));
    ops.push(Op::Uniform(s.elems));
    ops.push(Op::Normal(s.elems));

    let (b, t, d) = s.tokens;
    let n_tok = b * t * d;
    ops.push(Op::MseFwd(n_tok));
    ops.push(Op::MseBwd(n_tok));
    for e in [HsicEstimator::Biased, HsicEstimator::Unbiased] {
        ops.push(Op::CkaGramsFwd(e, b));
        ops.push(Op::CkaGramsBwd(e, b));
    }
    ops.push(Op::SimsFwd(b, t, d));
    ops.push(Op::SimsBwd(b, t, d));
    ops.push(Op::L2NormFwd {
        rows: b,
        cols: t * d,
    });
    ops.push(Op::L2NormBwd {
        rows: b,
        cols: t * d,
    });
    for k in [ContrastiveLoss::SoftClip, ContrastiveLoss::InfoNce] {
        ops.push(Op::ContrastiveFwd(k, b));
        ops.push(Op::ContrastiveBwd(k, b));
        ops.push(Op::ClipLogitsFwd(k, b));
        ops.push(Op::ClipLogitsBwd(k, b));
        ops.push(Op::ClipGramsFwd(k, b, t * d));
        ops.push(Op::ClipInputsBwd(k, b, t * d));
    }
    let lat = s.latents;
    ops.push(Op::SobelFwd(lat));
    ops.push(Op::SobelBwd(lat));
    ops.push(Op::SobelLossFwd(lat));
    ops.push(Op::SobelLossBwd(lat));
    ops.push(Op::SchedulerStep(lat));
    ops.push(Op::AddNoise(lat));
    ops.push(Op::Guidance(lat));
    for k in [
        LossKind::Mse,
        LossKind::Cka(HsicEstimator::Biased),
        LossKind::Cka(HsicEstimator::Unbiased),
        LossKind::Sims,
        LossKind::Mg,
        LossKind::Clip(ContrastiveLoss::SoftClip),
        LossKind::Clip(ContrastiveLoss::InfoNce),
        LossKind::Sobel,
    ] {
        ops.push(Op::Loss(k, s.tokens, lat));
    }
    ops.push(Op::Step(
        ModelKind::BrainMclip,
        ModelConfig::BrainMclip(s.brainmclip),
        s.model_batch,
    ));
    ops.push(Op::Step(
        ModelKind::Havir,
        ModelConfig::Havir(s.havir),
        s.model_batch,
    ));
    ops.into_iter().map(|op| Case { set, op }).collect()
}

/// The SobelLossForm every Sobel loss case uses (HAVIR eq. 2).
pub const SOBEL_FORM: SobelLossForm = SobelLossForm::Magnitude;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_are_unique_and_costs_positive() {
        for set in ShapeSet::ALL {
            let cs = cases(set);
            let ids: BTreeSet<String> = cs.iter().map(Case::id).collect();
            assert_eq!(ids.len(), cs.len(), "{set}");
            for c in &cs {
                let k = c.cost();
                assert!(k.bytes > 0.0 && k.flops >= 0.0, "{}", c.id());
            }
        }
    }

    #[test]
    fn gemm_cost_matches_a_hand_count() {
        let k = Op::Gemm(Gemm::new(2, 3, 4)).cost();
        assert_eq!(k.flops, 48.0);
        assert_eq!(k.bytes, 4.0 * (8.0 + 12.0 + 6.0));
    }
}
