//! Sobel gradients on NCHW and the Sobel loss (HAVIR eq. 2).
//!
//! Both kernels are separable: with the rows above (a), at (b) and below (c) an output
//! row, s = a + 2b + c and d = c − a give gx[w] = s[w+1] − s[w−1] and
//! gy[w] = d[w−1] + 2d[w] + d[w+1] (zero outside the plane). Each output row is one
//! vertical pass into two W+2 scratch rows with zero ends and one horizontal pass,
//! both over contiguous slices (they vectorise); a NaN reaches exactly the outputs
//! whose non-zero taps touch it, as in the reference.
//!
//! - Forward kernels (Sobel, Sobel loss) are parallel over the N·C·H output rows; the
//!   loss is one fused pass (both Sobels, magnitudes, squared difference summed in
//!   f64 per task) that stores nothing.
//! - Backward kernels are parallel over the N·C planes: each task recomputes its
//!   plane's Sobel, writes the effective gradients (Dx, Dy) into plane-sized scratch
//!   (allocated once per task), then gathers dx = −(Sx(Dx) + Sy(Dy)) row by row (the
//!   adjoint of a correlation with Kx, Ky is the correlation with the flipped kernels
//!   −Kx, −Ky).

use crate::par::{Exec, SEQ_COMPUTE};
use crate::{CpuBackend, CpuBuffer};
use brain_core::ops::SOBEL_EPS;
use brain_core::{check, ImageShape, Result, SobelLossForm};
use rayon::prelude::*;

/// Row `h` of a plane `[H, W]`, or the zero row outside it.
#[inline(always)]
fn row<'a>(plane: &'a [f32], zeros: &'a [f32], w: usize, h: isize, height: usize) -> &'a [f32] {
    if h < 0 || h as usize >= height {
        zeros
    } else {
        let h = h as usize;
        &plane[h * w..(h + 1) * w]
    }
}

/// Vertical pass: s[w+1] = xa[w] + 2·xb[w] + xc[w], d[w+1] = yc[w] − ya[w]; s and d
/// hold W + 2 values whose ends stay zero.
#[inline(always)]
fn vertical(
    xa: &[f32],
    xb: &[f32],
    xc: &[f32],
    ya: &[f32],
    yc: &[f32],
    s: &mut [f32],
    d: &mut [f32],
) {
    let n = xb.len();
    let (s, d) = (&mut s[1..n + 1], &mut d[1..n + 1]);
    let (xa, xc, ya, yc) = (&xa[..n], &xc[..n], &ya[..n], &yc[..n]);
    for w in 0..n {
        s[w] = (xa[w] + 2.0 * xb[w]) + xc[w];
        d[w] = yc[w] - ya[w];
    }
}

/// Scratch of one task for one input: the vertical rows s and d (W + 2, zero ends).
fn scratch_rows(w: usize) -> (Vec<f32>, Vec<f32>) {
    (vec![0.0; w + 2], vec![0.0; w + 2])
}

/// Row `h` of the Sobel of `plane`: calls `f(w, gx[w], gy[w])` for every column, with
/// gx[w] = s[w+1] − s[w−1] and gy[w] = d[w−1] + 2d[w] + d[w+1].
#[inline(always)]
fn sobel_row(
    plane: &[f32],
    zeros: &[f32],
    s: &ImageShape,
    h: usize,
    rows: &mut (Vec<f32>, Vec<f32>),
    mut f: impl FnMut(usize, f32, f32),
) {
    let (w, hh) = (s.width, h as isize);
    let a = row(plane, zeros, w, hh - 1, s.height);
    let b = row(plane, zeros, w, hh, s.height);
    let c = row(plane, zeros, w, hh + 1, s.height);
    vertical(a, b, c, a, c, &mut rows.0, &mut rows.1);
    let (sv, dv) = (&rows.0[..w + 2], &rows.1[..w + 2]);
    for i in 0..w {
        f(i, sv[i + 2] - sv[i], (dv[i] + 2.0 * dv[i + 1]) + dv[i + 2]);
    }
}

