//! Fused scheduler step, add_noise and classifier-free guidance.
//!
//! `*_checked` functions validate with [`crate::check`] and run the plain kernels;
//! [`ReferenceBackend`](super::ReferenceBackend) calls them.
//!
//! The step follows diffusers' `DDIMScheduler.step` / `DDPMScheduler.step` literally:
//! x̂₀ and ε̂ are both derived from the *unclipped* model output, then x̂₀ alone is
//! clamped (diffusers' default `use_clipped_model_output=False`; DDPM has no ε̂ term).
//! No gradient flows through these kernels, so there are no backward functions.

use crate::check;
use crate::element::Element;
use crate::error::Result;
use crate::ops::{PredictionType, SchedulerStep};

/// One scheduler update over `n` elements (n = every dim of the latents flattened):
///
/// ```text
/// a = √ᾱ_t, b = √(1−ᾱ_t)
/// epsilon:      x̂₀ = (x − b·m)/a        ε̂ = m
/// v_prediction: x̂₀ = a·x − b·m          ε̂ = a·m + b·x
/// sample:       x̂₀ = m                  ε̂ = (x − a·x̂₀)/b
/// x̂₀ ← clamp(x̂₀, −r, r)                 (clip_sample = Some(r))
/// prev = c_x0·x̂₀ + c_sample·x + c_eps·ε̂ + c_noise·noise   (terms with a zero
///        coefficient are skipped, so an unused input is never read)
/// ```
/// model_output, sample, noise, prev_sample, pred_x0: [n]
pub fn scheduler_step<T: Element>(
    step: &SchedulerStep,
    model_output: &[T],
    sample: &[T],
    noise: Option<&[T]>,
    prev_sample: &mut [T],
    mut pred_x0: Option<&mut [T]>,
) {
    let one = T::one();
    let at = T::from_f64(step.alpha_prod_t);
    let a = at.sqrt();
    let b = (one - at).sqrt();
    let clip = step.clip_sample.map(T::from_f64);
    let cx = T::from_f64(step.coef_x0);
    let ce = T::from_f64(step.coef_eps);
    let cs = T::from_f64(step.coef_sample);
    let cn = T::from_f64(step.coef_noise);
    let use_eps = step.coef_eps != 0.0;
    let use_sample = step.coef_sample != 0.0;
    let use_noise = step.coef_noise != 0.0;
    for i in 0..model_output.len() {
        let m = model_output[i];
        let x = sample[i];
        let (mut x0, eps) = match step.prediction {
            PredictionType::Epsilon => ((x - b * m) / a, m),
            PredictionType::VPrediction => (a * x - b * m, a * m + b * x),
            PredictionType::Sample => {
                let eps = if use_eps { (x - a * m) / b } else { T::zero() };
                (m, eps)
            }
        };
        if let Some(r) = clip {
            // comparisons are false for NaN, so a NaN x̂₀ stays NaN
            if x0 > r {
                x0 = r;
            } else if x0 < -r {
                x0 = -r;
            }
        }
        let mut p = cx * x0;
        if use_sample {
            p = p + cs * x;
        }
        if use_eps {
            p = p + ce * eps;
        }
        if use_noise {
            if let Some(nz) = noise {
                p = p + cn * nz[i];
            }
        }
        prev_sample[i] = p;
        if let Some(px) = pred_x0.as_deref_mut() {
            px[i] = x0;
        }
    }
}

/// Per-sample noising, `len = batch·per_sample`:
/// out[b, j] = sqrt_alpha_prod[b]·x0[b, j] + sqrt_one_minus_alpha_prod[b]·noise[b, j]
pub fn add_noise<T: Element>(
    x0: &[T],
    noise: &[T],
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: &mut [T],
    per_sample: usize,
) {
    for bi in 0..sqrt_alpha_prod.len() {
        let sa = T::from_f64(sqrt_alpha_prod[bi]);
        let sb = T::from_f64(sqrt_one_minus_alpha_prod[bi]);
        for j in 0..per_sample {
            let i = bi * per_sample + j;
            out[i] = sa * x0[i] + sb * noise[i];
        }
    }
}

/// out[n] = uncond[n] + scale·(cond[n] − uncond[n])
pub fn guidance_combine<T: Element>(uncond: &[T], cond: &[T], scale: f64, out: &mut [T]) {
    let g = T::from_f64(scale);
    for i in 0..uncond.len() {
        out[i] = uncond[i] + g * (cond[i] - uncond[i]);
    }
}

/// Validated `scheduler_step` (see the [`Backend`](crate::Backend) method).
pub fn scheduler_step_checked<T: Element>(
    step: &SchedulerStep,
    model_output: &[T],
    sample: &[T],
    noise: Option<&[T]>,
    prev_sample: &mut [T],
    pred_x0: Option<&mut [T]>,
) -> Result<()> {
    check::scheduler_step(
        step,
        model_output.len(),
        sample.len(),
        noise.map(|n| n.len()),
        prev_sample.len(),
        pred_x0.as_ref().map(|p| p.len()),
    )?;
    scheduler_step(step, model_output, sample, noise, prev_sample, pred_x0);
    Ok(())
}

/// Validated `add_noise` (see the [`Backend`](crate::Backend) method).
pub fn add_noise_checked<T: Element>(
    x0: &[T],
    noise: &[T],
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: &mut [T],
) -> Result<()> {
    let per_sample = check::add_noise(
        x0.len(),
        noise.len(),
        sqrt_alpha_prod,
        sqrt_one_minus_alpha_prod,
        out.len(),
    )?;
    add_noise(
        x0,
        noise,
        sqrt_alpha_prod,
        sqrt_one_minus_alpha_prod,
        out,
        per_sample,
    );
    Ok(())
}

/// Validated `guidance_combine` (see the [`Backend`](crate::Backend) method).
pub fn guidance_combine_checked<T: Element>(
    uncond: &[T],
    cond: &[T],
    scale: f64,
    out: &mut [T],
) -> Result<()> {
    check::guidance_combine(uncond.len(), cond.len(), scale, out.len())?;
    guidance_combine(uncond, cond, scale, out);
    Ok(())
}
