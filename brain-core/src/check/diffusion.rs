//! Checks of the diffusion kernels (`scheduler_step`, `add_noise`, `guidance_combine`).

use super::core::*;
use crate::error::Result;
use crate::ops::{PredictionType, SchedulerStep};
use alloc::format;

/// `scheduler_step`: every buffer as long as `model_output`; `noise` present when
/// `coef_noise ≠ 0`; ᾱ_t in (0, 1] (and < 1 when ε̂ divides by √(1−ᾱ_t)); clip range
/// positive; coefficients finite.
pub fn scheduler_step(
    step: &SchedulerStep,
    model_output: usize,
    sample: usize,
    noise: Option<usize>,
    prev_sample: usize,
    pred_x0: Option<usize>,
) -> Result<()> {
    const OP: &str = "scheduler_step";
    len(OP, "sample", sample, model_output)?;
    len(OP, "prev_sample", prev_sample, model_output)?;
    if let Some(n) = noise {
        len(OP, "noise", n, model_output)?;
    }
    if let Some(p) = pred_x0 {
        len(OP, "pred_x0", p, model_output)?;
    }
    let a = step.alpha_prod_t;
    if !(a > 0.0 && a <= 1.0) {
        return Err(invalid(OP, format!("alpha_prod_t {a} must lie in (0, 1]")));
    }
    if step.prediction == PredictionType::Sample && step.coef_eps != 0.0 && !(a < 1.0) {
        return Err(invalid(
            OP,
            "prediction \"sample\" with coef_eps ≠ 0 divides by √(1 − alpha_prod_t): \
             alpha_prod_t must be < 1"
                .into(),
        ));
    }
    if let Some(r) = step.clip_sample {
        if !(r > 0.0) {
            return Err(invalid(
                OP,
                format!("clip_sample range {r} must be positive"),
            ));
        }
    }
    let coefs = [
        step.coef_x0,
        step.coef_eps,
        step.coef_sample,
        step.coef_noise,
    ];
    if coefs.iter().any(|c| !c.is_finite()) {
        return Err(invalid(
            OP,
            format!(
                "coefficients (x0 {}, eps {}, sample {}, noise {}) must be finite",
                coefs[0], coefs[1], coefs[2], coefs[3]
            ),
        ));
    }
    if step.coef_noise != 0.0 && noise.is_none() {
        return Err(invalid(
            OP,
            format!("coef_noise = {} needs a noise buffer", step.coef_noise),
        ));
    }
    Ok(())
}

/// `add_noise`: `x0`, `noise`, `out` of one length that the batch (the number of
/// per-sample coefficients, ≥ 1) divides; both coefficient lists of one length and
/// finite. Returns the per-sample length.
pub fn add_noise(
    x0: usize,
    noise: usize,
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: usize,
) -> Result<usize> {
    const OP: &str = "add_noise";
    let batch = sqrt_alpha_prod.len();
    if batch == 0 {
        return Err(invalid(
            OP,
            "at least one sample (coefficient) is needed".into(),
        ));
    }
    len(
        OP,
        "sqrt_one_minus_alpha_prod",
        sqrt_one_minus_alpha_prod.len(),
        batch,
    )?;
    len(OP, "noise", noise, x0)?;
    len(OP, "out", out, x0)?;
    if x0 % batch != 0 {
        return Err(invalid(
            OP,
            format!("{x0} elements do not split into {batch} samples"),
        ));
    }
    if sqrt_alpha_prod
        .iter()
        .chain(sqrt_one_minus_alpha_prod)
        .any(|c| !c.is_finite())
    {
        return Err(invalid(OP, "the coefficients must be finite".into()));
    }
    Ok(x0 / batch)
}

/// `guidance_combine`: three buffers of one length, finite scale.
pub fn guidance_combine(uncond: usize, cond: usize, scale: f64, out: usize) -> Result<()> {
    const OP: &str = "guidance_combine";
    len(OP, "cond", cond, uncond)?;
    len(OP, "out", out, uncond)?;
    if !scale.is_finite() {
        return Err(invalid(
            OP,
            format!("guidance scale {scale} must be finite"),
        ));
    }
    Ok(())
}
