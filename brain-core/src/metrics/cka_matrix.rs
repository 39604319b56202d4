//! Linear CKA (centred kernel alignment, Kornblith et al. 2019) between every pair of
//! layers of two networks (or of one network with itself).
//!
//! For features `X` `[n, p]` and `Y` `[n, q]` of the same `n` stimuli,
//! `CKA = HSIC(K, L) / √(HSIC(K, K)·HSIC(L, L))` with `K = XXᵀ`, `L = YYᵀ`, the
//! centring `H = I − 11ᵀ/n` and the biased estimator `HSIC(K, L) = tr(KHLH)/(n − 1)²`
//! (its normalisation cancels). Here `HKH = X_c X_cᵀ` with the columns of `X` centred
//! first (exact in real arithmetic and better conditioned than centring the Gram
//! matrix), so `CKA = ⟨K_c, L_c⟩_F / (‖K_c‖_F ‖L_c‖_F)`.
//!
//! Everything goes through `n × n` Gram matrices, never `p × p`, so wide layers (CLIP
//! tokens × channels) cost O(n²·p) time and O(n²) memory. The Gram matrices of the
//! second family are kept ((L₂ + 1)·n² f64 in all); those of the first are made one at
//! a time.
//!
//! A layer with no variance across stimuli (all rows equal) has `K_c = 0` and its CKA
//! is NaN (0/0). At `n = 2` the biased CKA of any two non-constant layers is 1.

use super::check;
use super::check::Wide;
use super::correlation::gram_rows;
use crate::check::{invalid, len, numel};
use crate::element::Element;
use crate::error::Result;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

/// One layer's features: row-major `[n, dim]` data and its `dim`.
pub type Layer<'a, T> = (&'a [T], usize);

/// The centred Gram matrix `X_c X_cᵀ` `[n, n]` of `x` `[n, d]` (columns centred in f64).
pub fn centered_gram<T: Element>(x: &[T], n: usize, d: usize) -> Result<Vec<f64>> {
    check::matrix("centered_gram", "x", x.len(), n, d)?;
    Ok(gram(x, n, d))
}

fn gram<T: Element>(x: &[T], n: usize, d: usize) -> Vec<f64> {
    let mut mean = vec![0.0f64; d];
    for row in x.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v.wide();
        }
    }
    for m in &mut mean {
        *m /= n as f64;
    }
    let mut xc = vec![0.0f64; n * d];
    for (cr, row) in xc.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        for ((c, v), m) in cr.iter_mut().zip(row).zip(&mean) {
            *c = v.wide() - m;
        }
    }
    gram_rows(&xc, n, d)
}

fn frob(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_layers<T>(
    op: &'static str,
    arg: &'static str,
    layers: &[Layer<'_, T>],
    n: usize,
) -> Result<()> {
    if layers.is_empty() {
        return Err(invalid(op, format!("`{arg}` holds no layer")));
    }
    for (l, &(data, dim)) in layers.iter().enumerate() {
        if dim == 0 {
            return Err(invalid(op, format!("`{arg}[{l}]` has zero features")));
        }
        len(op, arg, data.len(), numel(op, &[n, dim])?)?;
    }
    Ok(())
}

/// `cka[a·L₂ + b]` = linear CKA of `xs[a]` and `ys[b]` (`[L₁, L₂]`, row-major), each
/// layer given as `(data [n, dim], dim)` over the same `n` stimuli.
///
/// Errors: `n < 2`, no layers, a layer with zero features, or a buffer whose length is
/// not `n·dim` (reported as a shape mismatch of `xs` / `ys`).
pub fn cka_matrix<T: Element>(
    xs: &[Layer<'_, T>],
    ys: &[Layer<'_, T>],
    n: usize,
) -> Result<Vec<f64>> {
    const OP: &str = "cka_matrix";
    check::at_least(OP, "samples", n, 2)?;
    check_layers(OP, "xs", xs, n)?;
    check_layers(OP, "ys", ys, n)?;
    let gy: Vec<Vec<f64>> = ys.iter().map(|&(y, q)| gram(y, n, q)).collect();
    let ny: Vec<f64> = gy.iter().map(|g| libm::sqrt(frob(g, g))).collect();
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for &(x, p) in xs {
        let gx = gram(x, n, p);
        let nx = libm::sqrt(frob(&gx, &gx));
        for (g, &nyb) in gy.iter().zip(&ny) {
            out.push(frob(&gx, g) / (nx * nyb));
        }
    }
    Ok(out)
}

/// Linear CKA of one pair of layers, `x` `[n, p]` and `y` `[n, q]`.
pub fn linear_cka<T: Element>(x: &[T], y: &[T], n: usize, p: usize, q: usize) -> Result<f64> {
    Ok(cka_matrix(&[(x, p)], &[(y, q)], n)?[0])
}
