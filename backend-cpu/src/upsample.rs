//! Integer-factor upsampling on NCHW (PyTorch rules), parallel over the N·C planes;
//! each plane is independent, so the backward scatters never race.
//!
//! Bilinear is separable: per plane, the input rows are first interpolated along W
//! into a `[H, W·k]` scratch (one per task), then every output row is a lerp of two
//! scratch rows. The weights come from the reference's `bilinear_source::<f32>` and the
//! arithmetic is the reference's formula, so the f32 forward is bit-identical to
//! `ReferenceBackend<f32>`.

use crate::par::{Exec, MIN_CHUNK_MEM};
use brain_core::ops::UpsampleShape;
use brain_core::reference::upsample::bilinear_source;
use rayon::prelude::*;

/// Source taps of one axis: (i0, i1, λ1) per output index.
fn taps(out_len: usize, factor: usize, in_len: usize) -> Vec<(usize, usize, f32)> {
    (0..out_len)
        .map(|o| bilinear_source::<f32>(o, factor, in_len))
        .collect()
}

/// Run `f(scratch, out_plane, in_plane)` for every plane pair, in parallel when
/// `ex.par`; `scratch` is a per-task buffer of `scratch_len` floats.
fn planes<F>(
    ex: Exec,
    out: &mut [f32],
    out_plane: usize,
    inp: &[f32],
    in_plane: usize,
    scratch_len: usize,
    f: F,
) where
    F: Fn(&mut Vec<f32>, &mut [f32], &[f32]) + Sync + Send,
{
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    if ex.par {
        out.par_chunks_exact_mut(out_plane)
            .zip(inp.par_chunks_exact(in_plane))
            .with_min_len(Exec::min_items(out_plane.max(in_plane), MIN_CHUNK_MEM))
            .for_each_init(|| vec![0f32; scratch_len], |s, (o, i)| f(s, o, i));
    } else {
        let mut s = vec![0f32; scratch_len];
        out.chunks_exact_mut(out_plane)
            .zip(inp.chunks_exact(in_plane))
            .for_each(|(o, i)| f(&mut s, o, i));
    }
}

/// y[.., oy, ox] = x[.., oy/k, ox/k]: each input row is widened once, then copied
/// to its k output rows.
pub fn nearest_forward(ex: Exec, y: &mut [f32], x: &[f32], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let ow = w * k;
    planes(ex, y, h * w * k * k, x, h * w, 0, |_, yp, xp| {
        for (yrows, xr) in yp.chunks_exact_mut(ow * k).zip(xp.chunks_exact(w)) {
            let (first, rest) = yrows.split_at_mut(ow);
            for (o, &v) in first.chunks_exact_mut(k).zip(xr) {
                o.fill(v);
            }
            for r in rest.chunks_exact_mut(ow) {
                r.copy_from_slice(first);
            }
        }
    });
}

/// dx[.., iy, ix] = Σ of the k×k block of dy.
pub fn nearest_backward(ex: Exec, dx: &mut [f32], dy: &[f32], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let ow = w * k;
    planes(ex, dx, h * w, dy, h * w * k * k, 0, |_, dxp, dyp| {
        for (dxr, dyrows) in dxp.chunks_exact_mut(w).zip(dyp.chunks_exact(ow * k)) {
            dxr.fill(0.0);
            for dyr in dyrows.chunks_exact(ow) {
                for (d, blk) in dxr.iter_mut().zip(dyr.chunks_exact(k)) {
                    *d += blk.iter().sum::<f32>();
                }
            }
        }
    });
}

/// Bilinear forward (align_corners = false).
pub fn bilinear_forward(ex: Exec, y: &mut [f32], x: &[f32], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * k, w * k);
    let tx = taps(ow, k, w);
    let ty = taps(oh, k, h);
    planes(ex, y, oh * ow, x, h * w, h * ow, |hor, yp, xp| {
        // Along W: hor[iy, ox] = (1−λx)·x[iy, x0] + λx·x[iy, x1].
        for (hr, xr) in hor.chunks_exact_mut(ow).zip(xp.chunks_exact(w)) {
            for (o, &(x0, x1, lx)) in hr.iter_mut().zip(&tx) {
                *o = (1.0 - lx) * xr[x0] + lx * xr[x1];
            }
        }
        // Along H: y[oy, :] = (1−λy)·hor[y0, :] + λy·hor[y1, :].
        for (yr, &(y0, y1, ly)) in yp.chunks_exact_mut(ow).zip(&ty) {
            let r0 = &hor[y0 * ow..(y0 + 1) * ow];
            let r1 = &hor[y1 * ow..(y1 + 1) * ow];
            for ((o, &a), &b) in yr.iter_mut().zip(r0).zip(r1) {
                *o = (1.0 - ly) * a + ly * b;
            }
        }
    });
}

/// Bilinear backward: the transpose of the forward's two passes (scatter along H into
/// a `[H, W·k]` scratch, then along W into dx), all within one plane.
pub fn bilinear_backward(ex: Exec, dx: &mut [f32], dy: &[f32], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * k, w * k);
    let tx = taps(ow, k, w);
    let ty = taps(oh, k, h);
    planes(ex, dx, h * w, dy, oh * ow, h * ow, |g, dxp, dyp| {
        g.fill(0.0);
        for (dyr, &(y0, y1, ly)) in dyp.chunks_exact(ow).zip(&ty) {
            let (w0, w1) = (1.0 - ly, ly);
            for (acc, &d) in g[y0 * ow..(y0 + 1) * ow].iter_mut().zip(dyr) {
                *acc += w0 * d;
            }
            for (acc, &d) in g[y1 * ow..(y1 + 1) * ow].iter_mut().zip(dyr) {
                *acc += w1 * d;
            }
        }
        for (dxr, gr) in dxp.chunks_exact_mut(w).zip(g.chunks_exact(ow)) {
            dxr.fill(0.0);
            for (&v, &(x0, x1, lx)) in gr.iter().zip(&tx) {
                dxr[x0] += (1.0 - lx) * v;
                dxr[x1] += lx * v;
            }
        }
    });
}
