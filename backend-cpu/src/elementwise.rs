//! Element-wise kernels: add, scale, axpy, fill, copy, activations, bias.
//! Lengths are validated by the caller; every function here trusts them.

use crate::par::{for_chunks_mut, Exec, MIN_CHUNK_COMPUTE, MIN_CHUNK_MEM};
use brain_core::ops::Activation;
use rayon::prelude::*;

/// out = a + b
pub fn add(ex: Exec, out: &mut [f32], a: &[f32], b: &[f32]) {
    for_chunks_mut(ex, out, MIN_CHUNK_MEM, 16, |s, o| {
        let e = s + o.len();
        for ((o, &a), &b) in o.iter_mut().zip(&a[s..e]).zip(&b[s..e]) {
            *o = a + b;
        }
    });
}

/// x *= alpha
pub fn scale(ex: Exec, x: &mut [f32], alpha: f32) {
    for_chunks_mut(ex, x, MIN_CHUNK_MEM, 16, |_, x| {
        x.iter_mut().for_each(|v| *v *= alpha)
    });
}

/// y += alpha·x
pub fn axpy(ex: Exec, y: &mut [f32], alpha: f32, x: &[f32]) {
    for_chunks_mut(ex, y, MIN_CHUNK_MEM, 16, |s, y| {
        let x = &x[s..s + y.len()];
        for (y, &x) in y.iter_mut().zip(x) {
            *y += alpha * x;
        }
    });
}

/// dst = value
pub fn fill(ex: Exec, dst: &mut [f32], value: f32) {
    for_chunks_mut(ex, dst, MIN_CHUNK_MEM, 16, |_, d| d.fill(value));
}

/// dst = src
pub fn copy(ex: Exec, dst: &mut [f32], src: &[f32]) {
    for_chunks_mut(ex, dst, MIN_CHUNK_MEM, 16, |s, d| {
        d.copy_from_slice(&src[s..s + d.len()])
    });
}

// The activations, written out for f32 with the inherent (intrinsic / libc)
// `exp`; the reference's generic versions go through `num_traits::Float`,
// which here (num-traits without `std`) calls the slower pure-Rust `libm`. Same
// formulas as `brain_core::reference::activation` (GELU-tanh rewritten through
// σ, see below); erf is libm's `erff` either way (std has no stable f32 erf).
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_4_f64 as f32;
const INV_SQRT_2PI: f32 = 0.398_942_280_401_432_7_f64 as f32;
const GELU_TANH_C: f32 = 0.044_715_f64 as f32; // rounded from f64 as the reference's `from_f64`

#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_erf_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + libm::erff(x * FRAC_1_SQRT_2));
    let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
    cdf + x * pdf
}

/// ½·x·(1 + tanh u) = x·σ(2u): the same function without the cancellation of
/// 1 + tanh u for u ≪ 0, and with one `exp` instead of a (slower) `tanh`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
    x / (1.0 + (-2.0 * inner).exp())
}

/// With s = σ(2u): 1 + tanh u = 2s and 1 − tanh²u = 4s(1 − s), so
/// f'(x) = s + 2x·s(1 − s)·k·(1 + 3c·x²).
#[inline(always)]
fn gelu_tanh_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + (-2.0 * SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)).exp());
    s + 2.0 * x * (s * (1.0 - s)) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x)
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[inline(always)]
fn silu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x * (1.0 - s))
}

/// y = f(x); the activation is matched once per chunk, outside the loop.
pub fn activation_forward(ex: Exec, act: Activation, y: &mut [f32], x: &[f32]) {
    #[inline(always)]
    fn run(f: impl Fn(f32) -> f32, y: &mut [f32], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = f(x);
        }
    }
    for_chunks_mut(ex, y, MIN_CHUNK_COMPUTE, 16, |s, y| {
        let x = &x[s..s + y.len()];
        match act {
            Activation::GeluErf => run(gelu_erf, y, x),
            Activation::GeluTanh => run(gelu_tanh, y, x),
            Activation::Silu => run(silu, y, x),
        }
    });
}

/// dx = dy·f'(x)
pub fn activation_backward(ex: Exec, act: Activation, dx: &mut [f32], x: &[f32], dy: &[f32]) {
    #[inline(always)]
    fn run(f: impl Fn(f32) -> f32, dx: &mut [f32], x: &[f32], dy: &[f32]) {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            *dx = dy * f(x);
        }
    }
    for_chunks_mut(ex, dx, MIN_CHUNK_COMPUTE, 16, |s, dx| {
        let e = s + dx.len();
        let (x, dy) = (&x[s..e], &dy[s..e]);
        match act {
            Activation::GeluErf => run(gelu_erf_grad, dx, x, dy),
            Activation::GeluTanh => run(gelu_tanh_grad, dx, x, dy),
            Activation::Silu => run(silu_grad, dx, x, dy),
        }
    });
}

/// y[o,c,i] += b[c] over `[outer, channels, inner]`.
pub fn bias_add(ex: Exec, y: &mut [f32], b: &[f32], channels: usize, inner: usize) {
    if y.is_empty() {
        return;
    }
    if inner == 1 {
        // Rows of `channels`: a vectorised row add, parallel over rows.
        let row = |r: &mut [f32]| {
            for (v, &bv) in r.iter_mut().zip(b) {
                *v += bv;
            }
        };
        if ex.par {
            y.par_chunks_exact_mut(channels)
                .with_min_len(Exec::min_items(channels, MIN_CHUNK_MEM))
                .for_each(row);
        } else {
            y.chunks_exact_mut(channels).for_each(row);
        }
    } else {
        // Planes of `inner` values sharing one bias, parallel over planes.
        let plane = |(p, v): (usize, &mut [f32])| {
            let bv = b[p % channels];
            v.iter_mut().for_each(|v| *v += bv);
        };
        if ex.par {
            y.par_chunks_exact_mut(inner)
                .with_min_len(Exec::min_items(inner, MIN_CHUNK_MEM))
                .enumerate()
                .for_each(plane);
        } else {
            y.chunks_exact_mut(inner).enumerate().for_each(plane);
        }
    }
}

/// db[c] += Σ_{o,i} dy[o,c,i] (sums in f64, rounded once).
pub fn bias_backward(
    ex: Exec,
    db: &mut [f32],
    dy: &[f32],
    outer: usize,
    channels: usize,
    inner: usize,
) {
    if channels == 0 {
        return;
    }
    if inner == 1 {
        let sums = crate::par::column_sums(ex, dy, outer, channels);
        for (d, s) in db.iter_mut().zip(sums) {
            *d = (*d as f64 + s) as f32;
        }
        return;
    }
    if inner == 0 || outer == 0 {
        return;
    }
    // One f64 sum per (o, c) plane, in parallel, then Σ over o per channel.
    let mut planes = vec![0f64; outer * channels];
    let sum_plane = |(s, v): (&mut f64, &[f32])| *s = crate::par::sum_f64(v);
    if ex.par {
        planes
            .par_iter_mut()
            .zip(dy.par_chunks_exact(inner))
            .with_min_len(Exec::min_items(inner, MIN_CHUNK_MEM))
            .for_each(sum_plane);
    } else {
        planes
            .iter_mut()
            .zip(dy.chunks_exact(inner))
            .for_each(sum_plane);
    }
    for (c, d) in db.iter_mut().enumerate() {
        let s: f64 = planes[c..].iter().step_by(channels).sum();
        *d = (*d as f64 + s) as f32;
    }
}
