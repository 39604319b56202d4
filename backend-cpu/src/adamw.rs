//! Fused AdamW over all parameter tensors at once.
//!
//! Every tensor is cut into chunks and all chunks of all tensors form one flat work
//! list, so many small tensors (biases, norms) balance as well as one big one.

use crate::par::{sum_sq_f64, Exec, MIN_CHUNK_MEM};
use brain_core::ops::AdamW;
use brain_core::reference::adamw::{clip_coefficient, AdamWScalars};
use rayon::prelude::*;

/// One tensor as plain slices: (param, grad, exp_avg, exp_avg_sq).
pub type Slices<'a> = (&'a mut [f32], &'a [f32], &'a mut [f32], &'a mut [f32]);

/// Global L2 norm of all gradients: Σg² per chunk in f64, summed, then √.
pub fn global_norm(ex: Exec, grads: &[&[f32]]) -> f64 {
    let total: usize = grads.iter().map(|g| g.len()).sum();
    let chunk = ex.chunk(total, MIN_CHUNK_MEM, 64);
    let ss = if ex.par {
        let pieces: Vec<&[f32]> = grads.iter().flat_map(|g| g.chunks(chunk)).collect();
        pieces.into_par_iter().map(sum_sq_f64).sum::<f64>()
    } else {
        grads.iter().map(|g| sum_sq_f64(g)).sum::<f64>()
    };
    ss.sqrt()
}

/// `brain_core::reference::adamw::adamw_element` for f32, operation for operation,
/// but with the inherent (intrinsic) `f32::sqrt`: the generic version goes through
/// `num_traits::Float`, which in this workspace (num-traits without `std`) calls
/// `libm::sqrtf`, an opaque function that keeps the loop scalar. Both square roots
/// are correctly rounded, so the results are bit-identical (tested below).
#[inline(always)]
fn element(s: &AdamWScalars<f32>, p: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
    let p = p * s.decay;
    let m = s.beta1 * m + (1.0 - s.beta1) * g;
    let v = s.beta2 * v + (1.0 - s.beta2) * g * g;
    let denom = v.sqrt() * s.inv_sqrt_bc2 + s.eps;
    (p - s.step_size * m / denom, m, v)
}

/// The update of one chunk with (already computed) clip coefficient, indexed over
/// equal-length re-slices so bounds checks vanish and the loop vectorises.
#[inline(always)]
fn update(s: &AdamWScalars<f32>, clip: f32, (p, g, m, v): Slices<'_>) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let (pn, mn, vn) = element(s, p[i], g[i] * clip, m[i], v[i]);
        p[i] = pn;
        m[i] = mn;
        v[i] = vn;
    }
}

/// One fused step: returns the gradient norm (f32, as stored).
pub fn step(ex: Exec, cfg: &AdamW, tensors: Vec<Slices<'_>>) -> f32 {
    let grads: Vec<&[f32]> = tensors.iter().map(|t| t.1).collect();
    let norm = global_norm(ex, &grads) as f32;
    let clip = clip_coefficient(norm, cfg.max_grad_norm);
    let s = AdamWScalars::<f32>::new(cfg);
    let total: usize = grads.iter().map(|g| g.len()).sum();
    if ex.par {
        let chunk = ex.chunk(total, MIN_CHUNK_MEM / 2, 64);
        let mut work: Vec<Slices<'_>> = Vec::new();
        for (p, g, m, v) in tensors {
            for (((p, g), m), v) in p
                .chunks_mut(chunk)
                .zip(g.chunks(chunk))
                .zip(m.chunks_mut(chunk))
                .zip(v.chunks_mut(chunk))
            {
                work.push((p, g, m, v));
            }
        }
        work.into_par_iter().for_each(|w| update(&s, clip, w));
    } else {
        for t in tensors {
            update(&s, clip, t);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use brain_core::reference::adamw::adamw_element;

    #[test]
    fn element_is_bit_identical_to_the_reference() {
        let mut state = 0x1234_5678_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            f32::from_bits((state & 0x007F_FFFF) | 0x3F80_0000) - 1.5 // [-0.5, 0.5)
        };
        for cfg in [
            AdamW::default(),
            AdamW {
                lr: 3e-4,
                weight_decay: 0.1,
                step: 7,
                beta2: 0.95,
                ..AdamW::default()
            },
        ] {
            let s = AdamWScalars::<f32>::new(&cfg);
            for _ in 0..100_000 {
                let (p, g, m) = (next(), next() * 1e-2, next() * 1e-3);
                let v = (next() * 1e-4).abs();
                let want = adamw_element(&s, p, g, m, v);
                let got = element(&s, p, g, m, v);
                assert_eq!(
                    (got.0.to_bits(), got.1.to_bits(), got.2.to_bits()),
                    (want.0.to_bits(), want.1.to_bits(), want.2.to_bits())
                );
            }
        }
    }
}
