//! Row L2 normalisation and the SoftCLIP / InfoNCE losses on n×n logits.
//!
//! `*_checked` functions validate with [`crate::check`] and run the plain kernels;
//! [`ReferenceBackend`](super::ReferenceBackend) calls them.
//!
//! Definitions (rows of the logit matrices are "queries"):
//! - P = softmax_row(C_pt), R = softmax over each column of C_pt (the row softmax of
//!   C_ptᵀ, stored untransposed: R[k,i] = exp(C_pt[k,i]) / Σ_k' exp(C_pt[k',i])),
//!   Q = softmax_row(C_tt) for SoftCLIP, Q = I for InfoNCE.
//! - loss = 1/(2n) Σ_i Σ_j Q_ij·[(lse_row_i − C_pt[i,j]) + (lse_col_i − C_pt[j,i])],
//!   every bracket a max-subtracted, non-negative −log-softmax, so τ = 0.005 (logits up
//!   to ±200) loses nothing to cancellation.
//! - ∂loss/∂C_pt[a,b] = (P_ab − Q_ab + R_ab − Q_ba)/(2n).
//! - ∂loss/∂C_tt[i,j] = Q_ij·(G_ij − Σ_k Q_ik·G_ik) with G = ∂loss/∂Q (softmax backward).

use crate::check;
use crate::element::Element;
use crate::error::Result;
use crate::ops::{ContrastiveLoss, NORMALIZE_EPS};
use alloc::vec;
use alloc::vec::Vec;

/// max that propagates NaN (Float::max would drop it).
#[inline]
fn nan_max<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// y[rows,cols] = x / max(‖x_row‖, 1e-12), norms[rows] = ‖x_row‖ (F.normalize).
pub fn l2_normalize_rows_forward<T: Element>(
    y: &mut [T],
    norms: &mut [T],
    x: &[T],
    rows: usize,
    cols: usize,
) {
    let eps = T::from_f64(NORMALIZE_EPS);
    for r in 0..rows {
        let xr = &x[r * cols..(r + 1) * cols];
        let mut ss = T::zero();
        for &v in xr {
            ss = ss + v * v;
        }
        let norm = ss.sqrt();
        norms[r] = norm;
        // NaN norms stay NaN: `max` is written so a NaN divisor is kept.
        let denom = if norm < eps { eps } else { norm };
        for c in 0..cols {
            y[r * cols + c] = xr[c] / denom;
        }
    }
}

/// dx[rows,cols] (overwritten) from dy[rows,cols], x[rows,cols], norms[rows]:
/// ‖x‖ ≥ 1e-12: dx = (dy − x·(x·dy)/‖x‖²)/‖x‖; below (the clamp is active): dx = dy/1e-12.
pub fn l2_normalize_rows_backward<T: Element>(
    dx: &mut [T],
    dy: &[T],
    x: &[T],
    norms: &[T],
    rows: usize,
    cols: usize,
) {
    let eps = T::from_f64(NORMALIZE_EPS);
    for r in 0..rows {
        let s = r * cols..(r + 1) * cols;
        let (xr, dyr, dxr) = (&x[s.clone()], &dy[s.clone()], &mut dx[s]);
        let norm = norms[r];
        if norm < eps {
            for c in 0..cols {
                dxr[c] = dyr[c] / eps;
            }
            continue;
        }
        let mut xdy = T::zero();
        for c in 0..cols {
            xdy = xdy + xr[c] * dyr[c];
        }
        let k = xdy / (norm * norm);
        for c in 0..cols {
            dxr[c] = (dyr[c] - xr[c] * k) / norm;
        }
    }
}

/// (max, log Σ exp(v − max)) of a row or column of logits.
type MaxLogSum<T> = (T, T);

/// (max, log Σ exp(v − max)) of the values `v(k)`, k < n; NaN propagates.
fn max_logsum<T: Element>(n: usize, v: impl Fn(usize) -> T) -> (T, T) {
    let mut m = v(0);
    for k in 1..n {
        m = nan_max(m, v(k));
    }
    let mut s = T::zero();
    for k in 0..n {
        s = s + (v(k) - m).exp();
    }
    (m, s.ln())
}

/// Row statistics of C_pt [n,n]: lse_row[i] = log Σ_j exp C_pt[i,j] split as (max, log-sum);
/// column statistics the same over C_pt[·,i].
fn logit_stats<T: Element>(c: &[T], n: usize) -> (Vec<MaxLogSum<T>>, Vec<MaxLogSum<T>>) {
    let rows = (0..n).map(|i| max_logsum(n, |j| c[i * n + j])).collect();
    let cols = (0..n).map(|i| max_logsum(n, |k| c[k * n + i])).collect();
    (rows, cols)
}

