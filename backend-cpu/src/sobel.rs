//! Sobel gradients on NCHW and the Sobel loss (HAVIR eq. 2).
//!
//! With the 3 × 3 neighbourhood of a pixel (a: row above, b: its row, c: row below, at
//! columns −1, 0, +1), p1 = c₊ − a₋ and p2 = a₊ − c₋ give
//! gx = (p1 + p2) + 2(b₊ − b₋) and gy = (p1 − p2) + 2(c₀ − a₀): ten operations for
//! both, and only each kernel's six non-zero taps enter, so a NaN reaches exactly the
//! outputs whose non-zero taps touch it, as in the reference.
//!
//! Layout: every task takes a band of rows of one plane and copies the rows it reads
//! into a zero-padded buffer (row stride W + 2, a zero column on each side, zero rows
//! outside the plane), so the stencil needs no edge cases. Each output row is then one
//! loop that does everything for a pixel at once (both Sobels, magnitudes, loss terms
//! or effective gradients), so the long-latency square roots and divisions overlap
//! with the stencil arithmetic. On AVX2 machines these loops are bound by the vector
//! FP issue rate; grouping the taps as above keeps the operation count low.
//!
//! Vectorisation: the row loops exist twice with the same arithmetic in the same
//! order and no FMA contraction: AVX2 intrinsics (module `x86`, 8 pixels per step,
//! chosen at run time by [`crate::simd::has_avx2_fma`]) and portable scalar code
//! (module `portable`, which also does the AVX2 loops' last W mod 8 pixels). Both give
//! bit-identical results; a unit test checks it.
//!
//! - Sobel loss forward: a row's loss terms are summed in f32 into 8 lanes by column
//!   over at most [`FLUSH_COLS`] columns, then into 8 f64 lanes; the bands depend on
//!   the shape only and their sums are added in order, so the loss does not depend on
//!   the thread count.
//! - Backward kernels compute the effective gradients (Dx, Dy) of the band's rows and
//!   of the row on each side into padded buffers, then gather
//!   dx = −(Sx(Dx) + Sy(Dy)) row by row (the adjoint of a correlation with Kx, Ky is
//!   the correlation with the flipped kernels −Kx, −Ky). Planes are split into bands
//!   only when there are too few of them for the threads; bands change no result.

use crate::par::{reduce8, Exec, SEQ_COMPUTE};
use crate::{CpuBackend, CpuBuffer};
use brain_core::ops::SOBEL_EPS;
use brain_core::{check, ImageShape, Result, SobelLossForm};
use rayon::prelude::*;

/// ε of the magnitude in f32.
const EPS: f32 = SOBEL_EPS as f32;
/// f64 lanes of the loss sum (column mod 8).
const LANES: usize = 8;
/// Largest band (in elements) one task takes.
const BAND_ELEMS: usize = 1 << 14;
/// Columns summed per lane in f32 before the partial sums go into the f64 lanes.
const FLUSH_COLS: usize = 256;

