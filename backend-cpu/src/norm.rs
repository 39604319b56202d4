//! LayerNorm and GroupNorm, forward and backward.
//!
//! Statistics are taken in f64 (two passes: mean, then Σ(x − mean)²), so inputs with
//! a large offset (x ≈ 100 ± 1) keep their precision; the mean is then split into
//! `hi + lo` f32 halves and `x − mean` formed as `(x − hi) − lo` in f32 lanes. Saved
//! statistics are rounded to f32 once. Parameter gradients are reduced in f64 and
//! added to the accumulators once per call.

// The closures below destructure zipped parallel iterators; their tuple types are
// the iterators' item types, clearer spelled out than hidden behind aliases.
#![allow(clippy::type_complexity)]

use crate::par::{sum_f64, sum_sq_dev_f64, Exec, MIN_CHUNK_MEM};
use brain_core::ops::GroupNormShape;
use rayon::prelude::*;

/// `v` as an unevaluated sum of two f32 (`hi` nearest to `v`).
#[inline(always)]
fn split(v: f64) -> (f32, f32) {
    let hi = v as f32;
    (hi, (v - hi as f64) as f32)
}

/// (mean, rstd) of `x` in f64.
#[inline(always)]
fn stats(x: &[f32], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = sum_f64(x) / n;
    let var = sum_sq_dev_f64(x, mean) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// y = ((x − mean)·rstd)·γ + β with per-element γ, β.
#[inline(always)]
fn normalize_affine(y: &mut [f32], x: &[f32], gamma: &[f32], beta: &[f32], mean: f64, rstd: f32) {
    let (hi, lo) = split(mean);
    for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *y = (((x - hi) - lo) * rstd) * g + b;
    }
}

/// y = ((x − mean)·rstd)·γ + β with one γ, β for the whole slice.
#[inline(always)]
fn normalize_scalar(y: &mut [f32], x: &[f32], g: f32, b: f32, mean: f64, rstd: f32) {
    let (hi, lo) = split(mean);
    for (y, &x) in y.iter_mut().zip(x) {
        *y = (((x - hi) - lo) * rstd) * g + b;
    }
}

// ------------------------------------------------------------------ LayerNorm

/// y[rows, cols], mean[rows], rstd[rows] from x, γ[cols], β[cols]; parallel over rows.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    ex: Exec,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    cols: usize,
    eps: f64,
) {
    let row = |(((yr, xr), m), r): (((&mut [f32], &[f32]), &mut f32), &mut f32)| {
        let (mu, rs) = stats(xr, eps);
        let rs = rs as f32;
        normalize_affine(yr, xr, gamma, beta, mu, rs);
        *m = mu as f32;
        *r = rs;
    };
    if ex.par {
        y.par_chunks_exact_mut(cols)
            .zip(x.par_chunks_exact(cols))
            .zip(mean.par_iter_mut())
            .zip(rstd.par_iter_mut())
            .with_min_len(Exec::min_items(cols, MIN_CHUNK_MEM / 2))
            .for_each(row);
    } else {
        y.chunks_exact_mut(cols)
            .zip(x.chunks_exact(cols))
            .zip(mean.iter_mut())
            .zip(rstd.iter_mut())
            .for_each(row);
    }
}

/// Rows accumulated in f32 before being flushed into the f64 totals.
const FLUSH_ROWS: usize = 16;

/// Per-task accumulators of dγ and dβ: f32 over blocks of `FLUSH_ROWS` rows (full
/// SIMD width), flushed into f64 totals, so the error does not grow with `rows`.
struct GradAcc {
    dg: Vec<f64>,
    db: Vec<f64>,
    bg: Vec<f32>,
    bb: Vec<f32>,
    rows: usize,
}

impl GradAcc {
    fn new(cols: usize) -> Self {
        GradAcc {
            dg: vec![0.0; cols],
            db: vec![0.0; cols],
            bg: vec![0.0; cols],
            bb: vec![0.0; cols],
            rows: 0,
        }
    }
    fn flush(&mut self) {
        for (t, b) in self.dg.iter_mut().zip(self.bg.iter_mut()) {
            *t += *b as f64;
            *b = 0.0;
        }
        for (t, b) in self.db.iter_mut().zip(self.bb.iter_mut()) {
            *t += *b as f64;
            *b = 0.0;
        }
        self.rows = 0;
    }
    fn finish(mut self) -> (Vec<f64>, Vec<f64>) {
        self.flush();
        (self.dg, self.db)
    }
}

