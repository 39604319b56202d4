//! Fused scheduler step, add_noise and classifier-free guidance.
//!
//! Each kernel is one pass over its buffers, parallel over chunks above
//! [`SEQ_MEM`] elements (they move 3–6 streams of f32 for a handful of flops, so
//! they are memory-bound).
//!
//! The scheduler step folds the prediction-type algebra into per-call coefficients
//! computed in f64 on the host: x̂₀ = p·m + q·x and ε̂ = r·m + s·x are linear in the
//! model output m and the sample x, so without clipping
//! `prev = (c_x0·p + c_eps·r)·m + (c_x0·q + c_eps·s + c_sample)·x + c_noise·n`:
//! three multiply-adds per element, and no f32 cancellation inside ε̂ or x̂₀ (the
//! large, opposite-signed terms of e.g. prediction "sample" at small t cancel in f64).
//! With clipping x̂₀ must be formed and clamped first: `prev = c_x0·clamp(p·m + q·x) +
//! (c_eps·r)·m + (c_eps·s + c_sample)·x + c_noise·n`. Like the reference, ε̂ comes
//! from the unclipped prediction (diffusers' default) and noise is not read when
//! `c_noise = 0`.

use crate::par::{Exec, MIN_CHUNK_MEM, SEQ_MEM};
use crate::{CpuBackend, CpuBuffer};
use brain_core::{check, PredictionType, Result, SchedulerStep};
use rayon::prelude::*;

/// Host-folded coefficients of one step (all rounded once to f32).
#[derive(Clone, Copy)]
struct Folded {
    /// x̂₀ = p·m + q·x
    p: f32,
    q: f32,
    /// prev = a_m·m + a_x·x (+ c_x0·clamp(x̂₀) when clipping) + c_n·n
    a_m: f32,
    a_x: f32,
    c_x0: f32,
    c_n: f32,
    /// clamp range
    r: f32,
    /// prediction "sample": x̂₀ is the model output itself (not 1·m + 0·x, which
    /// would turn a NaN in x into a NaN x̂₀)
    x0_is_m: bool,
}

fn fold(step: &SchedulerStep) -> Folded {
    let at = step.alpha_prod_t;
    let a = at.sqrt();
    let b = (1.0 - at).sqrt();
    // x̂₀ = p·m + q·x, ε̂ = r·m + s·x
    let (p, q, r, s) = match step.prediction {
        PredictionType::Epsilon => (-b / a, 1.0 / a, 1.0, 0.0),
        PredictionType::VPrediction => (-b, a, a, b),
        PredictionType::Sample => {
            if step.coef_eps != 0.0 {
                (1.0, 0.0, -a / b, 1.0 / b)
            } else {
                (1.0, 0.0, 0.0, 0.0)
            }
        }
    };
    let (cx, ce, cs) = (step.coef_x0, step.coef_eps, step.coef_sample);
    let (a_m, a_x) = if step.clip_sample.is_some() {
        (ce * r, ce * s + cs)
    } else {
        (cx * p + ce * r, cx * q + ce * s + cs)
    };
    Folded {
        p: p as f32,
        q: q as f32,
        a_m: a_m as f32,
        a_x: a_x as f32,
        c_x0: cx as f32,
        c_n: step.coef_noise as f32,
        r: step.clip_sample.unwrap_or(f64::INFINITY) as f32,
        x0_is_m: step.prediction == PredictionType::Sample,
    }
}

/// One chunk `[start, start + prev.len())` of the step; monomorphised per variant so
/// every inner loop is branch-free.
#[inline(always)]
fn step_chunk<const CLIP: bool, const NOISE: bool>(
    f: Folded,
    m: &[f32],
    x: &[f32],
    n: &[f32],
    prev: &mut [f32],
    px: Option<&mut [f32]>,
) {
    let len = prev.len();
    let (m, x) = (&m[..len], &x[..len]);
    let n = if NOISE { &n[..len] } else { n };
    // loop-invariant branch: unswitched by the compiler
    let x0_of = |m: f32, x: f32| if f.x0_is_m { m } else { f.p * m + f.q * x };
    let clamp = |v: f32| {
        // comparisons, not f32::max/min, so a NaN x̂₀ stays NaN
        if v > f.r {
            f.r
        } else if v < -f.r {
            -f.r
        } else {
            v
        }
    };
    match px {
        Some(px) => {
            let px = &mut px[..len];
            for i in 0..len {
                let mut x0 = x0_of(m[i], x[i]);
                let mut v = f.a_m * m[i] + f.a_x * x[i];
                if CLIP {
                    x0 = clamp(x0);
                    v += f.c_x0 * x0;
                }
                if NOISE {
                    v += f.c_n * n[i];
                }
                px[i] = x0;
                prev[i] = v;
            }
        }
        None => {
            for i in 0..len {
                let mut v = f.a_m * m[i] + f.a_x * x[i];
                if CLIP {
                    v += f.c_x0 * clamp(x0_of(m[i], x[i]));
                }
                if NOISE {
                    v += f.c_n * n[i];
                }
                prev[i] = v;
            }
        }
    }
}

