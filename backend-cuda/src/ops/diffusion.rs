//! Diffusion scheduler kernels (`kernels/diffusion.cu`): the fused DDPM/DDIM step,
//! add_noise with per-sample coefficients, classifier-free guidance.
//!
//! All three are single memory-bound passes. Each kernel exists as a scalar and a
//! float4 (`_vec4`) version; the float4 one is launched only when every buffer it
//! touches starts on a 16-byte boundary (checked here on the device addresses; fresh
//! allocations always do), and it handles the last `n mod 4` elements as scalars.
//!
//! The step's coefficients are folded on the host in f64 exactly as backend-cpu does
//! (see `kernels/diffusion.cu`); add_noise's per-sample coefficients are rounded once
//! to f32 and passed *as kernel parameters* (up to [`NOISE_CHUNK`] samples per
//! launch): the driver copies parameters when the launch is queued, so the caller's
//! host slices need not outlive the call and nothing synchronises.

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::{BrainError, PredictionType, Result, SchedulerStep};
use cudarc::driver::{DeviceRepr, LaunchConfig};

/// Samples per add_noise launch (`NOISE_CHUNK` in `kernels/diffusion.cu`).
const NOISE_CHUNK: usize = 256;

// Flags of the step (`STEP_*` in `kernels/diffusion.cu`).
const X0_IS_M: u32 = 1;
const USE_X: u32 = 2;
const CLIP: u32 = 4;
const NOISE: u32 = 8;
const WRITE_X0: u32 = 16;

/// Whether every address is 16-byte aligned (float4 accesses allowed).
fn aligned16(ptrs: &[u64]) -> bool {
    ptrs.iter().all(|p| p % 16 == 0)
}

/// Threads of the float4 kernels: one float4 word per thread and the scalar tail.
fn vec4_config(n: usize) -> LaunchConfig {
    launch::elementwise((n / 4).max(1))
}

/// Host-folded coefficients of one step (as backend-cpu's `fold`), in f64.
struct Folded {
    p: f64,
    q: f64,
    a_m: f64,
    a_x: f64,
    flags: u32,
}

fn fold(step: &SchedulerStep) -> Folded {
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
    let clip = step.clip_sample.is_some();
    let (a_m, a_x) = if clip {
        (ce * r, ce * s + cs)
    } else {
        (cx * p + ce * r, cx * q + ce * s + cs)
    };
    let x0_is_m = step.prediction == PredictionType::Sample;
    // x enters x̂₀ unless the model predicts the sample, ε̂ when it has a term, or its own.
    let use_x = !x0_is_m || use_eps || cs != 0.0;
    let mut flags = 0;
    if x0_is_m {
        flags |= X0_IS_M;
    }
    if use_x {
        flags |= USE_X;
    }
    if clip {
        flags |= CLIP;
    }
    if step.coef_noise != 0.0 {
        flags |= NOISE;
    }
    Folded {
        p,
        q,
        a_m,
        a_x,
        flags,
    }
}

/// One fused DDPM/DDIM update; `pred_x0` receives x̂₀ when given.
pub(crate) fn scheduler_step(
    dev: &Device,
    step: &SchedulerStep,
    model_output: &CudaBuffer,
    sample: &CudaBuffer,
    noise: Option<&CudaBuffer>,
    prev_sample: &mut CudaBuffer,
    pred_x0: Option<&mut CudaBuffer>,
) -> Result<()> {
    let n = prev_sample.len();
    let f = fold(step);
    let mut flags = f.flags;
    let (m, x, prev) = (
        dev.ptr(model_output)?,
        dev.ptr(sample)?,
        dev.ptr_mut(prev_sample)?,
    );
    // noise is not read when its coefficient is 0 (the check requires it otherwise)
    let nz = match noise {
        Some(b) if flags & NOISE != 0 => dev.ptr(b)?,
        Some(b) => {
            dev.ptr(b)?; // still reject a foreign buffer
            0
        }
        None => {
            flags &= !NOISE;
            0
        }
    };
    let px = match pred_x0 {
        Some(b) => {
            flags |= WRITE_X0;
            dev.ptr_mut(b)?
        }
        None => 0,
    };
    if n == 0 {
        return Ok(());
    }
    // the addresses the kernel dereferences (0, for an unused one, is aligned)
    let used = [m, prev, if flags & USE_X != 0 { x } else { 0 }, nz, px];
    let (p, q, a_m, a_x) = (f.p as f32, f.q as f32, f.a_m as f32, f.a_x as f32);
    let (c_x0, c_n) = (step.coef_x0 as f32, step.coef_noise as f32);
    let r = step.clip_sample.unwrap_or(f64::INFINITY) as f32;
    let len = u64_of(n);
    let (name, cfg) = if aligned16(&used) {
        ("scheduler_step_vec4_f32", vec4_config(n))
    } else {
        ("scheduler_step_f32", launch::elementwise(n))
    };
    launch_kernel!(dev, Family::Diffusion, name, cfg;
        m, x, nz, prev, px, len, p, q, a_m, a_x, c_x0, c_n, r, flags)
}

/// `NoiseCoefs` of `kernels/diffusion.cu`: one launch's per-sample coefficients,
/// passed by value as a kernel parameter.
#[repr(C)]
#[derive(Clone, Copy)]
struct NoiseCoefs {
    sa: [f32; NOISE_CHUNK],
    sb: [f32; NOISE_CHUNK],
}

