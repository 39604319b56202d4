//! Row L2 normalisation and the SoftCLIP / InfoNCE losses on n×n logits.
//!
//! - Normalisation: Σx² and x·dy in f64 lanes (rows of 257·768 values); one task per
//!   row when there are enough rows (norm then scale, the row still in cache), else
//!   each row is split into chunks: partial sums in parallel, combined per row, then a
//!   second parallel pass scales the chunks.
//! - Contrastive kernels: the n×n logit matrices are small next to the GEMMs that
//!   make them, so they compute in f64 (max-subtracted log-sum-exp per row and per
//!   column, soft labels, gradients) and round once; parallel over rows when n is
//!   large. The C_tt gradient uses the lse-free form Q_ij·(h_i − S_ij)/(2n) with
//!   S = C_pt + C_ptᵀ, h_i = Σ_k Q_ik·S_ik (the log-sum-exp terms cancel exactly).

// The kernel signatures are the Backend trait's; closures destructure zipped
// (parallel) iterators, whose tuple types read clearer spelled out than aliased.
#![allow(clippy::too_many_arguments, clippy::type_complexity)]

use crate::par::{reduce8, sum_sq_f64, Exec, MIN_CHUNK_MEM, SEQ_COMPUTE, SEQ_MEM};
use crate::{CpuBackend, CpuBuffer};
use brain_core::ops::NORMALIZE_EPS;
use brain_core::{check, ContrastiveLoss, Result};
use rayon::prelude::*;

/// Σ a·b in f64 over 8 lanes.
#[inline(always)]
fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut ia = a.chunks_exact(8);
    let mut ib = b.chunks_exact(8);
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for l in 0..8 {
            acc[l] += ca[l] as f64 * cb[l] as f64;
        }
    }
    let mut t = 0f64;
    for (&x, &y) in ia.remainder().iter().zip(ib.remainder()) {
        t += x as f64 * y as f64;
    }
    reduce8(acc) + t
}

/// How to split `rows` rows of `cols` values: chunk length (a divisor-free split:
/// the last chunk of a row may be shorter) and chunks per row.
fn row_split(ex: Exec, rows: usize, cols: usize) -> (usize, usize) {
    if !ex.par || rows >= 2 * ex.threads || cols <= MIN_CHUNK_MEM {
        return (cols.max(1), 1);
    }
    let per_row = (4 * ex.threads).div_ceil(rows.max(1));
    let chunk = cols.div_ceil(per_row).max(MIN_CHUNK_MEM).div_ceil(64) * 64;
    (chunk, cols.div_ceil(chunk))
}

/// Per-row reduction `f(chunk of a, chunk of b)` summed over each row, parallel over
/// (row, chunk) pieces.
fn row_sums(
    ex: Exec,
    a: &[f32],
    b: &[f32],
    rows: usize,
    cols: usize,
    f: impl Fn(&[f32], &[f32]) -> f64 + Sync,
) -> Vec<f64> {
    let (chunk, per_row) = row_split(ex, rows, cols);
    let piece = |p: usize| {
        let (r, c) = (p / per_row, p % per_row);
        let s = r * cols + c * chunk..r * cols + ((c + 1) * chunk).min(cols);
        f(&a[s.clone()], &b[s])
    };
    let parts: Vec<f64> = if ex.par {
        (0..rows * per_row).into_par_iter().map(piece).collect()
    } else {
        (0..rows * per_row).map(piece).collect()
    };
    parts.chunks(per_row).map(|p| p.iter().sum()).collect()
}

/// Apply `f(row, chunk of out, offset of the chunk in its row)` over every piece.
fn row_apply(
    ex: Exec,
    out: &mut [f32],
    rows: usize,
    cols: usize,
    f: impl Fn(usize, &mut [f32], usize) + Sync + Send,
) {
    let (chunk, per_row) = row_split(ex, rows, cols);
    let body = |(r, row): (usize, &mut [f32])| {
        for (c, piece) in row.chunks_mut(chunk).enumerate() {
            f(r, piece, c * chunk);
        }
    };
    if ex.par && per_row > 1 {
        out.par_chunks_mut(cols)
            .enumerate()
            .flat_map(|(r, row)| {
                row.par_chunks_mut(chunk)
                    .enumerate()
                    .map(move |(c, p)| (r, c, p))
            })
            .for_each(|(r, c, p)| f(r, p, c * chunk));
    } else if ex.par {
        out.par_chunks_mut(cols).enumerate().for_each(body);
    } else {
        out.chunks_mut(cols).enumerate().for_each(body);
    }
}

