//! GroupNorm on NCHW (trailing dims flattened to `spatial`), affine per channel.

use crate::element::Element;
use crate::ops::GroupNormShape;

/// y[N,C,S], mean[N·G], rstd[N·G] from x[N,C,S], γ[C], β[C]. Statistics over the
/// (C/G)·S contiguous values of each (n, g).
#[allow(clippy::too_many_arguments)]
pub fn groupnorm_forward<T: Element>(
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    s: &GroupNormShape,
    eps: T,
) {
    let cpg = s.channels / s.groups;
    let glen = cpg * s.spatial;
    let n_elems = T::from_f64(glen as f64);
    for ng in 0..s.batch * s.groups {
        let xs = &x[ng * glen..(ng + 1) * glen];
        let mut sum = T::zero();
        for &v in xs {
            sum = sum + v;
        }
        let m = sum / n_elems;
        let mut var = T::zero();
        for &v in xs {
            var = var + (v - m) * (v - m);
        }
        let rs = T::one() / (var / n_elems + eps).sqrt();
        mean[ng] = m;
        rstd[ng] = rs;
        let g = ng % s.groups;
        for cl in 0..cpg {
            let c = g * cpg + cl;
            for p in 0..s.spatial {
                let i = ng * glen + cl * s.spatial + p;
                y[i] = (x[i] - m) * rs * gamma[c] + beta[c];
            }
        }
    }
}

/// dx (overwritten), dγ[C] += Σ dy·x̂, dβ[C] += Σ dy.
#[allow(clippy::too_many_arguments)]
pub fn groupnorm_backward<T: Element>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    s: &GroupNormShape,
) {
    let cpg = s.channels / s.groups;
    let glen = cpg * s.spatial;
    let n_elems = T::from_f64(glen as f64);
    for ng in 0..s.batch * s.groups {
        let g = ng % s.groups;
        let (m, rs) = (mean[ng], rstd[ng]);
        let mut dnorm_mean = T::zero();
        let mut dnorm_xhat_mean = T::zero();
        for cl in 0..cpg {
            let c = g * cpg + cl;
            for p in 0..s.spatial {
                let i = ng * glen + cl * s.spatial + p;
                let xhat = (x[i] - m) * rs;
                let dnorm = dy[i] * gamma[c];
                dnorm_mean = dnorm_mean + dnorm;
                dnorm_xhat_mean = dnorm_xhat_mean + dnorm * xhat;
                dgamma[c] = dgamma[c] + dy[i] * xhat;
                dbeta[c] = dbeta[c] + dy[i];
            }
        }
        dnorm_mean = dnorm_mean / n_elems;
        dnorm_xhat_mean = dnorm_xhat_mean / n_elems;
        for cl in 0..cpg {
            let c = g * cpg + cl;
            for p in 0..s.spatial {
                let i = ng * glen + cl * s.spatial + p;
                let xhat = (x[i] - m) * rs;
                dx[i] = (dy[i] * gamma[c] - dnorm_mean - xhat * dnorm_xhat_mean) * rs;
            }
        }
    }
}