/// Q[n,n] = softmax_row(C_tt) (SoftCLIP) or I (InfoNCE).
fn soft_labels<T: Element>(kind: ContrastiveLoss, tt: Option<&[T]>, n: usize) -> Vec<T> {
    let mut q = vec![T::zero(); n * n];
    match (kind, tt) {
        (ContrastiveLoss::SoftClip, Some(tt)) => {
            for i in 0..n {
                let (m, ls) = max_logsum(n, |j| tt[i * n + j]);
                for j in 0..n {
                    q[i * n + j] = ((tt[i * n + j] - m) - ls).exp();
                }
            }
        }
        _ => {
            for i in 0..n {
                q[i * n + i] = T::one();
            }
        }
    }
    q
}

/// G[i,j] = ∂loss/∂Q_ij = [(lse_row_i − C_pt[i,j]) + (lse_col_i − C_pt[j,i])]/(2n).
fn label_weights<T: Element>(pt: &[T], n: usize) -> Vec<T> {
    let (rs, cs) = logit_stats(pt, n);
    let inv2n = T::one() / T::from_f64(2.0 * n as f64);
    let mut g = vec![T::zero(); n * n];
    for i in 0..n {
        for j in 0..n {
            let l1 = (rs[i].0 - pt[i * n + j]) + rs[i].1;
            let l2 = (cs[i].0 - pt[j * n + i]) + cs[i].1;
            g[i * n + j] = (l1 + l2) * inv2n;
        }
    }
    g
}

/// loss = Σ_ij Q_ij·G_ij over logits_pt[n,n] (and logits_tt[n,n] for SoftCLIP).
pub fn contrastive_forward<T: Element>(
    kind: ContrastiveLoss,
    logits_pt: &[T],
    logits_tt: Option<&[T]>,
    n: usize,
) -> T {
    let q = soft_labels(kind, logits_tt, n);
    let g = label_weights(logits_pt, n);
    let mut loss = T::zero();
    for i in 0..n * n {
        // Q_ij = 0 exactly (InfoNCE off-diagonal, or an underflowed softmax) drops the
        // term, as PyTorch's 0·finite does; NaN in G still reaches the diagonal terms.
        if kind == ContrastiveLoss::InfoNce && q[i] == T::zero() {
            continue;
        }
        loss = loss + q[i] * g[i];
    }
    loss
}

/// dlogits_pt[n,n] = scale·(P − Q + R − Qᵀ)/(2n) and, when given (SoftCLIP),
/// dlogits_tt[n,n] = scale·Q⊙(G − rowsum(Q⊙G)) (overwritten; zero for InfoNCE).
pub fn contrastive_backward<T: Element>(
    kind: ContrastiveLoss,
    logits_pt: &[T],
    logits_tt: Option<&[T]>,
    n: usize,
    scale: T,
    dlogits_pt: &mut [T],
    dlogits_tt: Option<&mut [T]>,
) {
    let pt = logits_pt;
    let q = soft_labels(kind, logits_tt, n);
    let (rs, cs) = logit_stats(pt, n);
    let c = scale / T::from_f64(2.0 * n as f64);
    for a in 0..n {
        for b in 0..n {
            let x = pt[a * n + b];
            let p = ((x - rs[a].0) - rs[a].1).exp();
            let r = ((x - cs[b].0) - cs[b].1).exp();
            dlogits_pt[a * n + b] = c * ((p - q[a * n + b]) + (r - q[b * n + a]));
        }
    }
    if let Some(dtt) = dlogits_tt {
        if kind == ContrastiveLoss::InfoNce {
            dtt.iter_mut().for_each(|v| *v = T::zero());
            return;
        }
        let g = label_weights(pt, n);
        for i in 0..n {
            let mut qg = T::zero();
            for k in 0..n {
                qg = qg + q[i * n + k] * g[i * n + k];
            }
            for j in 0..n {
                dtt[i * n + j] = scale * q[i * n + j] * (g[i * n + j] - qg);
            }
        }
    }
}

/// 1/max(√sq, 1e-12) per row, and whether the norm is above the clamp (NaN counts as
/// above, so it propagates).
fn inv_norms<T: Element>(sq: &[T]) -> Vec<(T, bool)> {
    let eps = T::from_f64(NORMALIZE_EPS);
    sq.iter()
        .map(|&v| {
            let norm = v.sqrt();
            if norm < eps {
                (T::one() / eps, false)
            } else {
                (T::one() / norm, true)
            }
        })
        .collect()
}