/// 1/max(norm, eps) with NaN kept.
#[inline(always)]
fn inv_denominator(norm: f64) -> f64 {
    if norm < NORMALIZE_EPS {
        1.0 / NORMALIZE_EPS
    } else {
        1.0 / norm
    }
}

/// `Backend::l2_normalize_rows_forward` on the CPU.
pub(crate) fn l2_normalize_rows_forward(
    be: &CpuBackend,
    x: &CpuBuffer,
    y: &mut CpuBuffer,
    norms: &mut CpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check::l2_normalize_rows_forward(x.len(), y.len(), norms.len(), rows, cols)?;
    if rows == 0 {
        return Ok(());
    }
    let x = x.as_slice();
    let (y, norms) = (y.as_mut_slice(), norms.as_mut_slice());
    if cols == 0 {
        norms.fill(0.0);
        return Ok(());
    }
    be.exec(x.len(), SEQ_MEM, |ex| {
        let (_, per_row) = row_split(ex, rows, cols);
        if per_row == 1 {
            // One pass per row: Σx², then y = x/max(‖x‖, eps) while the row is cached.
            let row = |((yr, xr), n): ((&mut [f32], &[f32]), &mut f32)| {
                let norm = sum_sq_f64(xr).sqrt();
                *n = norm as f32;
                let inv = inv_denominator(norm) as f32;
                for (y, &x) in yr.iter_mut().zip(xr) {
                    *y = x * inv;
                }
            };
            if ex.par {
                y.par_chunks_mut(cols)
                    .zip(x.par_chunks(cols))
                    .zip(norms.par_iter_mut())
                    .with_min_len(Exec::min_items(cols, MIN_CHUNK_MEM))
                    .for_each(row);
            } else {
                y.chunks_mut(cols)
                    .zip(x.chunks(cols))
                    .zip(norms.iter_mut())
                    .for_each(row);
            }
            return;
        }
        let ss = row_sums(ex, x, x, rows, cols, |a, _| sum_sq_f64(a));
        let inv: Vec<f32> = ss
            .iter()
            .map(|&s| inv_denominator(s.sqrt()) as f32)
            .collect();
        for (n, s) in norms.iter_mut().zip(&ss) {
            *n = s.sqrt() as f32;
        }
        row_apply(ex, y, rows, cols, |r, piece, off| {
            let xr = &x[r * cols + off..r * cols + off + piece.len()];
            let k = inv[r];
            for (y, &x) in piece.iter_mut().zip(xr) {
                *y = x * k;
            }
        });
    });
    Ok(())
}