/// Whether the AVX2 row loops may run on this CPU.
fn use_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::simd::has_avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x86::$f(args)` when `$avx2` (which callers set only where [`use_avx2`] holds),
/// else `portable::$f(args)`.
macro_rules! rows {
    ($avx2:expr, $f:ident($($a:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if $avx2 {
                // SAFETY: `$avx2` is true only when the CPU has AVX2 and FMA; the
                // function checks its slice bounds itself.
                unsafe { x86::$f($($a),*) }
            } else {
                portable::$f($($a),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = $avx2;
            portable::$f($($a),*)
        }
    }};
}

/// What the effective-gradient loop of the loss backward writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EffMode {
    /// Dx = c(gx_p − gx_t), Dy = c(gy_p − gy_t) (pred's; target's is its negation).
    Components,
    /// Pred's Dx = k_p·gx_p, Dy = k_p·gy_p with k_p = c(M_p − M_t)/M_p.
    MagPred,
    /// Pred's as above and target's Dx = −k_t·gx_t, Dy = −k_t·gy_t, k_t = c(M_p − M_t)/M_t.
    MagBoth,
}

/// How the gather writes `g` = Sx(Dx) + Sy(Dy) into its output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gather {
    /// out = −g.
    Set,
    /// out −= g (accumulating dx = −g).
    Sub,
    /// out += g (accumulating the negation of dx).
    Add,
}

/// Checks the row loops make before any unchecked access: the centre of row `r`,
/// column `i` of `x` is `c0 + r·ws + i` for `r < rows`, `i < w`, and every 3 × 3
/// neighbour of it lies in `x`. User shapes are validated by `brain_core::check`
/// before any kernel here runs (a typed error); these asserts, like those at the top
/// of the raw-pointer loops below, only keep an internal indexing mistake from
/// becoming an out-of-bounds access.
#[inline(always)]
fn check_stencil(len: usize, ws: usize, w: usize, c0: usize, rows: usize) {
    assert!(w + 2 <= ws && c0 > ws);
    assert!(rows == 0 || c0 + (rows - 1) * ws + w + ws < len);
}

/// The portable row loops; their per-pixel functions also do the AVX2 loops' tails.
mod portable {
    use super::{EffMode, Gather, EPS, FLUSH_COLS, LANES};
    use brain_core::SobelLossForm;

    /// √(a² + b² + ε).
    #[inline(always)]
    pub fn mag(a: f32, b: f32) -> f32 {
        (a * a + b * b + EPS).sqrt()
    }

    /// (corr(x, Kx), corr(x, Ky)) at `k` of a padded buffer with row stride `ws`.
    #[inline(always)]
    pub fn sobel(x: &[f32], ws: usize, k: usize) -> (f32, f32) {
        let p1 = x[k + ws + 1] - x[k - ws - 1];
        let p2 = x[k - ws + 1] - x[k + ws - 1];
        let e = x[k + 1] - x[k - 1];
        let f = x[k + ws] - x[k - ws];
        ((p1 + p2) + 2.0 * e, (p1 - p2) + 2.0 * f)
    }

    /// corr(x, Kx) at `k`.
    #[inline(always)]
    pub fn sx(x: &[f32], ws: usize, k: usize) -> f32 {
        let p1 = x[k + ws + 1] - x[k - ws - 1];
        let p2 = x[k - ws + 1] - x[k + ws - 1];
        (p1 + p2) + 2.0 * (x[k + 1] - x[k - 1])
    }

    /// corr(x, Ky) at `k`.
    #[inline(always)]
    pub fn sy(x: &[f32], ws: usize, k: usize) -> f32 {
        let p1 = x[k + ws + 1] - x[k - ws - 1];
        let p2 = x[k - ws + 1] - x[k + ws - 1];
        (p1 - p2) + 2.0 * (x[k + ws] - x[k - ws])
    }

    /// The loss term at `k`.
    #[inline(always)]
    pub fn loss_term(form: SobelLossForm, p: &[f32], t: &[f32], ws: usize, k: usize) -> f32 {
        let ((gxp, gyp), (gxt, gyt)) = (sobel(p, ws, k), sobel(t, ws, k));
        match form {
            SobelLossForm::Magnitude => {
                let diff = mag(gxp, gyp) - mag(gxt, gyt);
                diff * diff
            }
            SobelLossForm::Components => {
                let (u, v) = (gxp - gxt, gyp - gyt);
                u * u + v * v
            }
        }
    }

    /// `acc[l] += a[l]` in f64, and `a` cleared.
    #[inline(always)]
    pub fn flush(acc: &mut [f64; LANES], a: &mut [f32; LANES]) {
        for l in 0..LANES {
            acc[l] += a[l] as f64;
        }
        *a = [0.0; LANES];
    }

    /// Effective gradients at `k` (see [`EffMode`]).
    #[inline(always)]
    pub fn eff(
        mode: EffMode,
        p: &[f32],
        t: &[f32],
        ws: usize,
        k: usize,
        c: f32,
        e: &mut [&mut [f32]; 4],
    ) {
        let ((px, py), (qx, qy)) = (sobel(p, ws, k), sobel(t, ws, k));
        match mode {
            EffMode::Components => {
                e[0][k] = c * (px - qx);
                e[1][k] = c * (py - qy);
            }
            EffMode::MagPred => {
                let (mp, mt) = (mag(px, py), mag(qx, qy));
                let kp = (c * (mp - mt)) / mp;
                e[0][k] = kp * px;
                e[1][k] = kp * py;
            }
            EffMode::MagBoth => {
                let (mp, mt) = (mag(px, py), mag(qx, qy));
                let g = c * (mp - mt);
                let (kp, kt) = (g / mp, g / mt);
                e[0][k] = kp * px;
                e[1][k] = kp * py;
                e[2][k] = -(kt * qx);
                e[3][k] = -(kt * qy);
            }
        }
    }

    /// `o` updated with g = Sx(ex) + Sy(ey) at `k` (see [`Gather`]).
    #[inline(always)]
    pub fn gather(ex: &[f32], ey: &[f32], ws: usize, k: usize, o: &mut f32, mode: Gather) {
        let g = sx(ex, ws, k) + sy(ey, ws, k);
        *o = match mode {
            Gather::Set => -g,
            Gather::Sub => *o - g,
            Gather::Add => *o + g,
        };
    }

    /// gx, gy, magnitude at `k`.
    #[inline(always)]
    pub fn forward(x: &[f32], ws: usize, k: usize) -> (f32, f32, f32) {
        let (a, b) = sobel(x, ws, k);
        (a, b, mag(a, b))
    }

    /// Sobel backward's effective gradients at `k`: (gxin + q·gx, gyin + q·gy) with
    /// q = dm / magnitude.
    #[inline(always)]
    pub fn bwd_eff(x: &[f32], ws: usize, k: usize, dm: f32, gxin: f32, gyin: f32) -> (f32, f32) {
        let (gx, gy) = sobel(x, ws, k);
        let q = dm / mag(gx, gy);
        (gxin + q * gx, gyin + q * gy)
    }

    // Row loops: row r, column i is at c0 + r·ws + i of the padded buffers and at
    // r·w + i of unpadded ones.

    /// Rows of `src` (W each) into rows of `dst` with stride `ws`.
    pub fn copy_rows(dst: &mut [f32], src: &[f32], w: usize, ws: usize) {
        for (r, row) in src.chunks_exact(w).enumerate() {
            dst[r * ws..r * ws + w].copy_from_slice(row);
        }
    }

    /// Σ of the loss terms into `acc[i mod 8]`: in f32 over runs of [`FLUSH_COLS`]
    /// columns of a row, then in f64.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_rows(
        form: SobelLossForm,
        p: &[f32],
        t: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        acc: &mut [f64; LANES],
    ) {
        let mut a = [0f32; LANES];
        for r in 0..rows {
            let b = c0 + r * ws;
            for i in 0..w {
                a[i % LANES] += loss_term(form, p, t, ws, b + i);
                if (i + 1) % FLUSH_COLS == 0 {
                    flush(acc, &mut a);
                }
            }
            flush(acc, &mut a);
        }
    }

    /// Effective gradients into `e` (padded like `p`).
    #[allow(clippy::too_many_arguments)]
    pub fn eff_rows(
        mode: EffMode,
        p: &[f32],
        t: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        c: f32,
        mut e: [&mut [f32]; 4],
    ) {
        for r in 0..rows {
            let b = c0 + r * ws;
            for i in 0..w {
                eff(mode, p, t, ws, b + i, c, &mut e);
            }
        }
    }

    /// Gather into `out` (unpadded rows).
    #[allow(clippy::too_many_arguments)]
    pub fn gather_rows(
        ex: &[f32],
        ey: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        out: &mut [f32],
        mode: Gather,
    ) {
        for (r, o) in out.chunks_exact_mut(w).take(rows).enumerate() {
            let b = c0 + r * ws;
            for (i, o) in o.iter_mut().enumerate() {
                gather(ex, ey, ws, b + i, o, mode);
            }
        }
    }

    /// gx, gy, magnitude into unpadded rows.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_rows(
        x: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        gx: &mut [f32],
        gy: &mut [f32],
        m: &mut [f32],
    ) {
        for r in 0..rows {
            let b = c0 + r * ws;
            for i in 0..w {
                (gx[r * w + i], gy[r * w + i], m[r * w + i]) = forward(x, ws, b + i);
            }
        }
    }

    /// Sobel backward's effective gradients into `ex`, `ey` (padded like `x`) from
    /// unpadded rows of dmagnitude and the incoming dgx, dgy.
    #[allow(clippy::too_many_arguments)]
    pub fn bwd_eff_rows(
        x: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        [dm, gxin, gyin]: [&[f32]; 3],
        ex: &mut [f32],
        ey: &mut [f32],
    ) {
        for r in 0..rows {
            let b = c0 + r * ws;
            for i in 0..w {
                let j = r * w + i;
                (ex[b + i], ey[b + i]) = bwd_eff(x, ws, b + i, dm[j], gxin[j], gyin[j]);
            }
        }
    }
}

/// The AVX2 row loops: the portable arithmetic 8 pixels at a time.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{check_stencil, portable, EffMode, Gather, EPS, FLUSH_COLS, LANES};
    use brain_core::SobelLossForm;
    use core::arch::x86_64::*;

    /// The six loads and four differences both kernels share, at the 8 pixels from
    /// `p` (row stride `ws`): (p1, p2, b₊ − b₋, c₀ − a₀). Callers guarantee the 3 × 3
    /// neighbourhoods are in bounds.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn diffs<const X: bool, const Y: bool>(p: *const f32, ws: usize) -> [__m256; 4] {
        let (a, c) = (p.sub(ws), p.add(ws));
        let p1 = _mm256_sub_ps(_mm256_loadu_ps(c.add(1)), _mm256_loadu_ps(a.sub(1)));
        let p2 = _mm256_sub_ps(_mm256_loadu_ps(a.add(1)), _mm256_loadu_ps(c.sub(1)));
        let z = _mm256_setzero_ps();
        let e = if X {
            _mm256_sub_ps(_mm256_loadu_ps(p.add(1)), _mm256_loadu_ps(p.sub(1)))
        } else {
            z
        };
        let f = if Y {
            _mm256_sub_ps(_mm256_loadu_ps(c), _mm256_loadu_ps(a))
        } else {
            z
        };
        [p1, p2, e, f]
    }

    /// corr(x, Kx) = (p1 + p2) + 2e.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kx(d: [__m256; 4]) -> __m256 {
        _mm256_add_ps(_mm256_add_ps(d[0], d[1]), _mm256_add_ps(d[2], d[2]))
    }

    /// corr(x, Ky) = (p1 − p2) + 2f.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ky(d: [__m256; 4]) -> __m256 {
        _mm256_add_ps(_mm256_sub_ps(d[0], d[1]), _mm256_add_ps(d[3], d[3]))
    }

    /// (gx, gy) at the 8 pixels from `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sobel8(p: *const f32, ws: usize) -> (__m256, __m256) {
        let d = diffs::<true, true>(p, ws);
        (kx(d), ky(d))
    }

    /// √(a² + b² + ε).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mag8(a: __m256, b: __m256) -> __m256 {
        let s = _mm256_add_ps(_mm256_mul_ps(a, a), _mm256_mul_ps(b, b));
        _mm256_sqrt_ps(_mm256_add_ps(s, _mm256_set1_ps(EPS)))
    }

    /// The loss terms of the 8 pixels from `k`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn term8(form: SobelLossForm, p: *const f32, t: *const f32, ws: usize) -> __m256 {
        let (gxp, gyp) = sobel8(p, ws);
        let (gxt, gyt) = sobel8(t, ws);
        match form {
            SobelLossForm::Magnitude => {
                let d = _mm256_sub_ps(mag8(gxp, gyp), mag8(gxt, gyt));
                _mm256_mul_ps(d, d)
            }
            SobelLossForm::Components => {
                let (u, v) = (_mm256_sub_ps(gxp, gxt), _mm256_sub_ps(gyp, gyt));
                _mm256_add_ps(_mm256_mul_ps(u, u), _mm256_mul_ps(v, v))
            }
        }
    }

    /// `acc += a` in f64 (lanes 0–3, 4–7).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn flush8(acc: &mut [f64; LANES], a: __m256) {
        let p = acc.as_mut_ptr();
        let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a));
        let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(a));
        _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), lo));
        _mm256_storeu_pd(p.add(4), _mm256_add_pd(_mm256_loadu_pd(p.add(4)), hi));
    }

    /// [`portable::copy_rows`], inline: rows are short, a `memcpy` call per row costs
    /// more than the copy.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn copy_rows(dst: &mut [f32], src: &[f32], w: usize, ws: usize) {
        let rows = src.len() / w.max(1);
        assert!(w <= ws && (rows == 0 || (rows - 1) * ws + w <= dst.len()));
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        for r in 0..rows {
            let (d, s) = (d.add(r * ws), s.add(r * w));
            let mut i = 0;
            while i + 8 <= w {
                _mm256_storeu_ps(d.add(i), _mm256_loadu_ps(s.add(i)));
                i += 8;
            }
            for i in i..w {
                *d.add(i) = *s.add(i);
            }
        }
    }

    /// [`portable::loss_rows`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn loss_rows(
        form: SobelLossForm,
        p: &[f32],
        t: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        acc: &mut [f64; LANES],
    ) {
        check_stencil(p.len(), ws, w, c0, rows);
        check_stencil(t.len(), ws, w, c0, rows);
        let (pp, tp) = (p.as_ptr(), t.as_ptr());
        for r in 0..rows {
            let b = c0 + r * ws;
            let mut a = _mm256_setzero_ps();
            let mut i = 0;
            while i + 8 <= w {
                a = _mm256_add_ps(a, term8(form, pp.add(b + i), tp.add(b + i), ws));
                i += 8;
                if i % FLUSH_COLS == 0 {
                    flush8(acc, a);
                    a = _mm256_setzero_ps();
                }
            }
            let mut a8 = [0f32; LANES];
            _mm256_storeu_ps(a8.as_mut_ptr(), a);
            for i in i..w {
                a8[i % LANES] += portable::loss_term(form, p, t, ws, b + i);
            }
            portable::flush(acc, &mut a8);
        }
    }

    /// Effective gradients of the 8 pixels at `j` into `e` (see [`EffMode`]).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eff8(
        mode: EffMode,
        pp: *const f32,
        tp: *const f32,
        ws: usize,
        j: usize,
        cv: __m256,
        e: [*mut f32; 4],
    ) {
        let neg = _mm256_set1_ps(-0.0);
        let (px, py) = sobel8(pp.add(j), ws);
        let (qx, qy) = sobel8(tp.add(j), ws);
        match mode {
            EffMode::Components => {
                _mm256_storeu_ps(e[0].add(j), _mm256_mul_ps(cv, _mm256_sub_ps(px, qx)));
                _mm256_storeu_ps(e[1].add(j), _mm256_mul_ps(cv, _mm256_sub_ps(py, qy)));
            }
            EffMode::MagPred => {
                let (mp, mt) = (mag8(px, py), mag8(qx, qy));
                let kp = _mm256_div_ps(_mm256_mul_ps(cv, _mm256_sub_ps(mp, mt)), mp);
                _mm256_storeu_ps(e[0].add(j), _mm256_mul_ps(kp, px));
                _mm256_storeu_ps(e[1].add(j), _mm256_mul_ps(kp, py));
            }
            EffMode::MagBoth => {
                let (mp, mt) = (mag8(px, py), mag8(qx, qy));
                let g = _mm256_mul_ps(cv, _mm256_sub_ps(mp, mt));
                let (kp, kt) = (_mm256_div_ps(g, mp), _mm256_div_ps(g, mt));
                _mm256_storeu_ps(e[0].add(j), _mm256_mul_ps(kp, px));
                _mm256_storeu_ps(e[1].add(j), _mm256_mul_ps(kp, py));
                _mm256_storeu_ps(e[2].add(j), _mm256_xor_ps(_mm256_mul_ps(kt, qx), neg));
                _mm256_storeu_ps(e[3].add(j), _mm256_xor_ps(_mm256_mul_ps(kt, qy), neg));
            }
        }
    }

    /// [`portable::eff_rows`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn eff_rows(
        mode: EffMode,
        p: &[f32],
        t: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        c: f32,
        mut e: [&mut [f32]; 4],
    ) {
        check_stencil(p.len(), ws, w, c0, rows);
        check_stencil(t.len(), ws, w, c0, rows);
        let used = if mode == EffMode::MagBoth { 4 } else { 2 };
        for e in &e[..used] {
            check_stencil(e.len(), ws, w, c0, rows);
        }
        let (pp, tp) = (p.as_ptr(), t.as_ptr());
        let cv = _mm256_set1_ps(c);
        for r in 0..rows {
            let b = c0 + r * ws;
            // Fresh each row: the scalar tail below borrows `e` again.
            let ep = e.each_mut().map(|e| e.as_mut_ptr());
            let mut i = 0;
            while i + 16 <= w {
                eff8(mode, pp, tp, ws, b + i, cv, ep);
                eff8(mode, pp, tp, ws, b + i + 8, cv, ep);
                i += 16;
            }
            if i + 8 <= w {
                eff8(mode, pp, tp, ws, b + i, cv, ep);
                i += 8;
            }
            for i in i..w {
                portable::eff(mode, p, t, ws, b + i, c, &mut e);
            }
        }
    }

    /// [`portable::gather_rows`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather_rows(
        ex: &[f32],
        ey: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        out: &mut [f32],
        mode: Gather,
    ) {
        check_stencil(ex.len(), ws, w, c0, rows);
        check_stencil(ey.len(), ws, w, c0, rows);
        assert!(out.len() >= rows * w);
        let (xp, yp) = (ex.as_ptr(), ey.as_ptr());
        let neg = _mm256_set1_ps(-0.0);
        for (r, o) in out.chunks_exact_mut(w).take(rows).enumerate() {
            let b = c0 + r * ws;
            let op = o.as_mut_ptr();
            let mut i = 0;
            while i + 8 <= w {
                let gx = kx(diffs::<true, false>(xp.add(b + i), ws));
                let gy = ky(diffs::<false, true>(yp.add(b + i), ws));
                let g = _mm256_add_ps(gx, gy);
                let v = match mode {
                    Gather::Set => _mm256_xor_ps(g, neg),
                    Gather::Sub => _mm256_sub_ps(_mm256_loadu_ps(op.add(i)), g),
                    Gather::Add => _mm256_add_ps(_mm256_loadu_ps(op.add(i)), g),
                };
                _mm256_storeu_ps(op.add(i), v);
                i += 8;
            }
            for (i, o) in o.iter_mut().enumerate().skip(i) {
                portable::gather(ex, ey, ws, b + i, o, mode);
            }
        }
    }

    /// [`portable::forward_rows`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_rows(
        x: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        gx: &mut [f32],
        gy: &mut [f32],
        m: &mut [f32],
    ) {
        check_stencil(x.len(), ws, w, c0, rows);
        assert!(gx.len() >= rows * w && gy.len() >= rows * w && m.len() >= rows * w);
        let xp = x.as_ptr();
        for r in 0..rows {
            let b = c0 + r * ws;
            let mut i = 0;
            while i + 8 <= w {
                let (a, bb) = sobel8(xp.add(b + i), ws);
                let j = r * w + i;
                _mm256_storeu_ps(gx.as_mut_ptr().add(j), a);
                _mm256_storeu_ps(gy.as_mut_ptr().add(j), bb);
                _mm256_storeu_ps(m.as_mut_ptr().add(j), mag8(a, bb));
                i += 8;
            }
            for i in i..w {
                (gx[r * w + i], gy[r * w + i], m[r * w + i]) = portable::forward(x, ws, b + i);
            }
        }
    }

    /// [`portable::bwd_eff_rows`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bwd_eff_rows(
        x: &[f32],
        ws: usize,
        w: usize,
        c0: usize,
        rows: usize,
        [dm, gxin, gyin]: [&[f32]; 3],
        ex: &mut [f32],
        ey: &mut [f32],
    ) {
        check_stencil(x.len(), ws, w, c0, rows);
        check_stencil(ex.len(), ws, w, c0, rows);
        check_stencil(ey.len(), ws, w, c0, rows);
        assert!(dm.len() >= rows * w && gxin.len() >= rows * w && gyin.len() >= rows * w);
        let xp = x.as_ptr();
        for r in 0..rows {
            let b = c0 + r * ws;
            let mut i = 0;
            while i + 8 <= w {
                let (j, q) = (b + i, r * w + i);
                let (gx, gy) = sobel8(xp.add(j), ws);
                let s = _mm256_div_ps(_mm256_loadu_ps(dm.as_ptr().add(q)), mag8(gx, gy));
                let ix = _mm256_loadu_ps(gxin.as_ptr().add(q));
                let iy = _mm256_loadu_ps(gyin.as_ptr().add(q));
                _mm256_storeu_ps(
                    ex.as_mut_ptr().add(j),
                    _mm256_add_ps(ix, _mm256_mul_ps(s, gx)),
                );
                _mm256_storeu_ps(
                    ey.as_mut_ptr().add(j),
                    _mm256_add_ps(iy, _mm256_mul_ps(s, gy)),
                );
                i += 8;
            }
            for i in i..w {
                let (j, q) = (b + i, r * w + i);
                (ex[j], ey[j]) = portable::bwd_eff(x, ws, j, dm[q], gxin[q], gyin[q]);
            }
        }
    }
}