// SAFETY: plain-old-data with the layout of the C struct it is passed as (two arrays
// of NOISE_CHUNK floats, 4-byte aligned, no padding).
unsafe impl DeviceRepr for NoiseCoefs {}

/// `out[b] = sqrt_alpha_prod[b]·x0[b] + sqrt_one_minus_alpha_prod[b]·noise[b]` per sample.
pub(crate) fn add_noise(
    dev: &Device,
    x0: &CudaBuffer,
    noise: &CudaBuffer,
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: &mut CudaBuffer,
) -> Result<()> {
    const OP: &str = "add_noise";
    let total = out.len();
    let (x0, nz, out) = (dev.ptr(x0)?, dev.ptr(noise)?, dev.ptr_mut(out)?);
    let batch = sqrt_alpha_prod.len();
    if total == 0 || batch == 0 {
        return Ok(());
    }
    let per = total / batch; // the check made batch divide total
    let vec4 = per % 4 == 0 && aligned16(&[x0, nz, out]);
    let name = if vec4 {
        "add_noise_vec4_f32"
    } else {
        "add_noise_f32"
    };
    let units = if vec4 { per / 4 } else { per };
    let per_bytes = per
        .checked_mul(std::mem::size_of::<f32>())
        .ok_or(BrainError::SizeOverflow { op: OP })?;
    let per_u64 = u64_of(per);
    for (chunk, (sa, sb)) in sqrt_alpha_prod
        .chunks(NOISE_CHUNK)
        .zip(sqrt_one_minus_alpha_prod.chunks(NOISE_CHUNK))
        .enumerate()
    {
        let mut c = NoiseCoefs {
            sa: [0.0; NOISE_CHUNK],
            sb: [0.0; NOISE_CHUNK],
        };
        for (d, s) in c.sa.iter_mut().zip(sa) {
            *d = *s as f32;
        }
        for (d, s) in c.sb.iter_mut().zip(sb) {
            *d = *s as f32;
        }
        // Byte offset of the chunk's first sample.
        let offset = (chunk * NOISE_CHUNK)
            .checked_mul(per_bytes)
            .ok_or(BrainError::SizeOverflow { op: OP })?;
        let offset = u64_of(offset);
        let (x0, nz, out) = (x0 + offset, nz + offset, out + offset);
        // samples of this chunk along y (≤ NOISE_CHUNK); along x enough blocks for
        // the sample, and not many more than MAX_GRID in all
        let samples = sa.len() as u32;
        let max_x = (launch::MAX_GRID / samples).max(1) as usize;
        let blocks_x = units.div_ceil(launch::BLOCK as usize).clamp(1, max_x) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks_x, samples, 1),
            block_dim: (launch::BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        launch_kernel!(dev, Family::Diffusion, name, cfg; x0, nz, out, per_u64, c)?;
    }
    Ok(())
}

/// `out = uncond + scale·(cond − uncond)`.
pub(crate) fn guidance_combine(
    dev: &Device,
    uncond: &CudaBuffer,
    cond: &CudaBuffer,
    scale: f64,
    out: &mut CudaBuffer,
) -> Result<()> {
    let n = out.len();
    let (u, c, out) = (dev.ptr(uncond)?, dev.ptr(cond)?, dev.ptr_mut(out)?);
    if n == 0 {
        return Ok(());
    }
    let (g, len) = (scale as f32, u64_of(n));
    let (name, cfg) = if aligned16(&[u, c, out]) {
        ("guidance_combine_vec4_f32", vec4_config(n))
    } else {
        ("guidance_combine_f32", launch::elementwise(n))
    };
    launch_kernel!(dev, Family::Diffusion, name, cfg; u, c, out, g, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(prediction: PredictionType, coef_eps: f64, coef_sample: f64) -> SchedulerStep {
        SchedulerStep {
            prediction,
            alpha_prod_t: 0.64,
            clip_sample: None,
            coef_x0: 0.5,
            coef_eps,
            coef_sample,
            coef_noise: 0.0,
        }
    }

    #[test]
    fn fold_matches_the_formulas() {
        // epsilon: x̂₀ = (x − 0.6 m)/0.8; prev = 0.5 x̂₀ + 0.25 m + 0.1 x
        let f = fold(&step(PredictionType::Epsilon, 0.25, 0.1));
        assert!((f.p + 0.75).abs() < 1e-15 && (f.q - 1.25).abs() < 1e-15);
        assert!((f.a_m - (0.5 * -0.75 + 0.25)).abs() < 1e-15);
        assert!((f.a_x - (0.5 * 1.25 + 0.1)).abs() < 1e-15);
        assert_eq!(f.flags, USE_X);
        // sample prediction with no ε̂ and no sample term never reads x
        let f = fold(&step(PredictionType::Sample, 0.0, 0.0));
        assert_eq!(f.flags, X0_IS_M);
        let f = fold(&SchedulerStep {
            clip_sample: Some(1.0),
            coef_noise: 0.3,
            ..step(PredictionType::VPrediction, 0.25, 0.0)
        });
        assert_eq!(f.flags, USE_X | CLIP | NOISE);
        // with clipping x̂₀ enters separately: a_m, a_x hold only ε̂ and the sample
        assert!((f.a_m - 0.25 * 0.8).abs() < 1e-15 && (f.a_x - 0.25 * 0.6).abs() < 1e-15);
    }

    #[test]
    fn alignment() {
        assert!(aligned16(&[0, 256, 4096]));
        assert!(!aligned16(&[256, 260]));
        assert_eq!(std::mem::size_of::<NoiseCoefs>(), 8 * NOISE_CHUNK);
    }
}