/// `Backend::l2_normalize_rows_backward` on the CPU.
pub(crate) fn l2_normalize_rows_backward(
    be: &CpuBackend,
    dy: &CpuBuffer,
    x: &CpuBuffer,
    norms: &CpuBuffer,
    dx: &mut CpuBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check::l2_normalize_rows_backward(dy.len(), x.len(), norms.len(), dx.len(), rows, cols)?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let (dy, x, norms) = (dy.as_slice(), x.as_slice(), norms.as_slice());
    let dx = dx.as_mut_slice();
    let eps = NORMALIZE_EPS as f32;
    // Per row: (k, inv) with dx = (dy − x·k)·inv; clamped rows: k = 0, inv = 1/eps.
    let coef = |norm: f32, xdy: f64| -> (f32, f32) {
        if norm < eps {
            (0.0, (1.0 / NORMALIZE_EPS) as f32)
        } else {
            let nn = norm as f64;
            ((xdy / (nn * nn)) as f32, (1.0 / nn) as f32)
        }
    };
    let apply = |dxr: &mut [f32], dyr: &[f32], xr: &[f32], (k, inv): (f32, f32)| {
        for ((d, &g), &v) in dxr.iter_mut().zip(dyr).zip(xr) {
            *d = (g - v * k) * inv;
        }
    };
    be.exec(x.len(), SEQ_MEM, |ex| {
        let (_, per_row) = row_split(ex, rows, cols);
        if per_row == 1 {
            let row = |(((dxr, dyr), xr), &n): (((&mut [f32], &[f32]), &[f32]), &f32)| {
                let xdy = if n < eps { 0.0 } else { dot_f64(xr, dyr) };
                apply(dxr, dyr, xr, coef(n, xdy));
            };
            if ex.par {
                dx.par_chunks_mut(cols)
                    .zip(dy.par_chunks(cols))
                    .zip(x.par_chunks(cols))
                    .zip(norms.par_iter())
                    .with_min_len(Exec::min_items(cols, MIN_CHUNK_MEM))
                    .for_each(row);
            } else {
                dx.chunks_mut(cols)
                    .zip(dy.chunks(cols))
                    .zip(x.chunks(cols))
                    .zip(norms.iter())
                    .for_each(row);
            }
            return;
        }
        let xdy = row_sums(ex, x, dy, rows, cols, dot_f64);
        let coefs: Vec<(f32, f32)> = norms.iter().zip(&xdy).map(|(&n, &s)| coef(n, s)).collect();
        row_apply(ex, dx, rows, cols, |r, piece, off| {
            let s = r * cols + off..r * cols + off + piece.len();
            apply(piece, &dy[s.clone()], &x[s], coefs[r]);
        });
    });
    Ok(())
}

// ------------------------------------------------------------------ n×n logits

/// max that propagates NaN.
#[inline(always)]
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// (max, log Σ exp(v − max)) over `v(k)`, k < n, in f64.
#[inline(always)]
fn max_logsum(n: usize, v: impl Fn(usize) -> f64) -> (f64, f64) {
    let mut m = v(0);
    for k in 1..n {
        m = nan_max(m, v(k));
    }
    let mut s = 0.0;
    for k in 0..n {
        s += (v(k) - m).exp();
    }
    (m, s.ln())
}

/// Row and column (max, log-sum) of C_pt[n,n]; `pm` maps over indices in parallel.
fn stats(ex: Exec, c: &[f32], n: usize) -> (Vec<(f64, f64)>, Vec<(f64, f64)>) {
    let row = |i: usize| max_logsum(n, |j| c[i * n + j] as f64);
    let col = |i: usize| max_logsum(n, |k| c[k * n + i] as f64);
    if ex.par {
        (
            (0..n).into_par_iter().map(row).collect(),
            (0..n).into_par_iter().map(col).collect(),
        )
    } else {
        ((0..n).map(row).collect(), (0..n).map(col).collect())
    }
}

/// Q = softmax_row(C_tt) in f64 (SoftCLIP only).
fn soft_labels(ex: Exec, tt: &[f32], n: usize) -> Vec<f64> {
    let mut q = vec![0f64; n * n];
    let row = |(i, qr): (usize, &mut [f64])| {
        let t = &tt[i * n..(i + 1) * n];
        let (m, ls) = max_logsum(n, |j| t[j] as f64);
        for (q, &v) in qr.iter_mut().zip(t) {
            *q = ((v as f64 - m) - ls).exp();
        }
    };
    if ex.par {
        q.par_chunks_mut(n).enumerate().for_each(row);
    } else {
        q.chunks_mut(n).enumerate().for_each(row);
    }
    q
}

/// Work estimate of the n×n kernels (a few exp per entry).
fn logit_work(n: usize) -> usize {
    n.saturating_mul(n).saturating_mul(4)
}