// ------------------------------------------------------------------ bands

/// Copy plane rows `r_lo .. r_lo + rows` into the interior columns of the padded
/// buffer `dst` (row stride W + 2), zeros for rows outside the plane. Pad columns are
/// never written, so they stay zero.
fn pad_rows(avx2: bool, dst: &mut [f32], plane: &[f32], s: &ImageShape, r_lo: isize, rows: usize) {
    let (w, ws) = (s.width, s.width + 2);
    // Padded rows a..b hold plane rows, the others zeros.
    let a = (-r_lo).clamp(0, rows as isize) as usize;
    let b = (s.height as isize - r_lo).clamp(a as isize, rows as isize) as usize;
    for r in (0..a).chain(b..rows) {
        dst[r * ws + 1..r * ws + 1 + w].fill(0.0);
    }
    if a < b {
        let h = (r_lo + a as isize) as usize;
        let src = &plane[h * w..(h + b - a) * w];
        rows!(avx2, copy_rows(&mut dst[a * ws + 1..], src, w, ws));
    }
}

/// Zero the interior of padded row `r` (a row outside the plane).
fn zero_row(e: &mut [f32], ws: usize, r: usize) {
    e[r * ws..(r + 1) * ws].fill(0.0);
}

/// Buffers of one task (unused ones empty): padded inputs `p`, `t` and padded
/// effective gradients `e`, all of band + 4 rows of W + 2, and band + 2 zero rows of W.
struct Scratch {
    p: Vec<f32>,
    t: Vec<f32>,
    e: [Vec<f32>; 4],
    zeros: Vec<f32>,
}