fn step_range(
    f: Folded,
    clip: bool,
    m: &[f32],
    x: &[f32],
    n: Option<&[f32]>,
    prev: &mut [f32],
    px: Option<&mut [f32]>,
) {
    match (clip, n) {
        (false, None) => step_chunk::<false, false>(f, m, x, &[], prev, px),
        (false, Some(n)) => step_chunk::<false, true>(f, m, x, n, prev, px),
        (true, None) => step_chunk::<true, false>(f, m, x, &[], prev, px),
        (true, Some(n)) => step_chunk::<true, true>(f, m, x, n, prev, px),
    }
}

/// `Backend::scheduler_step` on the CPU.
pub(crate) fn scheduler_step(
    be: &CpuBackend,
    step: &SchedulerStep,
    model_output: &CpuBuffer,
    sample: &CpuBuffer,
    noise: Option<&CpuBuffer>,
    prev_sample: &mut CpuBuffer,
    pred_x0: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::scheduler_step(
        step,
        model_output.len(),
        sample.len(),
        noise.map(|n| n.len()),
        prev_sample.len(),
        pred_x0.as_ref().map(|p| p.len()),
    )?;
    let f = fold(step);
    let clip = step.clip_sample.is_some();
    let (m, x) = (model_output.as_slice(), sample.as_slice());
    // noise is not read when its coefficient is zero
    let n = if step.coef_noise != 0.0 {
        noise.map(|n| n.as_slice())
    } else {
        None
    };
    let prev = prev_sample.as_mut_slice();
    let total = prev.len();
    be.exec(total, SEQ_MEM, |ex: Exec| {
        let chunk = ex.chunk(total, MIN_CHUNK_MEM, 16);
        let run = |start: usize, p: &mut [f32], px: Option<&mut [f32]>| {
            let e = start + p.len();
            step_range(
                f,
                clip,
                &m[start..e],
                &x[start..e],
                n.map(|n| &n[start..e]),
                p,
                px,
            )
        };
        match pred_x0 {
            Some(px) => {
                let px = px.as_mut_slice();
                if ex.par && total > chunk {
                    prev.par_chunks_mut(chunk)
                        .zip(px.par_chunks_mut(chunk))
                        .enumerate()
                        .for_each(|(i, (p, q))| run(i * chunk, p, Some(q)));
                } else {
                    run(0, prev, Some(px));
                }
            }
            None => {
                if ex.par && total > chunk {
                    prev.par_chunks_mut(chunk)
                        .enumerate()
                        .for_each(|(i, p)| run(i * chunk, p, None));
                } else {
                    run(0, prev, None);
                }
            }
        }
    });
    Ok(())
}

/// `Backend::add_noise` on the CPU.
pub(crate) fn add_noise(
    be: &CpuBackend,
    x0: &CpuBuffer,
    noise: &CpuBuffer,
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: &mut CpuBuffer,
) -> Result<()> {
    let per_sample = check::add_noise(
        x0.len(),
        noise.len(),
        sqrt_alpha_prod,
        sqrt_one_minus_alpha_prod,
        out.len(),
    )?;
    if per_sample == 0 {
        return Ok(());
    }
    let (x0, noise) = (x0.as_slice(), noise.as_slice());
    let out = out.as_mut_slice();
    let total = out.len();
    be.exec(total, SEQ_MEM, |ex: Exec| {
        // chunks of the flat buffer; a chunk may straddle sample boundaries
        crate::par::for_chunks_mut(ex, out, MIN_CHUNK_MEM, 16, |start, o| {
            let end = start + o.len();
            let mut i = start;
            while i < end {
                let b = i / per_sample;
                let seg_end = ((b + 1) * per_sample).min(end);
                let sa = sqrt_alpha_prod[b] as f32;
                let sb = sqrt_one_minus_alpha_prod[b] as f32;
                let o = &mut o[i - start..seg_end - start];
                for ((o, &a), &n) in o.iter_mut().zip(&x0[i..seg_end]).zip(&noise[i..seg_end]) {
                    *o = sa * a + sb * n;
                }
                i = seg_end;
            }
        });
    });
    Ok(())
}

/// `Backend::guidance_combine` on the CPU.
pub(crate) fn guidance_combine(
    be: &CpuBackend,
    uncond: &CpuBuffer,
    cond: &CpuBuffer,
    scale: f64,
    out: &mut CpuBuffer,
) -> Result<()> {
    check::guidance_combine(uncond.len(), cond.len(), scale, out.len())?;
    let g = scale as f32;
    let (u, c) = (uncond.as_slice(), cond.as_slice());
    let out = out.as_mut_slice();
    be.exec(out.len(), SEQ_MEM, |ex: Exec| {
        crate::par::for_chunks_mut(ex, out, MIN_CHUNK_MEM, 16, |s, o| {
            let e = s + o.len();
            for ((o, &u), &c) in o.iter_mut().zip(&u[s..e]).zip(&c[s..e]) {
                *o = u + g * (c - u);
            }
        });
    });
    Ok(())
}