/// Row `h` of the adjoint of the Sobel from the effective gradient planes `ex`
/// (through Kx) and `ey` (through Ky): calls `f(w, dx[w])` with dx = −(Sx(ex) + Sy(ey)).
#[inline(always)]
fn adjoint_row(
    ex: &[f32],
    ey: &[f32],
    zeros: &[f32],
    s: &ImageShape,
    h: usize,
    rows: &mut (Vec<f32>, Vec<f32>),
    mut f: impl FnMut(usize, f32),
) {
    let (w, hh, ht) = (s.width, h as isize, s.height);
    vertical(
        row(ex, zeros, w, hh - 1, ht),
        row(ex, zeros, w, hh, ht),
        row(ex, zeros, w, hh + 1, ht),
        row(ey, zeros, w, hh - 1, ht),
        row(ey, zeros, w, hh + 1, ht),
        &mut rows.0,
        &mut rows.1,
    );
    let (sv, dv) = (&rows.0[..w + 2], &rows.1[..w + 2]);
    for i in 0..w {
        let gx = sv[i + 2] - sv[i];
        let gy = (dv[i] + 2.0 * dv[i + 1]) + dv[i + 2];
        f(i, -(gx + gy));
    }
}

/// Split an optional output into per-plane chunks (or `planes` Nones).
fn planes_of(buf: Option<&mut [f32]>, hw: usize, planes: usize) -> Vec<Option<&mut [f32]>> {
    match buf {
        Some(b) => b.chunks_mut(hw).map(Some).collect(),
        None => (0..planes).map(|_| None).collect(),
    }
}

/// Run `f(scratch, plane index, out_a, out_b)` over every plane, parallel when `ex.par`.
fn for_planes<S>(
    ex: Exec,
    hw: usize,
    planes: usize,
    a: Option<&mut [f32]>,
    b: Option<&mut [f32]>,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, Option<&mut [f32]>, Option<&mut [f32]>) + Sync + Send,
) {
    let (a, b) = (planes_of(a, hw, planes), planes_of(b, hw, planes));
    if ex.par {
        a.into_par_iter()
            .zip(b.into_par_iter())
            .enumerate()
            .for_each_init(init, |st, (p, (a, b))| f(st, p, a, b));
    } else {
        let mut st = init();
        for (p, (a, b)) in a.into_iter().zip(b).enumerate() {
            f(&mut st, p, a, b);
        }
    }
}

/// `Backend::sobel_forward` on the CPU.
pub(crate) fn sobel_forward(
    be: &CpuBackend,
    x: &CpuBuffer,
    shape: &ImageShape,
    gx: &mut CpuBuffer,
    gy: &mut CpuBuffer,
    magnitude: &mut CpuBuffer,
) -> Result<()> {
    check::sobel_forward(x.len(), shape, gx.len(), gy.len(), magnitude.len())?;
    if shape.is_empty() {
        return Ok(());
    }
    let s = *shape;
    let (w, hw) = (s.width, s.height * s.width);
    let x = x.as_slice();
    let zeros = vec![0f32; w];
    let eps = SOBEL_EPS as f32;
    let body =
        |rows: &mut (Vec<f32>, Vec<f32>),
         (r, ((gx, gy), m)): (usize, ((&mut [f32], &mut [f32]), &mut [f32]))| {
            let (p, h) = (r / s.height, r % s.height);
            sobel_row(&x[p * hw..(p + 1) * hw], &zeros, &s, h, rows, |i, a, b| {
                gx[i] = a;
                gy[i] = b;
                m[i] = (a * a + b * b + eps).sqrt();
            });
        };
    be.exec(x.len(), SEQ_COMPUTE, |ex| {
        let it = (
            gx.as_mut_slice(),
            gy.as_mut_slice(),
            magnitude.as_mut_slice(),
        );
        if ex.par {
            it.0.par_chunks_mut(w)
                .zip(it.1.par_chunks_mut(w))
                .zip(it.2.par_chunks_mut(w))
                .enumerate()
                .with_min_len(Exec::min_items(w, 1024))
                .for_each_init(|| scratch_rows(w), body);
        } else {
            let mut rows = scratch_rows(w);
            for t in
                it.0.chunks_mut(w)
                    .zip(it.1.chunks_mut(w))
                    .zip(it.2.chunks_mut(w))
                    .enumerate()
            {
                body(&mut rows, t);
            }
        }
    });
    Ok(())
}