/// logits_pt[i,j] = g_pt[i,j]·(r_i·s_j)/τ and, for SoftCLIP,
/// logits_tt[i,j] = g_tt[i,j]·(s_i·s_j)/τ, with r = 1/max(√p_sq, 1e-12),
/// s = 1/max(√t_sq, 1e-12): the logits of the row-normalised inputs from the Gram
/// matrices of the raw ones (G_pt = P·Tᵀ, G_tt = T·Tᵀ, p_sq = ‖P_i‖², t_sq = ‖T_j‖²).
pub fn clip_logits_forward<T: Element>(
    g_pt: &[T],
    g_tt: Option<&[T]>,
    p_sq: &[T],
    t_sq: &[T],
    n: usize,
    temperature: T,
    logits_pt: &mut [T],
    logits_tt: Option<&mut [T]>,
) {
    let (r, s) = (inv_norms(p_sq), inv_norms(t_sq));
    for i in 0..n {
        for j in 0..n {
            logits_pt[i * n + j] = g_pt[i * n + j] * (r[i].0 * s[j].0) / temperature;
        }
    }
    if let (Some(g), Some(out)) = (g_tt, logits_tt) {
        for i in 0..n {
            for j in 0..n {
                out[i * n + j] = g[i * n + j] * (s[i].0 * s[j].0) / temperature;
            }
        }
    }
}

/// Backward through [`clip_logits_forward`], as n×n coefficient matrices the caller
/// applies to the raw inputs (P, T `[n, d]`):
/// `dP += w_pt·T + d_p·P` and `dT += w_ptᵀ·P + w_tt·T`, with C = logits_pt,
/// E = dlogits_tt (zero when absent):
/// - w_pt[i,j] = dC_ij·r_i·s_j/τ;
/// - d_p = diag(α), α_i = −r_i²·Σ_j dC_ij·C_ij (0 where the norm is clamped);
/// - w_tt[m,l] = (E_ml + E_lm)·s_m·s_l/τ + δ_ml·β_m,
///   β_m = −s_m²·(Σ_i dC_im·C_im + Σ_l E_ml·Ctt_ml + Σ_k E_km·Ctt_km) (0 if clamped).
///
/// Outputs are overwritten.
pub fn clip_logits_backward<T: Element>(
    logits_pt: &[T],
    logits_tt: Option<&[T]>,
    dlogits_pt: &[T],
    dlogits_tt: Option<&[T]>,
    p_sq: &[T],
    t_sq: &[T],
    n: usize,
    temperature: T,
    w_pt: &mut [T],
    d_p: Option<&mut [T]>,
    w_tt: Option<&mut [T]>,
) {
    let (r, s) = (inv_norms(p_sq), inv_norms(t_sq));
    let (c, dc) = (logits_pt, dlogits_pt);
    for i in 0..n {
        for j in 0..n {
            w_pt[i * n + j] = dc[i * n + j] * (r[i].0 * s[j].0) / temperature;
        }
    }
    if let Some(d_p) = d_p {
        d_p.iter_mut().for_each(|v| *v = T::zero());
        for i in 0..n {
            if r[i].1 {
                let mut acc = T::zero();
                for j in 0..n {
                    acc = acc + dc[i * n + j] * c[i * n + j];
                }
                d_p[i * n + i] = -(r[i].0 * r[i].0) * acc;
            }
        }
    }
    if let Some(w_tt) = w_tt {
        let tt = match (dlogits_tt, logits_tt) {
            (Some(e), Some(ctt)) => Some((e, ctt)),
            _ => None,
        };
        for m in 0..n {
            for l in 0..n {
                w_tt[m * n + l] = match tt {
                    Some((e, _)) => (e[m * n + l] + e[l * n + m]) * (s[m].0 * s[l].0) / temperature,
                    None => T::zero(),
                };
            }
        }
        for m in 0..n {
            if !s[m].1 {
                continue;
            }
            let mut acc = T::zero();
            for i in 0..n {
                acc = acc + dc[i * n + m] * c[i * n + m];
            }
            if let Some((e, ctt)) = tt {
                for l in 0..n {
                    acc = acc + e[m * n + l] * ctt[m * n + l];
                }
                for k in 0..n {
                    acc = acc + e[k * n + m] * ctt[k * n + m];
                }
            }
            w_tt[m * n + m] = w_tt[m * n + m] - (s[m].0 * s[m].0) * acc;
        }
    }
}

