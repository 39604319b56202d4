//! Fused scheduler step, add_noise and classifier-free guidance: one invocation per
//! element, in element ranges past the storage binding limit.
//!
//! The scheduler step folds the prediction-type algebra into per-call coefficients
//! computed in f64 on the host (as the CPU backend does): x̂₀ = p·m + q·x and
//! ε̂ = r·m + s·x are linear in the model output m and the sample x, so without
//! clipping `prev = (c_x0·p + c_eps·r)·m + (c_x0·q + c_eps·s + c_sample)·x + c_noise·n`,
//! and no f32 cancellation happens inside ε̂ or x̂₀. With clipping x̂₀ is formed and
//! clamped first: `prev = c_x0·clamp(p·m + q·x) + (c_eps·r)·m + (c_eps·s + c_sample)·x
//! + c_noise·n`. Like the reference, ε̂ comes from the unclipped prediction (diffusers'
//! default), x is not read when no term uses it, and noise is not read when
//! `c_noise = 0`.

use crate::gpu::{Kernel, Params, Part, Shader};
use crate::{WgpuBackend, WgpuBuffer, WG};
use brain_core::{check, PredictionType, Result, SchedulerStep};

static SHADER: Shader = shader!("diffusion.wgsl");
const STEP: Kernel = Kernel::new(
    &SHADER,
    "scheduler_step",
    &[(1, true), (2, true), (4, true), (3, false)],
);
const STEP_X0: Kernel = Kernel::new(
    &SHADER,
    "scheduler_step_x0",
    &[(1, true), (2, true), (4, true), (3, false), (5, false)],
);
const ADD_NOISE: Kernel = Kernel::new(
    &SHADER,
    "add_noise",
    &[(1, true), (2, true), (4, true), (3, false)],
);
const GUIDANCE: Kernel = Kernel::new(
    &SHADER,
    "guidance_combine",
    &[(1, true), (2, true), (3, false)],
);

// Flags of the step (see diffusion.wgsl).
const X0_IS_M: usize = 1;
const USE_X: usize = 2;
const CLIP: usize = 4;
const NOISE: usize = 8;

/// The words after `n` of the step's uniform block: flags, then the folded
/// coefficients.
fn step_params(op: &'static str, step: &SchedulerStep) -> Result<Params> {
    let at = step.alpha_prod_t;
    let a = at.sqrt();
    let b = (1.0 - at).sqrt();
    let use_eps = step.coef_eps != 0.0;
    // x̂₀ = p·m + q·x, ε̂ = r·m + s·x
    let (p, q, r, s) = match step.prediction {
        PredictionType::Epsilon => (-b / a, 1.0 / a, 1.0, 0.0),
        PredictionType::VPrediction => (-b, a, a, b),
        PredictionType::Sample if use_eps => (1.0, 0.0, -a / b, 1.0 / b),
        PredictionType::Sample => (1.0, 0.0, 0.0, 0.0),
    };
    let (cx, ce, cs) = (step.coef_x0, step.coef_eps, step.coef_sample);
    let (a_m, a_x) = if step.clip_sample.is_some() {
        (ce * r, ce * s + cs)
    } else {
        (cx * p + ce * r, cx * q + ce * s + cs)
    };
    let x0_is_m = step.prediction == PredictionType::Sample;
    // x enters x̂₀ unless the model predicts the sample; ε̂ when it has a term; or its own.
    let use_x = !x0_is_m || use_eps || cs != 0.0;
    let mut flags = 0;
    if x0_is_m {
        flags |= X0_IS_M;
    }
    if use_x {
        flags |= USE_X;
    }
    if step.clip_sample.is_some() {
        flags |= CLIP;
    }
    if step.coef_noise != 0.0 {
        flags |= NOISE;
    }
    Ok(Params::new()
        .u(op, flags)?
        .u(op, 0)?
        .u(op, 0)?
        .f(p)
        .f(q)
        .f(a_m)
        .f(a_x)
        .f(cx)
        .f(step.coef_noise)
        .f(step.clip_sample.unwrap_or(f64::INFINITY))
        .f(0.0))
}

