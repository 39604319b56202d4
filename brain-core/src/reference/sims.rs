//! The Sims token loss: cosine self-similarity profiles against the first token.
//!
//! For X [batch, tokens, dim]: s_X[b, j] = cos(X[b,0], X[b,j]), j = 1..tokens−1, with
//! cos(x, y) = x·y / (max(‖x‖, ε)·max(‖y‖, ε)), ε = 1e-8; the loss is the mean over
//! the batch·(tokens−1) pairs of (s_A − s_B)². Where a norm is clamped its gradient
//! is zero (as PyTorch's `clamp_min`).
//!
//! `*_checked` functions validate with [`crate::check`] and run the plain kernels;
//! [`ReferenceBackend`](super::ReferenceBackend) calls them.

use crate::check;
use crate::element::Element;
use crate::error::Result;
use alloc::vec;
use alloc::vec::Vec;

/// Norm clamp of the cosine similarities.
pub const SIMS_EPS: f64 = 1e-8;

/// ‖x‖ of x[dim].
fn norm<T: Element>(x: &[T]) -> T {
    let mut s = T::zero();
    for &v in x {
        s = s + v * v;
    }
    s.sqrt()
}

/// x·y of x[dim], y[dim].
fn dot<T: Element>(x: &[T], y: &[T]) -> T {
    let mut s = T::zero();
    for i in 0..x.len() {
        s = s + x[i] * y[i];
    }
    s
}

/// s[batch, tokens−1] = cos(x[b,0,:], x[b,j,:]) from x[batch, tokens, dim].
pub fn sims_profile<T: Element>(x: &[T], batch: usize, tokens: usize, dim: usize) -> Vec<T> {
    let eps = T::from_f64(SIMS_EPS);
    let mut s = vec![T::zero(); batch * (tokens - 1)];
    for b in 0..batch {
        let x0 = &x[b * tokens * dim..b * tokens * dim + dim];
        let m0 = norm(x0).max(eps);
        for j in 1..tokens {
            let xj = &x[(b * tokens + j) * dim..(b * tokens + j + 1) * dim];
            s[b * (tokens - 1) + j - 1] = dot(x0, xj) / (m0 * norm(xj).max(eps));
        }
    }
    s
}

/// loss = mean((s_A − s_B)²) over a[batch, tokens, dim], b[batch, tokens, dim].
pub fn sims_forward<T: Element>(a: &[T], b: &[T], batch: usize, tokens: usize, dim: usize) -> T {
    let sa = sims_profile(a, batch, tokens, dim);
    let sb = sims_profile(b, batch, tokens, dim);
    let mut sum = T::zero();
    for i in 0..sa.len() {
        let d = sa[i] - sb[i];
        sum = sum + d * d;
    }
    sum / T::from_f64(sa.len() as f64)
}

/// dx[batch, tokens, dim] += Σ g[b, j−1]·∂s_X[b, j]/∂x, from x[batch, tokens, dim],
/// its profile s[batch, tokens−1] and g[batch, tokens−1] = ∂loss/∂s. With
/// m = max(‖·‖, ε):
///   ∂s/∂x_j = x_0/(m_0·m_j) − s·x_j/m_j² (the second term only when ‖x_j‖ > ε),
///   ∂s/∂x_0 = x_j/(m_0·m_j) − s·x_0/m_0² (the second term only when ‖x_0‖ > ε).
pub fn sims_profile_backward<T: Element>(
    dx: &mut [T],
    x: &[T],
    s: &[T],
    g: &[T],
    batch: usize,
    tokens: usize,
    dim: usize,
) {
    let eps = T::from_f64(SIMS_EPS);
    for b in 0..batch {
        let o0 = b * tokens * dim;
        let n0 = norm(&x[o0..o0 + dim]);
        let m0 = n0.max(eps);
        let live0 = if n0 > eps { T::one() } else { T::zero() };
        for j in 1..tokens {
            let oj = (b * tokens + j) * dim;
            let nj = norm(&x[oj..oj + dim]);
            let mj = nj.max(eps);
            let livej = if nj > eps { T::one() } else { T::zero() };
            let p = b * (tokens - 1) + j - 1;
            let (gp, sp) = (g[p], s[p]);
            for c in 0..dim {
                let (x0, xj) = (x[o0 + c], x[oj + c]);
                dx[oj + c] = dx[oj + c] + gp * (x0 / (m0 * mj) - livej * sp * xj / (mj * mj));
                dx[o0 + c] = dx[o0 + c] + gp * (xj / (m0 * mj) - live0 * sp * x0 / (m0 * m0));
            }
        }
    }
}

/// da, db [batch, tokens, dim] += the gradient of scale·loss:
/// ∂loss/∂s_A = 2(s_A − s_B)/(batch·(tokens−1)) = −∂loss/∂s_B.
pub fn sims_backward<T: Element>(
    a: &[T],
    b: &[T],
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: T,
    da: Option<&mut [T]>,
    db: Option<&mut [T]>,
) {
    let sa = sims_profile(a, batch, tokens, dim);
    let sb = sims_profile(b, batch, tokens, dim);
    let c = scale * T::from_f64(2.0) / T::from_f64(sa.len() as f64);
    let ga: Vec<T> = (0..sa.len()).map(|i| c * (sa[i] - sb[i])).collect();
    if let Some(da) = da {
        sims_profile_backward(da, a, &sa, &ga, batch, tokens, dim);
    }
    if let Some(db) = db {
        let gb: Vec<T> = ga.iter().map(|&v| -v).collect();
        sims_profile_backward(db, b, &sb, &gb, batch, tokens, dim);
    }
}

/// Validated `sims_forward` (see the [`Backend`](crate::Backend) method).
pub fn sims_forward_checked<T: Element>(
    a: &[T],
    b: &[T],
    batch: usize,
    tokens: usize,
    dim: usize,
    loss: &mut [T],
) -> Result<()> {
    check::sims_forward(a.len(), b.len(), batch, tokens, dim, loss.len())?;
    loss[0] = sims_forward(a, b, batch, tokens, dim);
    Ok(())
}

/// Validated `sims_backward` (see the [`Backend`](crate::Backend) method).
pub fn sims_backward_checked<T: Element>(
    a: &[T],
    b: &[T],
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: f64,
    da: Option<&mut [T]>,
    db: Option<&mut [T]>,
) -> Result<()> {
    check::sims_backward(
        a.len(),
        b.len(),
        batch,
        tokens,
        dim,
        scale,
        da.as_deref().map(<[T]>::len),
        db.as_deref().map(<[T]>::len),
    )?;
    sims_backward(a, b, batch, tokens, dim, T::from_f64(scale), da, db);
    Ok(())
}
