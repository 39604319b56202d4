//! LayerNorm over the last dim, biased variance, affine (PyTorch semantics).

use crate::element::Element;

/// One row: returns (mean, rstd) and writes y = (x − mean)·rstd·γ + β.
/// x, y: [cols]. Two-pass variance so large offsets (x ≈ 100 ± 1) stay exact.
#[inline]
pub fn layernorm_row<T: Element>(y: &mut [T], x: &[T], gamma: &[T], beta: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(x.len() as f64);
    let mut sum = T::zero();
    for &v in x {
        sum = sum + v;
    }
    let mean = sum / n;
    let mut var = T::zero();
    for &v in x {
        let d = v - mean;
        var = var + d * d;
    }
    let rstd = T::one() / (var / n + eps).sqrt();
    for c in 0..x.len() {
        y[c] = (x[c] - mean) * rstd * gamma[c] + beta[c];
    }
    (mean, rstd)
}

/// y[rows,cols], mean[rows], rstd[rows] from x[rows,cols], γ[cols], β[cols].
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward<T: Element>(
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    rows: usize,
    cols: usize,
    eps: T,
) {
    for r in 0..rows {
        let s = r * cols..(r + 1) * cols;
        let (m, rs) = layernorm_row(&mut y[s.clone()], &x[s], gamma, beta, eps);
        mean[r] = m;
        rstd[r] = rs;
    }
}

/// One row of the input gradient:
/// dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)), dŷ = dy·γ.
#[inline]
pub fn layernorm_row_backward<T: Element>(
    dx: &mut [T],
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: T,
    rstd: T,
) {
    let n = T::from_f64(x.len() as f64);
    let mut dnorm_mean = T::zero();
    let mut dnorm_xhat_mean = T::zero();
    for c in 0..x.len() {
        let xhat = (x[c] - mean) * rstd;
        let dnorm = dy[c] * gamma[c];
        dnorm_mean = dnorm_mean + dnorm;
        dnorm_xhat_mean = dnorm_xhat_mean + dnorm * xhat;
    }
    dnorm_mean = dnorm_mean / n;
    dnorm_xhat_mean = dnorm_xhat_mean / n;
    for c in 0..x.len() {
        let xhat = (x[c] - mean) * rstd;
        dx[c] = (dy[c] * gamma[c] - dnorm_mean - xhat * dnorm_xhat_mean) * rstd;
    }
}

/// dx[rows,cols] (overwritten), dγ[cols] += Σ dy·x̂, dβ[cols] += Σ dy.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<T: Element>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    rows: usize,
    cols: usize,
) {
    for r in 0..rows {
        let s = r * cols..(r + 1) * cols;
        layernorm_row_backward(
            &mut dx[s.clone()],
            &dy[s.clone()],
            &x[s.clone()],
            gamma,
            mean[r],
            rstd[r],
        );
        for c in 0..cols {
            let i = r * cols + c;
            let xhat = (x[i] - mean[r]) * rstd[r];
            dgamma[c] = dgamma[c] + dy[i] * xhat;
            dbeta[c] = dbeta[c] + dy[i];
        }
    }
}