/// `params` followed by `count` zero scalars (fields another kernel of the shader uses):
/// the uniform block must be as long as the shader's `Params`.
fn unused_scalars(mut params: Params, count: usize) -> Params {
    for _ in 0..count {
        params = params.f(0.0);
    }
    params
}

/// One fused DDPM/DDIM update (see [`SchedulerStep`]).
pub(crate) fn scheduler_step(
    be: &WgpuBackend,
    step: &SchedulerStep,
    model_output: &WgpuBuffer,
    sample: &WgpuBuffer,
    noise: Option<&WgpuBuffer>,
    prev_sample: &mut WgpuBuffer,
    pred_x0: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "scheduler_step";
    check::scheduler_step(
        step,
        model_output.len,
        sample.len,
        noise.map(|b| b.len),
        prev_sample.len,
        pred_x0.as_deref().map(|b| b.len),
    )?;
    let params = step_params(OP, step)?;
    // Without noise (or with c_noise = 0, when it is not read) the model output stands in.
    let nz = noise.map_or(&model_output.buf, |b| &b.buf);
    let n = model_output.len;
    match pred_x0 {
        Some(px) => be.elementwise_chunked(
            OP,
            STEP_X0,
            params,
            &[
                &model_output.buf,
                &sample.buf,
                nz,
                &prev_sample.buf,
                &px.buf,
            ],
            n,
        ),
        None => be.elementwise_chunked(
            OP,
            STEP,
            params,
            &[&model_output.buf, &sample.buf, nz, &prev_sample.buf],
            n,
        ),
    }
}

/// `out[s] = sqrt_alpha_prod[s]·x0[s] + sqrt_one_minus_alpha_prod[s]·noise[s]` per sample.
pub(crate) fn add_noise(
    be: &WgpuBackend,
    x0: &WgpuBuffer,
    noise: &WgpuBuffer,
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "add_noise";
    let per_sample = check::add_noise(
        x0.len,
        noise.len,
        sqrt_alpha_prod,
        sqrt_one_minus_alpha_prod,
        out.len,
    )?;
    if x0.len == 0 {
        return Ok(());
    }
    let batch = sqrt_alpha_prod.len();
    Params::new().u(OP, x0.len)?.u(OP, 2 * batch)?; // absolute indices fit 32 bits
                                                    // Both coefficient lists, each rounded once to f32, in one small storage buffer.
    let coefs: Vec<f32> = sqrt_alpha_prod
        .iter()
        .chain(sqrt_one_minus_alpha_prod)
        .map(|&c| c as f32)
        .collect();
    let coefs = be.gpu.upload(&coefs)?;
    // Element-wise in ranges past one storage binding; each range is told its first
    // element, from which the kernel finds the sample.
    let parts = [
        Part::Rows(&x0.buf, 1),
        Part::Rows(&noise.buf, 1),
        Part::Whole(&coefs),
        Part::Rows(&out.buf, 1),
    ];
    be.gpu
        .dispatch_rows(OP, ADD_NOISE, &parts, x0.len, |first, n| {
            // Params: n, per-sample length, batch, first element, then the step's 8 f32.
            let params = Params::new()
                .u(OP, n)?
                .u(OP, per_sample)?
                .u(OP, batch)?
                .u(OP, first)?;
            Ok((unused_scalars(params, 8), (n as u64).div_ceil(WG)))
        })
}

/// `out = uncond + scale·(cond − uncond)`.
pub(crate) fn guidance_combine(
    be: &WgpuBackend,
    uncond: &WgpuBuffer,
    cond: &WgpuBuffer,
    scale: f64,
    out: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "guidance_combine";
    check::guidance_combine(uncond.len, cond.len, scale, out.len)?;
    // Params: n (prepended), flags, batch, pad, the step's 7 f32, then g.
    let params = unused_scalars(Params::new().u(OP, 0)?.u(OP, 0)?.u(OP, 0)?, 7);
    be.elementwise_chunked(
        OP,
        GUIDANCE,
        params.f(scale),
        &[&uncond.buf, &cond.buf, &out.buf],
        uncond.len,
    )
}