impl Scratch {
    /// For width `w` and bands of `band` rows, with `inputs` padded inputs and `e`
    /// effective-gradient buffers.
    fn new(w: usize, band: usize, inputs: usize, e: usize) -> Self {
        let len = (band + 4) * (w + 2);
        let buf = |k: usize, n: usize| vec![0f32; if k < n { len } else { 0 }];
        Scratch {
            p: buf(0, inputs),
            t: buf(1, inputs),
            e: [0, 1, 2, 3].map(|k| buf(k, e)),
            zeros: vec![0.0; (band + 2) * w],
        }
    }
}

/// Rows of a backward band `h0..h1` (of a plane of `ht` rows) in its padded buffers,
/// whose row 0 is plane row h0 − 2: effective gradients are needed for plane rows
/// `ea..eb` (the band and the in-plane row on each side); the padded rows of plane
/// rows h0 − 1 and h1 when they fall outside the plane must be zero.
struct BandRows {
    ea: usize,
    eb: usize,
    /// Padded rows to zero.
    outside: [Option<usize>; 2],
}

impl BandRows {
    fn new(h0: usize, h1: usize, ht: usize) -> Self {
        BandRows {
            ea: h0.saturating_sub(1),
            eb: (h1 + 1).min(ht),
            outside: [(h0 == 0).then_some(1), (h1 == ht).then_some(h1 - h0 + 2)],
        }
    }
}