/// The Gram pass over the raw inputs P, T `[n, d]`: `p_sq[i] = ‖P_i‖²`,
/// `t_sq[j] = ‖T_j‖²`, `g_pt = P·Tᵀ` and (SoftCLIP) `g_tt = T·Tᵀ`, all overwritten.
pub fn clip_grams_forward<T: Element>(
    preds: &[T],
    targets: &[T],
    n: usize,
    d: usize,
    p_sq: &mut [T],
    t_sq: &mut [T],
    g_pt: &mut [T],
    g_tt: Option<&mut [T]>,
) {
    let dot = |a: &[T], i: usize, b: &[T], j: usize| {
        (0..d).fold(T::zero(), |s, k| s + a[i * d + k] * b[j * d + k])
    };
    for i in 0..n {
        p_sq[i] = dot(preds, i, preds, i);
        t_sq[i] = dot(targets, i, targets, i);
        for j in 0..n {
            g_pt[i * n + j] = dot(preds, i, targets, j);
        }
    }
    if let Some(g) = g_tt {
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = dot(targets, i, targets, j);
            }
        }
    }
}

/// Applies the coefficients of [`clip_logits_backward`] to the raw inputs (both
/// accumulated): `dpreds += w_pt·T + d_p·P` and `dtargets += w_ptᵀ·P + w_tt·T`, all
/// matrices `[n, n]` row-major. Only the diagonal of `d_p` is read, and for InfoNCE
/// only that of `w_tt` (its off-diagonal entries are zero by construction).
pub fn clip_inputs_backward<T: Element>(
    kind: ContrastiveLoss,
    w_pt: &[T],
    d_p: &[T],
    w_tt: &[T],
    preds: &[T],
    targets: &[T],
    n: usize,
    d: usize,
    dpreds: Option<&mut [T]>,
    dtargets: Option<&mut [T]>,
) {
    let soft = kind == ContrastiveLoss::SoftClip;
    if let Some(dp) = dpreds {
        for i in 0..n {
            for k in 0..d {
                let mut acc = d_p[i * n + i] * preds[i * d + k];
                for l in 0..n {
                    acc = acc + w_pt[i * n + l] * targets[l * d + k];
                }
                dp[i * d + k] = dp[i * d + k] + acc;
            }
        }
    }
    if let Some(dt) = dtargets {
        for i in 0..n {
            for k in 0..d {
                let mut acc = T::zero();
                for l in 0..n {
                    acc = acc + w_pt[l * n + i] * preds[l * d + k];
                    if soft || l == i {
                        acc = acc + w_tt[i * n + l] * targets[l * d + k];
                    }
                }
                dt[i * d + k] = dt[i * d + k] + acc;
            }
        }
    }
}

/// Validated `clip_grams_forward` (see the [`Backend`](crate::Backend) method).
pub fn clip_grams_forward_checked<T: Element>(
    kind: ContrastiveLoss,
    preds: &[T],
    targets: &[T],
    n: usize,
    d: usize,
    p_sq: &mut [T],
    t_sq: &mut [T],
    g_pt: &mut [T],
    g_tt: Option<&mut [T]>,
) -> Result<()> {
    check::clip_grams_forward(
        kind,
        preds.len(),
        targets.len(),
        n,
        d,
        p_sq.len(),
        t_sq.len(),
        g_pt.len(),
        g_tt.as_deref().map(<[T]>::len),
    )?;
    clip_grams_forward(preds, targets, n, d, p_sq, t_sq, g_pt, g_tt);
    Ok(())
}

/// Validated `clip_inputs_backward` (see the [`Backend`](crate::Backend) method).
pub fn clip_inputs_backward_checked<T: Element>(
    kind: ContrastiveLoss,
    w_pt: &[T],
    d_p: &[T],
    w_tt: &[T],
    preds: &[T],
    targets: &[T],
    n: usize,
    d: usize,
    dpreds: Option<&mut [T]>,
    dtargets: Option<&mut [T]>,
) -> Result<()> {
    check::clip_inputs_backward(
        w_pt.len(),
        d_p.len(),
        w_tt.len(),
        preds.len(),
        targets.len(),
        n,
        d,
        dpreds.as_deref().map(<[T]>::len),
        dtargets.as_deref().map(<[T]>::len),
    )?;
    clip_inputs_backward(
        kind, w_pt, d_p, w_tt, preds, targets, n, d, dpreds, dtargets,
    );
    Ok(())
}