/// One row of the backward pass: dx (overwritten) and the row's dγ, dβ terms added
/// to `acc`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn layernorm_row_backward(
    acc: &mut GradAcc,
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: f32,
    rstd: f32,
) {
    let n = x.len();
    let (dy, gamma) = (&dy[..n], &gamma[..n]);
    let (bg, bb) = (&mut acc.bg[..n], &mut acc.bb[..n]);
    // dγ += dy·x̂, dβ += dy (element-wise, vectorises).
    for i in 0..n {
        let xhat = (x[i] - mean) * rstd;
        bg[i] += dy[i] * xhat;
        bb[i] += dy[i];
    }
    acc.rows += 1;
    if acc.rows == FLUSH_ROWS {
        acc.flush();
    }
    // Σ dŷ and Σ dŷ·x̂ over 8 f64 lanes.
    let mut s1 = [0f64; 8];
    let mut s2 = [0f64; 8];
    let main = n - n % 8;
    for ((dy8, x8), g8) in dy[..main]
        .chunks_exact(8)
        .zip(x[..main].chunks_exact(8))
        .zip(gamma[..main].chunks_exact(8))
    {
        for l in 0..8 {
            let xhat = (x8[l] - mean) * rstd;
            let dnorm = dy8[l] * g8[l];
            s1[l] += dnorm as f64;
            s2[l] += (dnorm * xhat) as f64;
        }
    }
    let (mut t1, mut t2) = (0f64, 0f64);
    for i in main..n {
        let xhat = (x[i] - mean) * rstd;
        let dnorm = dy[i] * gamma[i];
        t1 += dnorm as f64;
        t2 += (dnorm * xhat) as f64;
    }
    let inv_n = 1.0 / n as f64;
    let a = ((crate::par::reduce8(s1) + t1) * inv_n) as f32;
    let b = ((crate::par::reduce8(s2) + t2) * inv_n) as f32;
    // Pass 2: dx = (dŷ − mean(dŷ) − x̂·mean(dŷ·x̂))·rstd.
    for (((dx, &dy), &x), &g) in dx.iter_mut().zip(dy).zip(x).zip(gamma) {
        let xhat = (x - mean) * rstd;
        *dx = (dy * g - a - xhat * b) * rstd;
    }
}

/// dx (overwritten), dγ += Σ dy·x̂, dβ += Σ dy; parallel over blocks of rows with one
/// set of accumulators per task, reduced in f64 at the end.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    ex: Exec,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    cols: usize,
) {
    let zero = || (vec![0f64; cols], vec![0f64; cols]);
    let step =
        |mut acc: GradAcc,
         ((((dxr, dyr), xr), &m), &r): ((((&mut [f32], &[f32]), &[f32]), &f32), &f32)| {
            layernorm_row_backward(&mut acc, dxr, dyr, xr, gamma, m, r);
            acc
        };
    let (dg, db) = if ex.par {
        dx.par_chunks_exact_mut(cols)
            .zip(dy.par_chunks_exact(cols))
            .zip(x.par_chunks_exact(cols))
            .zip(mean.par_iter())
            .zip(rstd.par_iter())
            .with_min_len(Exec::min_items(cols, MIN_CHUNK_MEM / 2))
            .fold(|| GradAcc::new(cols), step)
            .map(GradAcc::finish)
            .reduce_with(|mut a, b| {
                add_assign(&mut a.0, &b.0);
                add_assign(&mut a.1, &b.1);
                a
            })
            .unwrap_or_else(zero)
    } else {
        dx.chunks_exact_mut(cols)
            .zip(dy.chunks_exact(cols))
            .zip(x.chunks_exact(cols))
            .zip(mean.iter())
            .zip(rstd.iter())
            .fold(GradAcc::new(cols), step)
            .finish()
    };
    for (d, s) in dgamma.iter_mut().zip(dg) {
        *d = (*d as f64 + s) as f32;
    }
    for (d, s) in dbeta.iter_mut().zip(db) {
        *d = (*d as f64 + s) as f32;
    }
}