/// Sobel forward of rows `h0..h1` of plane `x` into those rows of `gx`, `gy`, `m`.
#[allow(clippy::too_many_arguments)]
fn forward_band(
    avx2: bool,
    x: &[f32],
    s: &ImageShape,
    h0: usize,
    h1: usize,
    [gx, gy, m]: [&mut [f32]; 3],
    sc: &mut Scratch,
) {
    let (w, ws, nb) = (s.width, s.width + 2, h1 - h0);
    pad_rows(avx2, &mut sc.p, x, s, h0 as isize - 1, nb + 2);
    rows!(avx2, forward_rows(&sc.p, ws, w, ws + 1, nb, gx, gy, m));
}

/// Σ of the loss terms of rows `h0..h1` of planes `xp`, `xt` (8 f64 lanes by column,
/// added in a fixed order).
#[allow(clippy::too_many_arguments)]
fn loss_band(
    avx2: bool,
    xp: &[f32],
    xt: &[f32],
    s: &ImageShape,
    form: SobelLossForm,
    h0: usize,
    h1: usize,
    sc: &mut Scratch,
) -> f64 {
    let (w, ws, nb) = (s.width, s.width + 2, h1 - h0);
    pad_rows(avx2, &mut sc.p, xp, s, h0 as isize - 1, nb + 2);
    pad_rows(avx2, &mut sc.t, xt, s, h0 as isize - 1, nb + 2);
    let mut acc = [0f64; LANES];
    rows!(
        avx2,
        loss_rows(form, &sc.p, &sc.t, ws, w, ws + 1, nb, &mut acc)
    );
    reduce8(acc)
}