/// `Backend::sobel_backward` on the CPU.
pub(crate) fn sobel_backward(
    be: &CpuBackend,
    x: &CpuBuffer,
    shape: &ImageShape,
    dgx: Option<&CpuBuffer>,
    dgy: Option<&CpuBuffer>,
    dmagnitude: Option<&CpuBuffer>,
    dx: &mut CpuBuffer,
) -> Result<()> {
    check::sobel_backward(
        x.len(),
        shape,
        dgx.map(CpuBuffer::len),
        dgy.map(CpuBuffer::len),
        dmagnitude.map(CpuBuffer::len),
        dx.len(),
    )?;
    if shape.is_empty() {
        return Ok(());
    }
    let s = *shape;
    let (w, hw) = (s.width, s.height * s.width);
    let planes = s.batch * s.channels;
    let x = x.as_slice();
    let (dgx, dgy, dm) = (
        dgx.map(CpuBuffer::as_slice),
        dgy.map(CpuBuffer::as_slice),
        dmagnitude.map(CpuBuffer::as_slice),
    );
    let zeros = vec![0f32; w];
    let eps = SOBEL_EPS as f32;
    let init = || (scratch_rows(w), vec![0f32; hw], vec![0f32; hw]);
    let plane = |st: &mut ((Vec<f32>, Vec<f32>), Vec<f32>, Vec<f32>),
                 p: usize,
                 out: Option<&mut [f32]>,
                 _: Option<&mut [f32]>| {
        let Some(out) = out else { return };
        let (rows, ex, ey) = st;
        let sl = p * hw..(p + 1) * hw;
        match dgx {
            Some(g) => ex.copy_from_slice(&g[sl.clone()]),
            None => ex.fill(0.0),
        }
        match dgy {
            Some(g) => ey.copy_from_slice(&g[sl.clone()]),
            None => ey.fill(0.0),
        }
        if let Some(dm) = dm {
            let (xp, dm) = (&x[sl.clone()], &dm[sl]);
            for h in 0..s.height {
                let o = h * w;
                sobel_row(xp, &zeros, &s, h, rows, |i, a, b| {
                    let k = dm[o + i] / (a * a + b * b + eps).sqrt();
                    ex[o + i] += k * a;
                    ey[o + i] += k * b;
                });
            }
        }
        for h in 0..s.height {
            let o = h * w;
            adjoint_row(ex, ey, &zeros, &s, h, rows, |i, v| out[o + i] = v);
        }
    };
    be.exec(x.len(), SEQ_COMPUTE, |ex| {
        for_planes(ex, hw, planes, Some(dx.as_mut_slice()), None, init, plane)
    });
    Ok(())
}

/// `Backend::sobel_loss_forward` on the CPU.
pub(crate) fn sobel_loss_forward(
    be: &CpuBackend,
    pred: &CpuBuffer,
    target: &CpuBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    loss: &mut CpuBuffer,
) -> Result<()> {
    check::sobel_loss_forward(pred.len(), target.len(), shape, loss.len())?;
    let s = *shape;
    let (w, hw) = (s.width, s.height * s.width);
    let (pr, tg) = (pred.as_slice(), target.as_slice());
    let zeros = vec![0f32; w];
    let eps = SOBEL_EPS as f32;
    let nrows = s.batch * s.channels * s.height;
    // Scratch: the vertical rows of pred and target, and the pred row's gx, gy.
    let init = || {
        (
            scratch_rows(w),
            scratch_rows(w),
            vec![0f32; w],
            vec![0f32; w],
        )
    };
    type St = (
        (Vec<f32>, Vec<f32>),
        (Vec<f32>, Vec<f32>),
        Vec<f32>,
        Vec<f32>,
    );
    let row_sum = |st: &mut St, r: usize| -> f64 {
        let (rp, rt, gxp, gyp) = st;
        let (p, h) = (r / s.height, r % s.height);
        let sl = p * hw..(p + 1) * hw;
        sobel_row(&pr[sl.clone()], &zeros, &s, h, rp, |i, a, b| {
            gxp[i] = a;
            gyp[i] = b;
        });
        let mut acc = 0f64;
        match form {
            SobelLossForm::Magnitude => sobel_row(&tg[sl], &zeros, &s, h, rt, |i, a, b| {
                let (c, d) = (gxp[i], gyp[i]);
                let diff = (c * c + d * d + eps).sqrt() - (a * a + b * b + eps).sqrt();
                acc += (diff * diff) as f64;
            }),
            SobelLossForm::Components => sobel_row(&tg[sl], &zeros, &s, h, rt, |i, a, b| {
                let (u, v) = (gxp[i] - a, gyp[i] - b);
                acc += (u * u) as f64 + (v * v) as f64;
            }),
        }
        acc
    };
    let total = be.exec(pr.len(), SEQ_COMPUTE, |ex| {
        if ex.par {
            (0..nrows)
                .into_par_iter()
                .with_min_len(Exec::min_items(w, 1024))
                .map_init(init, row_sum)
                .sum::<f64>()
        } else {
            let mut st = init();
            (0..nrows).map(|r| row_sum(&mut st, r)).sum()
        }
    });
    loss.as_mut_slice()[0] = (total / pr.len() as f64) as f32;
    Ok(())
}