fn add_assign(a: &mut [f64], b: &[f64]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

// ------------------------------------------------------------------ GroupNorm

/// GroupNorm forward; parallel over the N·G groups (each a contiguous `(C/G)·S`
/// run), and inside a group over its channels when there are fewer groups than
/// threads.
#[allow(clippy::too_many_arguments)]
pub fn groupnorm_forward(
    ex: Exec,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: &GroupNormShape,
    eps: f64,
) {
    let cpg = s.channels / s.groups;
    let glen = cpg * s.spatial;
    let n_groups = s.batch * s.groups;
    if glen == 0 {
        // Zero channels: the statistics of an empty group are 0/0, as in the reference.
        mean.fill(f32::NAN);
        rstd.fill(f32::NAN);
        return;
    }
    let inner_par = ex.par && n_groups < ex.threads && glen >= 2 * MIN_CHUNK_MEM;
    let group =
        |(ng, (((yg, xg), m), r)): (usize, (((&mut [f32], &[f32]), &mut f32), &mut f32))| {
            let g = ng % s.groups;
            let (gam, bet) = (
                &gamma[g * cpg..(g + 1) * cpg],
                &beta[g * cpg..(g + 1) * cpg],
            );
            let (mu, rs) = if inner_par {
                let n = glen as f64;
                let mu = xg.par_chunks(s.spatial).map(sum_f64).sum::<f64>() / n;
                let var = xg
                    .par_chunks(s.spatial)
                    .map(|p| sum_sq_dev_f64(p, mu))
                    .sum::<f64>()
                    / n;
                (mu, 1.0 / (var + eps).sqrt())
            } else {
                stats(xg, eps)
            };
            let rs32 = rs as f32;
            let plane = |(cl, (yp, xp)): (usize, (&mut [f32], &[f32]))| {
                normalize_scalar(yp, xp, gam[cl], bet[cl], mu, rs32)
            };
            if inner_par {
                yg.par_chunks_exact_mut(s.spatial)
                    .zip(xg.par_chunks_exact(s.spatial))
                    .enumerate()
                    .for_each(plane);
            } else {
                yg.chunks_exact_mut(s.spatial)
                    .zip(xg.chunks_exact(s.spatial))
                    .enumerate()
                    .for_each(plane);
            }
            *m = mu as f32;
            *r = rs32;
        };
    if ex.par {
        y.par_chunks_exact_mut(glen)
            .zip(x.par_chunks_exact(glen))
            .zip(mean.par_iter_mut())
            .zip(rstd.par_iter_mut())
            .with_min_len(Exec::min_items(glen, MIN_CHUNK_MEM / 2))
            .enumerate()
            .for_each(group);
    } else {
        y.chunks_exact_mut(glen)
            .zip(x.chunks_exact(glen))
            .zip(mean.iter_mut())
            .zip(rstd.iter_mut())
            .enumerate()
            .for_each(group);
    }
}

/// (Σ dy, Σ dy·x̂) over one channel plane, in f64 lanes.
#[inline(always)]
fn plane_grad_sums(dy: &[f32], x: &[f32], mean: f32, rstd: f32) -> (f64, f64) {
    let mut s1 = [0f64; 8];
    let mut s2 = [0f64; 8];
    let dyc = dy.chunks_exact(8);
    let xc = x.chunks_exact(8);
    let (dyr, xr) = (dyc.remainder(), xc.remainder());
    for (d, x) in dyc.zip(xc) {
        for l in 0..8 {
            let xhat = (x[l] - mean) * rstd;
            s1[l] += d[l] as f64;
            s2[l] += (d[l] * xhat) as f64;
        }
    }
    let (mut t1, mut t2) = (0f64, 0f64);
    for (&d, &x) in dyr.iter().zip(xr) {
        let xhat = (x - mean) * rstd;
        t1 += d as f64;
        t2 += (d * xhat) as f64;
    }
    (crate::par::reduce8(s1) + t1, crate::par::reduce8(s2) + t2)
}

/// GroupNorm backward: per group, per-channel sums (Σdy, Σdy·x̂) into an `[N·C]`
/// scratch, then dx; finally dγ, dβ reduced over N. Parallel as the forward pass.
#[allow(clippy::too_many_arguments)]
pub fn groupnorm_backward(
    ex: Exec,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    s: &GroupNormShape,
) {
    let cpg = s.channels / s.groups;
    let glen = cpg * s.spatial;
    let n_groups = s.batch * s.groups;
    if glen == 0 || n_groups == 0 {
        return;
    }
    let mut sum_dy = vec![0f64; s.batch * s.channels];
    let mut sum_dyx = vec![0f64; s.batch * s.channels];
    let inner_par = ex.par && n_groups < ex.threads && glen >= 2 * MIN_CHUNK_MEM;
    type GroupArgs<'a> = (
        usize,
        (
            (((&'a mut [f32], &'a [f32]), &'a [f32]), &'a mut [f64]),
            &'a mut [f64],
        ),
    );
    let group = |(ng, ((((dxg, dyg), xg), sd), sdx)): GroupArgs<'_>| {
        let g = ng % s.groups;
        let gam = &gamma[g * cpg..(g + 1) * cpg];
        let (m, rs) = (mean[ng], rstd[ng]);
        let sums = |((a, b), (dyp, xp)): ((&mut f64, &mut f64), (&[f32], &[f32]))| {
            (*a, *b) = plane_grad_sums(dyp, xp, m, rs);
        };
        if inner_par {
            sd.par_iter_mut()
                .zip(sdx.par_iter_mut())
                .zip(
                    dyg.par_chunks_exact(s.spatial)
                        .zip(xg.par_chunks_exact(s.spatial)),
                )
                .for_each(sums);
        } else {
            sd.iter_mut()
                .zip(sdx.iter_mut())
                .zip(dyg.chunks_exact(s.spatial).zip(xg.chunks_exact(s.spatial)))
                .for_each(sums);
        }
        let inv_n = 1.0 / glen as f64;
        let mut a = 0f64;
        let mut b = 0f64;
        for ((&gm, &s1), &s2) in gam.iter().zip(sd.iter()).zip(sdx.iter()) {
            a += gm as f64 * s1;
            b += gm as f64 * s2;
        }
        let (a, b) = ((a * inv_n) as f32, (b * inv_n) as f32);
        let plane = |(cl, ((dxp, dyp), xp)): (usize, ((&mut [f32], &[f32]), &[f32]))| {
            let gm = gam[cl];
            for ((dx, &dy), &x) in dxp.iter_mut().zip(dyp).zip(xp) {
                let xhat = (x - m) * rs;
                *dx = (dy * gm - a - xhat * b) * rs;
            }
        };
        if inner_par {
            dxg.par_chunks_exact_mut(s.spatial)
                .zip(dyg.par_chunks_exact(s.spatial))
                .zip(xg.par_chunks_exact(s.spatial))
                .enumerate()
                .for_each(plane);
        } else {
            dxg.chunks_exact_mut(s.spatial)
                .zip(dyg.chunks_exact(s.spatial))
                .zip(xg.chunks_exact(s.spatial))
                .enumerate()
                .for_each(plane);
        }
    };
    if ex.par {
        dx.par_chunks_exact_mut(glen)
            .zip(dy.par_chunks_exact(glen))
            .zip(x.par_chunks_exact(glen))
            .zip(sum_dy.par_chunks_exact_mut(cpg))
            .zip(sum_dyx.par_chunks_exact_mut(cpg))
            .with_min_len(Exec::min_items(glen, MIN_CHUNK_MEM / 2))
            .enumerate()
            .for_each(group);
    } else {
        dx.chunks_exact_mut(glen)
            .zip(dy.chunks_exact(glen))
            .zip(x.chunks_exact(glen))
            .zip(sum_dy.chunks_exact_mut(cpg))
            .zip(sum_dyx.chunks_exact_mut(cpg))
            .enumerate()
            .for_each(group);
    }
    for c in 0..s.channels {
        let (mut g, mut b) = (0f64, 0f64);
        for n in 0..s.batch {
            g += sum_dyx[n * s.channels + c];
            b += sum_dy[n * s.channels + c];
        }
        dgamma[c] = (dgamma[c] as f64 + g) as f32;
        dbeta[c] = (dbeta[c] as f64 + b) as f32;
    }
}