/// `Backend::sobel_backward` for rows `h0..h1` of plane `x` into those rows of `out`;
/// `grads` = dgx, dgy, dmagnitude of the plane.
#[allow(clippy::too_many_arguments)]
fn backward_band(
    avx2: bool,
    x: &[f32],
    grads: [Option<&[f32]>; 3],
    s: &ImageShape,
    h0: usize,
    h1: usize,
    out: &mut [f32],
    sc: &mut Scratch,
) {
    let (w, ws, nb) = (s.width, s.width + 2, h1 - h0);
    let b = BandRows::new(h0, h1, s.height);
    let Scratch { p, e, zeros, .. } = sc;
    let [ex, ey, ..] = e;
    // Plane row h sits at padded row h + 2 − h0.
    let ce = (b.ea + 2 - h0) * ws + 1;
    let sl = b.ea * w..b.eb * w;
    let [gxin, gyin] = [grads[0], grads[1]].map(|g| g.map(|g| &g[sl.clone()]));
    match grads[2] {
        Some(dm) => {
            pad_rows(avx2, p, x, s, h0 as isize - 2, nb + 4);
            let rows = b.eb - b.ea;
            // Absent incoming gradients read as zero rows.
            let z = &zeros[..rows * w];
            let src = [&dm[sl.clone()], gxin.unwrap_or(z), gyin.unwrap_or(z)];
            rows!(avx2, bwd_eff_rows(p, ws, w, ce, rows, src, ex, ey));
        }
        None => {
            for h in b.ea..b.eb {
                let k = (h + 2 - h0) * ws + 1;
                let j = (h - b.ea) * w;
                ex[k..k + w].copy_from_slice(gxin.map_or(&zeros[..w], |g| &g[j..j + w]));
                ey[k..k + w].copy_from_slice(gyin.map_or(&zeros[..w], |g| &g[j..j + w]));
            }
        }
    }
    for r in b.outside.into_iter().flatten() {
        zero_row(ex, ws, r);
        zero_row(ey, ws, r);
    }
    rows!(
        avx2,
        gather_rows(ex, ey, ws, w, 2 * ws + 1, nb, out, Gather::Set)
    );
}

/// `Backend::sobel_loss_backward` for rows `h0..h1` of planes `xp`, `xt`, accumulated
/// into those rows of `dp`, `dt`; `c` = 2·scale / N·C·H·W.
#[allow(clippy::too_many_arguments)]
fn loss_backward_band(
    avx2: bool,
    xp: &[f32],
    xt: &[f32],
    s: &ImageShape,
    form: SobelLossForm,
    c: f32,
    h0: usize,
    h1: usize,
    [dp, dt]: [Option<&mut [f32]>; 2],
    sc: &mut Scratch,
) {
    let (w, ws, nb) = (s.width, s.width + 2, h1 - h0);
    let b = BandRows::new(h0, h1, s.height);
    let Scratch { p, t, e, .. } = sc;
    // Magnitude form: one pair (Dx, Dy) per input, target's only when asked for.
    // Components form: one pair for pred, whose negation is target's.
    let mode = match form {
        SobelLossForm::Components => EffMode::Components,
        SobelLossForm::Magnitude if dt.is_some() => EffMode::MagBoth,
        SobelLossForm::Magnitude => EffMode::MagPred,
    };
    pad_rows(avx2, p, xp, s, h0 as isize - 2, nb + 4);
    pad_rows(avx2, t, xt, s, h0 as isize - 2, nb + 4);
    let ce = (b.ea + 2 - h0) * ws + 1;
    {
        let [e0, e1, e2, e3] = e.each_mut().map(|v| &mut v[..]);
        rows!(
            avx2,
            eff_rows(mode, p, t, ws, w, ce, b.eb - b.ea, c, [e0, e1, e2, e3])
        );
    }
    let used = if mode == EffMode::MagBoth { 4 } else { 2 };
    for r in b.outside.into_iter().flatten() {
        for e in &mut e[..used] {
            zero_row(e, ws, r);
        }
    }
    let [exp, eyp, ext, eyt] = &*e;
    let co = 2 * ws + 1;
    if let Some(dp) = dp {
        rows!(avx2, gather_rows(exp, eyp, ws, w, co, nb, dp, Gather::Sub));
    }
    if let Some(dt) = dt {
        match form {
            SobelLossForm::Components => {
                rows!(avx2, gather_rows(exp, eyp, ws, w, co, nb, dt, Gather::Add))
            }
            SobelLossForm::Magnitude => {
                rows!(avx2, gather_rows(ext, eyt, ws, w, co, nb, dt, Gather::Sub))
            }
        }
    }
}

// ------------------------------------------------------------------ drivers

/// Rows per band from the shape alone: the largest band of at most [`BAND_ELEMS`]
/// elements (at least one row, at most the plane).
fn shape_band(s: &ImageShape) -> usize {
    s.height.min((BAND_ELEMS / s.width.max(1)).max(1)).max(1)
}

/// Rows per band for kernels whose results do not depend on it: [`shape_band`], split
/// further when the planes give fewer than four bands per thread (bands of at least 8
/// rows; each recomputes the effective gradients of the row on each side).
fn par_band(ex: Exec, s: &ImageShape) -> usize {
    let band = shape_band(s);
    let planes = s.batch * s.channels;
    let want = ex.threads * 4;
    if !ex.par || planes * s.height.div_ceil(band) >= want {
        return band;
    }
    let per_plane = want.div_ceil(planes.max(1));
    band.min(s.height.div_ceil(per_plane).max(8.min(s.height)))
}