/// Validated `clip_logits_forward` (see the [`Backend`](crate::Backend) method).
pub fn clip_logits_forward_checked<T: Element>(
    kind: ContrastiveLoss,
    g_pt: &[T],
    g_tt: Option<&[T]>,
    p_sq: &[T],
    t_sq: &[T],
    n: usize,
    temperature: f64,
    logits_pt: &mut [T],
    logits_tt: Option<&mut [T]>,
) -> Result<()> {
    check::clip_logits_forward(
        kind,
        g_pt.len(),
        g_tt.map(<[T]>::len),
        p_sq.len(),
        t_sq.len(),
        n,
        temperature,
        logits_pt.len(),
        logits_tt.as_deref().map(<[T]>::len),
    )?;
    let t = T::from_f64(temperature);
    clip_logits_forward(g_pt, g_tt, p_sq, t_sq, n, t, logits_pt, logits_tt);
    Ok(())
}

/// Validated `clip_logits_backward` (see the [`Backend`](crate::Backend) method).
pub fn clip_logits_backward_checked<T: Element>(
    kind: ContrastiveLoss,
    logits_pt: &[T],
    logits_tt: Option<&[T]>,
    dlogits_pt: &[T],
    dlogits_tt: Option<&[T]>,
    p_sq: &[T],
    t_sq: &[T],
    n: usize,
    temperature: f64,
    w_pt: &mut [T],
    d_p: Option<&mut [T]>,
    w_tt: Option<&mut [T]>,
) -> Result<()> {
    check::clip_logits_backward(
        kind,
        logits_pt.len(),
        logits_tt.map(<[T]>::len),
        dlogits_pt.len(),
        dlogits_tt.map(<[T]>::len),
        p_sq.len(),
        t_sq.len(),
        n,
        temperature,
        w_pt.len(),
        d_p.as_deref().map(<[T]>::len),
        w_tt.as_deref().map(<[T]>::len),
    )?;
    let t = T::from_f64(temperature);
    clip_logits_backward(
        logits_pt, logits_tt, dlogits_pt, dlogits_tt, p_sq, t_sq, n, t, w_pt, d_p, w_tt,
    );
    Ok(())
}

/// Validated `l2_normalize_rows_forward` (see the [`Backend`](crate::Backend) method).
pub fn l2_normalize_rows_forward_checked<T: Element>(
    x: &[T],
    y: &mut [T],
    norms: &mut [T],
    rows: usize,
    cols: usize,
) -> Result<()> {
    check::l2_normalize_rows_forward(x.len(), y.len(), norms.len(), rows, cols)?;
    l2_normalize_rows_forward(y, norms, x, rows, cols);
    Ok(())
}

/// Validated `l2_normalize_rows_backward` (see the [`Backend`](crate::Backend) method).
pub fn l2_normalize_rows_backward_checked<T: Element>(
    dy: &[T],
    x: &[T],
    norms: &[T],
    dx: &mut [T],
    rows: usize,
    cols: usize,
) -> Result<()> {
    check::l2_normalize_rows_backward(dy.len(), x.len(), norms.len(), dx.len(), rows, cols)?;
    l2_normalize_rows_backward(dx, dy, x, norms, rows, cols);
    Ok(())
}

/// Validated `contrastive_forward` (see the [`Backend`](crate::Backend) method).
pub fn contrastive_forward_checked<T: Element>(
    kind: ContrastiveLoss,
    logits_pt: &[T],
    logits_tt: Option<&[T]>,
    n: usize,
    loss: &mut [T],
) -> Result<()> {
    check::contrastive_forward(
        kind,
        logits_pt.len(),
        logits_tt.map(<[T]>::len),
        n,
        loss.len(),
    )?;
    loss[0] = contrastive_forward(kind, logits_pt, logits_tt, n);
    Ok(())
}

/// Validated `contrastive_backward` (see the [`Backend`](crate::Backend) method).
pub fn contrastive_backward_checked<T: Element>(
    kind: ContrastiveLoss,
    logits_pt: &[T],
    logits_tt: Option<&[T]>,
    n: usize,
    scale: f64,
    dlogits_pt: &mut [T],
    dlogits_tt: Option<&mut [T]>,
) -> Result<()> {
    check::contrastive_backward(
        kind,
        logits_pt.len(),
        logits_tt.map(<[T]>::len),
        n,
        scale,
        dlogits_pt.len(),
        dlogits_tt.as_deref().map(<[T]>::len),
    )?;
    contrastive_backward(
        kind,
        logits_pt,
        logits_tt,
        n,
        T::from_f64(scale),
        dlogits_pt,
        dlogits_tt,
    );
    Ok(())
}