/// `Backend::contrastive_forward` on the CPU.
pub(crate) fn contrastive_forward(
    be: &CpuBackend,
    kind: ContrastiveLoss,
    logits_pt: &CpuBuffer,
    logits_tt: Option<&CpuBuffer>,
    n: usize,
    loss: &mut CpuBuffer,
) -> Result<()> {
    check::contrastive_forward(
        kind,
        logits_pt.len(),
        logits_tt.map(CpuBuffer::len),
        n,
        loss.len(),
    )?;
    let pt = logits_pt.as_slice();
    let total = be.exec(logit_work(n), SEQ_COMPUTE, |ex| {
        let (rs, cs) = stats(ex, pt, n);
        // −log-softmax of both directions at (i, j): non-negative, no cancellation.
        let g = |i: usize, j: usize| {
            ((rs[i].0 - pt[i * n + j] as f64) + rs[i].1)
                + ((cs[i].0 - pt[j * n + i] as f64) + cs[i].1)
        };
        match (kind, logits_tt) {
            (ContrastiveLoss::SoftClip, Some(tt)) => {
                let tt = tt.as_slice();
                let row = |i: usize| {
                    let t = &tt[i * n..(i + 1) * n];
                    let (m, ls) = max_logsum(n, |j| t[j] as f64);
                    (0..n)
                        .map(|j| ((t[j] as f64 - m) - ls).exp() * g(i, j))
                        .sum::<f64>()
                };
                if ex.par {
                    (0..n).into_par_iter().map(row).sum::<f64>()
                } else {
                    (0..n).map(row).sum()
                }
            }
            _ => (0..n).map(|i| g(i, i)).sum(),
        }
    });
    loss.as_mut_slice()[0] = (total / (2.0 * n as f64)) as f32;
    Ok(())
}

/// `Backend::contrastive_backward` on the CPU.
pub(crate) fn contrastive_backward(
    be: &CpuBackend,
    kind: ContrastiveLoss,
    logits_pt: &CpuBuffer,
    logits_tt: Option<&CpuBuffer>,
    n: usize,
    scale: f64,
    dlogits_pt: &mut CpuBuffer,
    dlogits_tt: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::contrastive_backward(
        kind,
        logits_pt.len(),
        logits_tt.map(CpuBuffer::len),
        n,
        scale,
        dlogits_pt.len(),
        dlogits_tt.as_deref().map(CpuBuffer::len),
    )?;
    let pt = logits_pt.as_slice();
    let soft = kind == ContrastiveLoss::SoftClip;
    let c = scale / (2.0 * n as f64);
    let dpt = dlogits_pt.as_mut_slice();
    let dtt = dlogits_tt.map(CpuBuffer::as_mut_slice);
    be.exec(logit_work(n), SEQ_COMPUTE, |ex| {
        let (rs, cs) = stats(ex, pt, n);
        let q = match (soft, logits_tt) {
            (true, Some(tt)) => soft_labels(ex, tt.as_slice(), n),
            _ => Vec::new(),
        };
        let qv = |a: usize, b: usize| -> f64 {
            if soft {
                q[a * n + b]
            } else if a == b {
                1.0
            } else {
                0.0
            }
        };
        // dC_pt[a,b] = c·((P_ab − Q_ab) + (R_ab − Q_ba)).
        let row_pt = |(a, out): (usize, &mut [f32])| {
            for (b, o) in out.iter_mut().enumerate() {
                let x = pt[a * n + b] as f64;
                let p = ((x - rs[a].0) - rs[a].1).exp();
                let r = ((x - cs[b].0) - cs[b].1).exp();
                *o = (c * ((p - qv(a, b)) + (r - qv(b, a)))) as f32;
            }
        };
        // dC_tt[i,j] = c·Q_ij·(h_i − S_ij), S = C_pt + C_ptᵀ, h_i = Σ_k Q_ik·S_ik.
        let row_tt = |(i, out): (usize, &mut [f32])| {
            if !soft {
                out.fill(0.0);
                return;
            }
            let s = |k: usize| pt[i * n + k] as f64 + pt[k * n + i] as f64;
            let qr = &q[i * n..(i + 1) * n];
            let h: f64 = (0..n).map(|k| qr[k] * s(k)).sum();
            for (j, o) in out.iter_mut().enumerate() {
                *o = (c * qr[j] * (h - s(j))) as f32;
            }
        };
        if ex.par {
            dpt.par_chunks_mut(n).enumerate().for_each(row_pt);
            if let Some(dtt) = dtt {
                dtt.par_chunks_mut(n).enumerate().for_each(row_tt);
            }
        } else {
            dpt.chunks_mut(n).enumerate().for_each(row_pt);
            if let Some(dtt) = dtt {
                dtt.chunks_mut(n).enumerate().for_each(row_tt);
            }
        }
    });
    Ok(())
}