/// Split each optional output into per-band chunks (planes in order, bands of `band`
/// rows in each), one `[Option<&mut [f32]>; K]` per band.
fn band_chunks<'a, const K: usize>(
    outs: [Option<&'a mut [f32]>; K],
    s: &ImageShape,
    band: usize,
) -> Vec<[Option<&'a mut [f32]>; K]> {
    let (hw, bw) = (s.height * s.width, band * s.width);
    let n = s.batch * s.channels * s.height.div_ceil(band);
    let mut its = outs.map(|o| o.map(|b| b.chunks_mut(hw).flat_map(move |p| p.chunks_mut(bw))));
    (0..n)
        .map(|_| core::array::from_fn(|k| its[k].as_mut().and_then(Iterator::next)))
        .collect()
}

/// Run `f(scratch, plane, h0, h1, outs)` over every band of `band` rows of every plane,
/// parallel when `ex.par`.
fn for_bands<S, const K: usize>(
    ex: Exec,
    s: &ImageShape,
    band: usize,
    outs: [Option<&mut [f32]>; K],
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, usize, usize, [Option<&mut [f32]>; K]) + Sync + Send,
) {
    let per_plane = s.height.div_ceil(band);
    let tasks = band_chunks(outs, s, band);
    let run = |st: &mut S, (t, o): (usize, [Option<&mut [f32]>; K])| {
        let (p, h0) = (t / per_plane, (t % per_plane) * band);
        f(st, p, h0, (h0 + band).min(s.height), o)
    };
    if ex.par {
        tasks.into_par_iter().enumerate().for_each_init(&init, run);
    } else {
        let mut st = init();
        for t in tasks.into_iter().enumerate() {
            run(&mut st, t);
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
    let x = x.as_slice();
    let outs = [
        gx.as_mut_slice(),
        gy.as_mut_slice(),
        magnitude.as_mut_slice(),
    ];
    be.exec(x.len(), SEQ_COMPUTE, |ex| {
        forward_impl(ex, use_avx2(), par_band(ex, shape), x, shape, outs)
    });
    Ok(())
}

/// Sobel forward over all planes in bands of `band` rows.
fn forward_impl(
    ex: Exec,
    avx2: bool,
    band: usize,
    x: &[f32],
    s: &ImageShape,
    [gx, gy, m]: [&mut [f32]; 3],
) {
    let hw = s.height * s.width;
    let init = || Scratch::new(s.width, band, 1, 0);
    let task = |sc: &mut Scratch, p: usize, h0: usize, h1: usize, o: [Option<&mut [f32]>; 3]| {
        let [Some(gx), Some(gy), Some(m)] = o else {
            return;
        };
        let x = &x[p * hw..(p + 1) * hw];
        forward_band(avx2, x, s, h0, h1, [gx, gy, m], sc)
    };
    for_bands(ex, s, band, [Some(gx), Some(gy), Some(m)], init, task)
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
    let x = x.as_slice();
    let grads = [dgx, dgy, dmagnitude].map(|g| g.map(CpuBuffer::as_slice));
    let dx = dx.as_mut_slice();
    be.exec(x.len(), SEQ_COMPUTE, |ex| {
        backward_impl(ex, use_avx2(), par_band(ex, shape), x, shape, grads, dx)
    });
    Ok(())
}

/// Sobel backward over all planes in bands of `band` rows; `grads` = dgx, dgy,
/// dmagnitude.
fn backward_impl(
    ex: Exec,
    avx2: bool,
    band: usize,
    x: &[f32],
    s: &ImageShape,
    grads: [Option<&[f32]>; 3],
    dx: &mut [f32],
) {
    let hw = s.height * s.width;
    let init = || Scratch::new(s.width, band, 1, 2);
    let task = |sc: &mut Scratch, p: usize, h0: usize, h1: usize, o: [Option<&mut [f32]>; 1]| {
        let [Some(out)] = o else { return };
        let sl = p * hw..(p + 1) * hw;
        let g = grads.map(|g| g.map(|g| &g[sl.clone()]));
        backward_band(avx2, &x[sl], g, s, h0, h1, out, sc)
    };
    for_bands(ex, s, band, [Some(dx)], init, task)
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
    let (pr, tg) = (pred.as_slice(), target.as_slice());
    let total = be.exec(pr.len(), SEQ_COMPUTE, |ex| {
        loss_forward_impl(ex, use_avx2(), shape_band(shape), pr, tg, shape, form)
    });
    loss.as_mut_slice()[0] = (total / pr.len() as f64) as f32;
    Ok(())
}

/// Σ of the loss terms over all planes in bands of `band` rows, the bands' sums added
/// in order.
fn loss_forward_impl(
    ex: Exec,
    avx2: bool,
    band: usize,
    pr: &[f32],
    tg: &[f32],
    s: &ImageShape,
    form: SobelLossForm,
) -> f64 {
    let hw = s.height * s.width;
    let per_plane = s.height.div_ceil(band);
    let tasks = s.batch * s.channels * per_plane;
    let init = || Scratch::new(s.width, band, 2, 0);
    let task = |sc: &mut Scratch, t: usize| -> f64 {
        let (p, h0) = (t / per_plane, (t % per_plane) * band);
        let h1 = (h0 + band).min(s.height);
        let sl = p * hw..(p + 1) * hw;
        loss_band(avx2, &pr[sl.clone()], &tg[sl], s, form, h0, h1, sc)
    };
    let sums: Vec<f64> = if ex.par {
        (0..tasks).into_par_iter().map_init(init, task).collect()
    } else {
        let mut sc = init();
        (0..tasks).map(|t| task(&mut sc, t)).collect()
    };
    sums.iter().sum()
}

/// `Backend::sobel_loss_backward` on the CPU.
#[allow(clippy::too_many_arguments)]
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
    let (pr, tg) = (pred.as_slice(), target.as_slice());
    let c = (2.0 * scale / pr.len() as f64) as f32;
    let outs = [
        dpred.map(CpuBuffer::as_mut_slice),
        dtarget.map(CpuBuffer::as_mut_slice),
    ];
    be.exec(pr.len(), SEQ_COMPUTE, |ex| {
        let band = par_band(ex, shape);
        loss_backward_impl(ex, use_avx2(), band, pr, tg, shape, form, c, outs)
    });
    Ok(())
}

/// Sobel loss backward over all planes in bands of `band` rows; `outs` = dpred,
/// dtarget.
#[allow(clippy::too_many_arguments)]
fn loss_backward_impl(
    ex: Exec,
    avx2: bool,
    band: usize,
    pr: &[f32],
    tg: &[f32],
    s: &ImageShape,
    form: SobelLossForm,
    c: f32,
    outs: [Option<&mut [f32]>; 2],
) {
    let hw = s.height * s.width;
    let e = match form {
        SobelLossForm::Magnitude if outs[1].is_some() => 4,
        _ => 2,
    };
    let init = || Scratch::new(s.width, band, 2, e);
    let task = |sc: &mut Scratch, p: usize, h0: usize, h1: usize, o: [Option<&mut [f32]>; 2]| {
        let sl = p * hw..(p + 1) * hw;
        let (xp, xt) = (&pr[sl.clone()], &tg[sl]);
        loss_backward_band(avx2, xp, xt, s, form, c, h0, h1, o, sc)
    };
    for_bands(ex, s, band, outs, init, task)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    const WIDTHS: [usize; 8] = [1, 2, 7, 8, 9, 17, 64, 67];
    const HEIGHTS: [usize; 4] = [1, 2, 3, 64];
    const FORMS: [SobelLossForm; 2] = [SobelLossForm::Magnitude, SobelLossForm::Components];

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2654435761) ^ seed.wrapping_mul(40503);
                (v % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Bit-identical, any NaN matching any NaN.
    fn same(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    fn forward(avx2: bool, band: usize, x: &[f32], s: &ImageShape) -> [Vec<f32>; 3] {
        let mut o = [0; 3].map(|_| vec![0f32; x.len()]);
        let [a, b, c] = &mut o;
        forward_impl(Exec::SEQ, avx2, band, x, s, [a, b, c]);
        o
    }

    /// The AVX2 copies against the portable ones (which CPUs without AVX2 run) on odd
    /// widths and heights, with a NaN and an Inf in the inputs, and bands of several
    /// heights against whole planes: all results must be bit-identical.
    #[test]
    fn avx2_matches_portable() {
        if !use_avx2() {
            println!("skipped: sobel avx2_matches_portable: no AVX2/FMA on this CPU");
            return;
        }
        let ex = Exec::SEQ;
        for &width in &WIDTHS {
            for &height in &HEIGHTS {
                let s = ImageShape {
                    batch: 1,
                    channels: 2,
                    height,
                    width,
                };
                let n = s.len();
                let tag = format!("{height}x{width}");
                let mut x = data(n, 1);
                if n > 5 {
                    x[n / 3] = f32::NAN;
                    x[n - 2] = f32::INFINITY;
                }
                let xf = data(n, 6);
                let t = data(n, 2);
                let g = [data(n, 3), data(n, 4), data(n, 5)];
                let g = [Some(&g[0][..]), Some(&g[1][..]), Some(&g[2][..])];

                for band in [height, 1, 2, 5] {
                    let what = format!("forward band {band} {tag}");
                    let (fast, port) =
                        (forward(true, band, &x, &s), forward(false, height, &x, &s));
                    for k in 0..3 {
                        same(&fast[k], &port[k], &what);
                    }

                    for form in FORMS {
                        // The sum depends on the bands (fixed by the shape), not the ISA.
                        for x in [&x, &xf] {
                            let lf = loss_forward_impl(ex, true, band, x, &t, &s, form);
                            let lp = loss_forward_impl(ex, false, band, x, &t, &s, form);
                            assert!(
                                lf.to_bits() == lp.to_bits() || (lf.is_nan() && lp.is_nan()),
                                "loss {form:?} band {band} {tag}: {lf} vs {lp}"
                            );
                        }
                        let lf = loss_forward_impl(ex, true, band, &xf, &t, &s, form);
                        let lw = loss_forward_impl(ex, true, height, &xf, &t, &s, form);
                        let tol = 1e-12 * lw.abs().max(1e-30);
                        assert!((lf - lw).abs() <= tol, "loss {form:?} {tag}: bands differ");
                    }

                    let (mut dfast, mut dport) = (vec![0f32; n], vec![0f32; n]);
                    for grads in [g, [None, g[1], None], [g[0], None, g[2]]] {
                        backward_impl(ex, true, band, &x, &s, grads, &mut dfast);
                        backward_impl(ex, false, height, &x, &s, grads, &mut dport);
                        same(&dfast, &dport, &format!("backward band {band} {tag}"));
                    }

                    for form in FORMS {
                        let c = 0.37;
                        for (wp, wt) in [(true, true), (true, false), (false, true)] {
                            let mut fast = [data(n, 7), data(n, 8)];
                            let mut port = fast.clone();
                            let [fp, ft] = &mut fast;
                            let [pp, pt] = &mut port;
                            let of = [wp.then_some(&mut fp[..]), wt.then_some(&mut ft[..])];
                            let op = [wp.then_some(&mut pp[..]), wt.then_some(&mut pt[..])];
                            loss_backward_impl(ex, true, band, &x, &t, &s, form, c, of);
                            loss_backward_impl(ex, false, height, &x, &t, &s, form, c, op);
                            let what =
                                format!("loss backward {form:?} {wp} {wt} band {band} {tag}");
                            same(&fast[0], &port[0], &what);
                            same(&fast[1], &port[1], &what);
                        }
                    }
                }
            }
        }
    }
}