/// `Backend::sobel_loss_backward` on the CPU.
pub(crate) fn sobel_loss_backward(
    be: &CpuBackend,
    pred: &CpuBuffer,
    target: &CpuBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    scale: f64,
    dpred: Option<&mut CpuBuffer>,
    dtarget: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::sobel_loss_backward(
        pred.len(),
        target.len(),
        shape,
        scale,
        dpred.as_deref().map(CpuBuffer::len),
        dtarget.as_deref().map(CpuBuffer::len),
    )?;
    if dpred.is_none() && dtarget.is_none() {
        return Ok(());
    }
    let s = *shape;
    let (w, hw) = (s.width, s.height * s.width);
    let planes = s.batch * s.channels;
    let (pr, tg) = (pred.as_slice(), target.as_slice());
    let zeros = vec![0f32; w];
    let eps = SOBEL_EPS as f32;
    let c = (2.0 * scale / pr.len() as f64) as f32;
    // Scratch per task: vertical rows for pred and target, and the effective
    // gradient planes (Dx, Dy) of pred and of target.
    let init = || {
        (
            scratch_rows(w),
            scratch_rows(w),
            [
                vec![0f32; hw],
                vec![0f32; hw],
                vec![0f32; hw],
                vec![0f32; hw],
            ],
            (vec![0f32; w], vec![0f32; w]),
        )
    };
    type St = (
        (Vec<f32>, Vec<f32>),
        (Vec<f32>, Vec<f32>),
        [Vec<f32>; 4],
        (Vec<f32>, Vec<f32>),
    );
    let plane = |st: &mut St, p: usize, dp: Option<&mut [f32]>, dt: Option<&mut [f32]>| {
        let (rp, rt, [exp, eyp, ext, eyt], (gxp, gyp)) = st;
        let sl = p * hw..(p + 1) * hw;
        let (xp, xt) = (&pr[sl.clone()], &tg[sl]);
        // Pass 1: effective gradients. Components form: one pair (Dx, Dy) for pred,
        // whose negation is target's; magnitude form: one pair per input.
        for h in 0..s.height {
            let o = h * w;
            sobel_row(xp, &zeros, &s, h, rp, |i, a, b| {
                gxp[i] = a;
                gyp[i] = b;
            });
            match form {
                SobelLossForm::Components => sobel_row(xt, &zeros, &s, h, rt, |i, a, b| {
                    exp[o + i] = c * (gxp[i] - a);
                    eyp[o + i] = c * (gyp[i] - b);
                }),
                SobelLossForm::Magnitude => sobel_row(xt, &zeros, &s, h, rt, |i, a, b| {
                    let (gx, gy) = (gxp[i], gyp[i]);
                    let mp = (gx * gx + gy * gy + eps).sqrt();
                    let mt = (a * a + b * b + eps).sqrt();
                    let g = c * (mp - mt);
                    let (kp, kt) = (g / mp, g / mt);
                    exp[o + i] = kp * gx;
                    eyp[o + i] = kp * gy;
                    ext[o + i] = -(kt * a);
                    eyt[o + i] = -(kt * b);
                }),
            }
        }
        // Pass 2: gather the adjoint into the accumulating outputs.
        let (tx, ty, sign) = match form {
            SobelLossForm::Components => (&*exp, &*eyp, -1.0f32),
            SobelLossForm::Magnitude => (&*ext, &*eyt, 1.0f32),
        };
        if let Some(dp) = dp {
            for h in 0..s.height {
                let o = h * w;
                adjoint_row(exp, eyp, &zeros, &s, h, rp, |i, v| dp[o + i] += v);
            }
        }
        if let Some(dt) = dt {
            for h in 0..s.height {
                let o = h * w;
                adjoint_row(tx, ty, &zeros, &s, h, rt, |i, v| dt[o + i] += sign * v);
            }
        }
    };
    let (dp, dt) = (
        dpred.map(CpuBuffer::as_mut_slice),
        dtarget.map(CpuBuffer::as_mut_slice),
    );
    be.exec(pr.len(), SEQ_COMPUTE, |ex| {
        for_planes(ex, hw, planes, dp, dt, init, plane)
    });
    Ok(())
}
