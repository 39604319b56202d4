//! Sobel gradients on NCHW and the Sobel loss (HAVIR eq. 2).
//!
//! Both kernels are separable: with the rows above (a), at (b) and below (c) an output
//! row, s = a + 2b + c and d = c − a give gx[w] = s[w+1] − s[w−1] and
//! gy[w] = d[w−1] + 2d[w] + d[w+1] (zero outside the plane). Only the six non-zero
//! taps of each kernel enter, so a NaN reaches exactly the outputs whose non-zero taps
//! touch it, as in the reference.
//!
//! Row pipeline: a task walks a band of rows of one plane. The vertical rows s, d of
//! each input row live in a scratch row of W + 2 values with zero ends (the zero
//! columns outside the plane), and one loop per output row does everything: the
//! vertical pass of the next row straight from the input rows (zero rows outside the
//! plane), and the horizontal pass of this row with all that follows it per pixel
//! (magnitudes, loss terms, effective gradients). Backward kernels keep the effective
//! gradients (Dx, Dy) of the last three rows and gather dx = −(Sx(Dx) + Sy(Dy)) (the
//! adjoint of a correlation with Kx, Ky is the correlation with the flipped kernels
//! −Kx, −Ky) one row behind, with the same separable passes. All of it stays in L1,
//! and the long-latency square roots and divisions overlap with the stencil
//! arithmetic of the same loop.
//!
//! Vectorisation: every row loop exists twice with the same arithmetic in the same
//! order and no FMA contraction: AVX2 intrinsics (module `x86`, 8 pixels per step,
//! chosen at run time by [`crate::simd::has_avx2_fma`]) and portable scalar code
//! (module `portable`, whose per-pixel functions also do the AVX2 loops' last W mod 8
//! pixels). Both give bit-identical results; a unit test checks it.
//!
//! - Sobel loss forward: the loss terms of a row are summed in f32 into 8 lanes by
//!   column over at most [`FLUSH_COLS`] columns, then into 8 f64 lanes; bands depend
//!   on the shape only and their sums are added in order, so the loss does not depend
//!   on the thread count.
//! - Backward kernels split planes into bands only when there are too few planes for
//!   the threads; a band recomputes the effective gradients of the row on each side,
//!   and bands change no result.

#![allow(clippy::needless_range_loop)] // SIMD tails index several rows by one counter

use crate::par::{reduce8, Exec, SEQ_COMPUTE};
use crate::{CpuBackend, CpuBuffer};
use brain_core::ops::SOBEL_EPS;
use brain_core::{check, ImageShape, Result, SobelLossForm};
use core::mem::swap;
use rayon::prelude::*;

/// ε of the magnitude in f32.
const EPS: f32 = SOBEL_EPS as f32;
/// f64 lanes of the loss sum (column mod 8).
const LANES: usize = 8;
/// Columns summed per lane in f32 before the partial sums go into the f64 lanes.
const FLUSH_COLS: usize = 256;
/// Largest band (in elements) of the loss forward's tasks.
const BAND_ELEMS: usize = 1 << 14;

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
                // function checks its slice lengths itself.
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

/// How the gather writes g = Sx(Dx) + Sy(Dy) into its output row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gather {
    /// out = −g.
    Set,
    /// out −= g (accumulating dx = −g).
    Sub,
    /// out += g (accumulating the negation of dx).
    Add,
}

/// The vertical rows of one input row: s = a + 2b + c and d = c − a at 1..=W of W + 2
/// values whose ends stay zero.
struct Vert {
    s: Vec<f32>,
    d: Vec<f32>,
}

impl Vert {
    fn new(w: usize) -> Self {
        Vert {
            s: vec![0.0; w + 2],
            d: vec![0.0; w + 2],
        }
    }
}

/// The portable row loops; their per-pixel functions also do the AVX2 loops' tails.
///
/// Each row loop takes the vertical rows of this row (`cur`), writes those of the next
/// row into `next` from the input rows `src` = [a, b, c] of that next row, and does its
/// per-pixel work from `cur`.
mod portable {
    use super::{EffMode, Gather, Vert, EPS, FLUSH_COLS, LANES};
    use brain_core::SobelLossForm;

    /// √(a² + b² + ε).
    #[inline(always)]
    pub fn mag(a: f32, b: f32) -> f32 {
        (a * a + b * b + EPS).sqrt()
    }

    /// (s, d) = (a + 2b + c, c − a).
    #[inline(always)]
    pub fn vert(a: f32, b: f32, c: f32) -> (f32, f32) {
        ((a + 2.0 * b) + c, c - a)
    }

    /// (gx, gy) at column `i` from vertical rows.
    #[inline(always)]
    pub fn horiz(v: &Vert, i: usize) -> (f32, f32) {
        let (s, d) = (&v.s, &v.d);
        (s[i + 2] - s[i], (d[i] + 2.0 * d[i + 1]) + d[i + 2])
    }

    /// The vertical pass of the next row at column `i`.
    #[inline(always)]
    pub fn vert_next(src: &[&[f32]; 3], next: &mut Vert, i: usize) {
        (next.s[i + 1], next.d[i + 1]) = vert(src[0][i], src[1][i], src[2][i]);
    }

    /// The loss term from pred's and target's (gx, gy).
    #[inline(always)]
    pub fn term(form: SobelLossForm, (gxp, gyp): (f32, f32), (gxt, gyt): (f32, f32)) -> f32 {
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

    /// Vertical rows of one row (the first of a band) into `v`.
    pub fn vert_row(src: [&[f32]; 3], v: &mut Vert, w: usize) {
        for i in 0..w {
            vert_next(&src, v, i);
        }
    }

    /// [`loss_row`] at column `i`.
    #[inline(always)]
    pub fn loss_px(
        form: SobelLossForm,
        cur: [&Vert; 2],
        next: &mut [&mut Vert; 2],
        src: &[[&[f32]; 3]; 2],
        i: usize,
    ) -> f32 {
        vert_next(&src[0], next[0], i);
        vert_next(&src[1], next[1], i);
        term(form, horiz(cur[0], i), horiz(cur[1], i))
    }

    /// The loss terms of one row into `acc[i mod 8]`: in f32 over runs of
    /// [`FLUSH_COLS`] columns, then in f64. Inputs: pred, target.
    pub fn loss_row(
        form: SobelLossForm,
        cur: [&Vert; 2],
        mut next: [&mut Vert; 2],
        src: [[&[f32]; 3]; 2],
        w: usize,
        acc: &mut [f64; LANES],
    ) {
        let mut a = [0f32; LANES];
        for i in 0..w {
            a[i % LANES] += loss_px(form, cur, &mut next, &src, i);
            if (i + 1) % FLUSH_COLS == 0 {
                flush(acc, &mut a);
            }
        }
        flush(acc, &mut a);
    }

    /// [`eff_row`] at column `i`.
    #[inline(always)]
    pub fn eff_px(
        mode: EffMode,
        cur: [&Vert; 2],
        next: &mut [&mut Vert; 2],
        src: &[[&[f32]; 3]; 2],
        c: f32,
        e: &mut [&mut [f32]; 4],
        i: usize,
    ) {
        vert_next(&src[0], next[0], i);
        vert_next(&src[1], next[1], i);
        let ((px, py), (qx, qy)) = (horiz(cur[0], i), horiz(cur[1], i));
        match mode {
            EffMode::Components => {
                e[0][i] = c * (px - qx);
                e[1][i] = c * (py - qy);
            }
            EffMode::MagPred => {
                let (mp, mt) = (mag(px, py), mag(qx, qy));
                let kp = (c * (mp - mt)) / mp;
                e[0][i] = kp * px;
                e[1][i] = kp * py;
            }
            EffMode::MagBoth => {
                let (mp, mt) = (mag(px, py), mag(qx, qy));
                let g = c * (mp - mt);
                let (kp, kt) = (g / mp, g / mt);
                e[0][i] = kp * px;
                e[1][i] = kp * py;
                e[2][i] = -(kt * qx);
                e[3][i] = -(kt * qy);
            }
        }
    }

    /// Effective gradients of one row into `e` (see [`EffMode`]). Inputs: pred,
    /// target.
    #[allow(clippy::too_many_arguments)]
    pub fn eff_row(
        mode: EffMode,
        cur: [&Vert; 2],
        mut next: [&mut Vert; 2],
        src: [[&[f32]; 3]; 2],
        w: usize,
        c: f32,
        mut e: [&mut [f32]; 4],
    ) {
        for i in 0..w {
            eff_px(mode, cur, &mut next, &src, c, &mut e, i);
        }
    }

    /// [`gather_row`] at column `i`.
    #[inline(always)]
    pub fn gather_px(
        ex: &[&[f32]; 3],
        ey: &[&[f32]; 3],
        cur: &Vert,
        next: &mut Vert,
        o: &mut f32,
        mode: Gather,
        i: usize,
    ) {
        next.s[i + 1] = vert(ex[0][i], ex[1][i], ex[2][i]).0;
        next.d[i + 1] = vert(ey[0][i], ey[1][i], ey[2][i]).1;
        let (gx, gy) = horiz(cur, i);
        let g = gx + gy;
        *o = match mode {
            Gather::Set => -g,
            Gather::Sub => *o - g,
            Gather::Add => *o + g,
        };
    }

    /// The gather of one row into `out` from the vertical rows `cur` of the effective
    /// gradients, writing those of the next row from `ex`, `ey` = Dx, Dy of the rows
    /// around it.
    #[allow(clippy::too_many_arguments)]
    pub fn gather_row(
        ex: [&[f32]; 3],
        ey: [&[f32]; 3],
        cur: &Vert,
        next: &mut Vert,
        w: usize,
        out: &mut [f32],
        mode: Gather,
    ) {
        for (i, o) in out[..w].iter_mut().enumerate() {
            gather_px(&ex, &ey, cur, next, o, mode, i);
        }
    }

    /// [`forward_row`] at column `i`: (gx, gy, magnitude).
    #[inline(always)]
    pub fn forward_px(cur: &Vert, next: &mut Vert, src: &[&[f32]; 3], i: usize) -> [f32; 3] {
        vert_next(src, next, i);
        let (a, b) = horiz(cur, i);
        [a, b, mag(a, b)]
    }

    /// gx, gy, magnitude of one row.
    pub fn forward_row(
        cur: &Vert,
        next: &mut Vert,
        src: [&[f32]; 3],
        w: usize,
        [gx, gy, m]: [&mut [f32]; 3],
    ) {
        for i in 0..w {
            [gx[i], gy[i], m[i]] = forward_px(cur, next, &src, i);
        }
    }

    /// [`bwd_eff_row`] at column `i`: (gxin + q·gx, gyin + q·gy), q = dm / magnitude.
    #[inline(always)]
    pub fn bwd_eff_px(
        cur: &Vert,
        next: &mut Vert,
        src: &[&[f32]; 3],
        g: &[&[f32]; 3],
        i: usize,
    ) -> (f32, f32) {
        vert_next(src, next, i);
        let (gx, gy) = horiz(cur, i);
        let q = g[0][i] / mag(gx, gy);
        (g[1][i] + q * gx, g[2][i] + q * gy)
    }

    /// Sobel backward's effective gradients of one row into `ex`, `ey` from the rows
    /// `g` = dmagnitude, incoming dgx, incoming dgy.
    #[allow(clippy::too_many_arguments)]
    pub fn bwd_eff_row(
        cur: &Vert,
        next: &mut Vert,
        src: [&[f32]; 3],
        g: [&[f32]; 3],
        w: usize,
        ex: &mut [f32],
        ey: &mut [f32],
    ) {
        for i in 0..w {
            (ex[i], ey[i]) = bwd_eff_px(cur, next, &src, &g, i);
        }
    }
}

/// The AVX2 row loops: the portable arithmetic 8 pixels at a time.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{portable, EffMode, Gather, Vert, EPS, FLUSH_COLS, LANES};
    use brain_core::SobelLossForm;
    use core::arch::x86_64::*;

    /// Panics unless the vertical rows hold W + 2 values and every row slice W.
    #[inline(always)]
    fn check(w: usize, verts: &[&Vert], rows: &[&[f32]]) {
        for v in verts {
            assert!(v.s.len() >= w + 2 && v.d.len() >= w + 2);
        }
        for r in rows {
            assert!(r.len() >= w);
        }
    }

    /// (s, d) = (a + 2b + c, c − a) at the 8 columns from `i`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn vert8(src: &[&[f32]; 3], i: usize) -> (__m256, __m256) {
        let a = _mm256_loadu_ps(src[0].as_ptr().add(i));
        let b = _mm256_loadu_ps(src[1].as_ptr().add(i));
        let c = _mm256_loadu_ps(src[2].as_ptr().add(i));
        (
            _mm256_add_ps(_mm256_add_ps(a, _mm256_add_ps(b, b)), c),
            _mm256_sub_ps(c, a),
        )
    }

    /// The vertical pass of the next row at the 8 columns from `i`, into `next`
    /// (through pointers `n` = (s, d) of it).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn vert_next8(src: &[&[f32]; 3], n: (*mut f32, *mut f32), i: usize) {
        let (s, d) = vert8(src, i);
        _mm256_storeu_ps(n.0.add(i + 1), s);
        _mm256_storeu_ps(n.1.add(i + 1), d);
    }

    /// (gx, gy) at the 8 columns from `i` from vertical rows.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn horiz8(v: &Vert, i: usize) -> (__m256, __m256) {
        let (s, d) = (v.s.as_ptr().add(i), v.d.as_ptr().add(i));
        let gx = _mm256_sub_ps(_mm256_loadu_ps(s.add(2)), _mm256_loadu_ps(s));
        let d1 = _mm256_loadu_ps(d.add(1));
        let gy = _mm256_add_ps(
            _mm256_add_ps(_mm256_loadu_ps(d), _mm256_add_ps(d1, d1)),
            _mm256_loadu_ps(d.add(2)),
        );
        (gx, gy)
    }

    /// √(a² + b² + ε).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mag8(a: __m256, b: __m256) -> __m256 {
        let s = _mm256_add_ps(_mm256_mul_ps(a, a), _mm256_mul_ps(b, b));
        _mm256_sqrt_ps(_mm256_add_ps(s, _mm256_set1_ps(EPS)))
    }

    /// Raw (s, d) pointers of a vertical row to write.
    #[inline(always)]
    fn ptrs(v: &mut Vert) -> (*mut f32, *mut f32) {
        (v.s.as_mut_ptr(), v.d.as_mut_ptr())
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

    /// [`portable::vert_row`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn vert_row(src: [&[f32]; 3], v: &mut Vert, w: usize) {
        check(w, &[&*v], &src);
        let n = ptrs(v);
        let mut i = 0;
        while i + 8 <= w {
            vert_next8(&src, n, i);
            i += 8;
        }
        for i in i..w {
            portable::vert_next(&src, v, i);
        }
    }

    /// [`portable::loss_row`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn loss_row(
        form: SobelLossForm,
        cur: [&Vert; 2],
        mut next: [&mut Vert; 2],
        src: [[&[f32]; 3]; 2],
        w: usize,
        acc: &mut [f64; LANES],
    ) {
        let [[a, b, c], [d, e, f]] = src;
        check(
            w,
            &[cur[0], cur[1], &*next[0], &*next[1]],
            &[a, b, c, d, e, f],
        );
        let (np, nt) = (ptrs(next[0]), ptrs(next[1]));
        let mut a = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= w {
            vert_next8(&src[0], np, i);
            vert_next8(&src[1], nt, i);
            let (gxp, gyp) = horiz8(cur[0], i);
            let (gxt, gyt) = horiz8(cur[1], i);
            let t = match form {
                SobelLossForm::Magnitude => {
                    let d = _mm256_sub_ps(mag8(gxp, gyp), mag8(gxt, gyt));
                    _mm256_mul_ps(d, d)
                }
                SobelLossForm::Components => {
                    let (u, v) = (_mm256_sub_ps(gxp, gxt), _mm256_sub_ps(gyp, gyt));
                    _mm256_add_ps(_mm256_mul_ps(u, u), _mm256_mul_ps(v, v))
                }
            };
            a = _mm256_add_ps(a, t);
            i += 8;
            if i % FLUSH_COLS == 0 {
                flush8(acc, a);
                a = _mm256_setzero_ps();
            }
        }
        let mut a8 = [0f32; LANES];
        _mm256_storeu_ps(a8.as_mut_ptr(), a);
        for i in i..w {
            a8[i % LANES] += portable::loss_px(form, cur, &mut next, &src, i);
        }
        portable::flush(acc, &mut a8);
    }

    /// [`portable::eff_row`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn eff_row(
        mode: EffMode,
        cur: [&Vert; 2],
        mut next: [&mut Vert; 2],
        src: [[&[f32]; 3]; 2],
        w: usize,
        c: f32,
        mut e: [&mut [f32]; 4],
    ) {
        let used = if mode == EffMode::MagBoth { 4 } else { 2 };
        let [[r0, r1, r2], [r3, r4, r5]] = src;
        check(
            w,
            &[cur[0], cur[1], &*next[0], &*next[1]],
            &[r0, r1, r2, r3, r4, r5],
        );
        for e in &e[..used] {
            assert!(e.len() >= w);
        }
        let (np, nt) = (ptrs(next[0]), ptrs(next[1]));
        let ep = e.each_mut().map(|e| e.as_mut_ptr());
        let cv = _mm256_set1_ps(c);
        let neg = _mm256_set1_ps(-0.0);
        let mut i = 0;
        while i + 8 <= w {
            vert_next8(&src[0], np, i);
            vert_next8(&src[1], nt, i);
            let (px, py) = horiz8(cur[0], i);
            let (qx, qy) = horiz8(cur[1], i);
            match mode {
                EffMode::Components => {
                    _mm256_storeu_ps(ep[0].add(i), _mm256_mul_ps(cv, _mm256_sub_ps(px, qx)));
                    _mm256_storeu_ps(ep[1].add(i), _mm256_mul_ps(cv, _mm256_sub_ps(py, qy)));
                }
                EffMode::MagPred => {
                    let (mp, mt) = (mag8(px, py), mag8(qx, qy));
                    let kp = _mm256_div_ps(_mm256_mul_ps(cv, _mm256_sub_ps(mp, mt)), mp);
                    _mm256_storeu_ps(ep[0].add(i), _mm256_mul_ps(kp, px));
                    _mm256_storeu_ps(ep[1].add(i), _mm256_mul_ps(kp, py));
                }
                EffMode::MagBoth => {
                    let (mp, mt) = (mag8(px, py), mag8(qx, qy));
                    let g = _mm256_mul_ps(cv, _mm256_sub_ps(mp, mt));
                    let (kp, kt) = (_mm256_div_ps(g, mp), _mm256_div_ps(g, mt));
                    _mm256_storeu_ps(ep[0].add(i), _mm256_mul_ps(kp, px));
                    _mm256_storeu_ps(ep[1].add(i), _mm256_mul_ps(kp, py));
                    _mm256_storeu_ps(ep[2].add(i), _mm256_xor_ps(_mm256_mul_ps(kt, qx), neg));
                    _mm256_storeu_ps(ep[3].add(i), _mm256_xor_ps(_mm256_mul_ps(kt, qy), neg));
                }
            }
            i += 8;
        }
        for i in i..w {
            portable::eff_px(mode, cur, &mut next, &src, c, &mut e, i);
        }
    }

    /// [`portable::gather_row`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather_row(
        ex: [&[f32]; 3],
        ey: [&[f32]; 3],
        cur: &Vert,
        next: &mut Vert,
        w: usize,
        out: &mut [f32],
        mode: Gather,
    ) {
        check(
            w,
            &[cur, &*next],
            &[ex[0], ex[1], ex[2], ey[0], ey[2], &*out],
        );
        let n = ptrs(next);
        let op = out.as_mut_ptr();
        let neg = _mm256_set1_ps(-0.0);
        let mut i = 0;
        while i + 8 <= w {
            let s = vert8(&ex, i).0;
            let (a, c) = (ey[0].as_ptr().add(i), ey[2].as_ptr().add(i));
            _mm256_storeu_ps(n.0.add(i + 1), s);
            _mm256_storeu_ps(
                n.1.add(i + 1),
                _mm256_sub_ps(_mm256_loadu_ps(c), _mm256_loadu_ps(a)),
            );
            let (gx, gy) = horiz8(cur, i);
            let g = _mm256_add_ps(gx, gy);
            let v = match mode {
                Gather::Set => _mm256_xor_ps(g, neg),
                Gather::Sub => _mm256_sub_ps(_mm256_loadu_ps(op.add(i)), g),
                Gather::Add => _mm256_add_ps(_mm256_loadu_ps(op.add(i)), g),
            };
            _mm256_storeu_ps(op.add(i), v);
            i += 8;
        }
        for i in i..w {
            portable::gather_px(&ex, &ey, cur, next, &mut out[i], mode, i);
        }
    }

    /// [`portable::forward_row`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_row(
        cur: &Vert,
        next: &mut Vert,
        src: [&[f32]; 3],
        w: usize,
        [gx, gy, m]: [&mut [f32]; 3],
    ) {
        check(
            w,
            &[cur, &*next],
            &[src[0], src[1], src[2], &*gx, &*gy, &*m],
        );
        let n = ptrs(next);
        let mut i = 0;
        while i + 8 <= w {
            vert_next8(&src, n, i);
            let (a, b) = horiz8(cur, i);
            _mm256_storeu_ps(gx.as_mut_ptr().add(i), a);
            _mm256_storeu_ps(gy.as_mut_ptr().add(i), b);
            _mm256_storeu_ps(m.as_mut_ptr().add(i), mag8(a, b));
            i += 8;
        }
        for i in i..w {
            [gx[i], gy[i], m[i]] = portable::forward_px(cur, next, &src, i);
        }
    }

    /// [`portable::bwd_eff_row`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bwd_eff_row(
        cur: &Vert,
        next: &mut Vert,
        src: [&[f32]; 3],
        g: [&[f32]; 3],
        w: usize,
        ex: &mut [f32],
        ey: &mut [f32],
    ) {
        check(
            w,
            &[cur, &*next],
            &[src[0], src[1], src[2], g[0], g[1], g[2], &*ex, &*ey],
        );
        let n = ptrs(next);
        let mut i = 0;
        while i + 8 <= w {
            vert_next8(&src, n, i);
            let (gx, gy) = horiz8(cur, i);
            let q = _mm256_div_ps(_mm256_loadu_ps(g[0].as_ptr().add(i)), mag8(gx, gy));
            let ix = _mm256_loadu_ps(g[1].as_ptr().add(i));
            let iy = _mm256_loadu_ps(g[2].as_ptr().add(i));
            _mm256_storeu_ps(
                ex.as_mut_ptr().add(i),
                _mm256_add_ps(ix, _mm256_mul_ps(q, gx)),
            );
            _mm256_storeu_ps(
                ey.as_mut_ptr().add(i),
                _mm256_add_ps(iy, _mm256_mul_ps(q, gy)),
            );
            i += 8;
        }
        for i in i..w {
            (ex[i], ey[i]) = portable::bwd_eff_px(cur, next, &src, &g, i);
        }
    }
}

// ------------------------------------------------------------------ bands

/// Row `h` of a plane `[H, W]`, or the zero row outside it.
#[inline(always)]
fn row<'a>(plane: &'a [f32], zeros: &'a [f32], w: usize, h: isize) -> &'a [f32] {
    if h < 0 || (h as usize + 1) * w > plane.len() {
        &zeros[..w]
    } else {
        let h = h as usize;
        &plane[h * w..(h + 1) * w]
    }
}

/// The input rows h, h + 1, h + 2 (those of the vertical pass of row h + 1).
#[inline(always)]
fn src3<'a>(plane: &'a [f32], zeros: &'a [f32], w: usize, h: isize) -> [&'a [f32]; 3] {
    [h, h + 1, h + 2].map(|h| row(plane, zeros, w, h))
}

/// Scratch of one task: vertical rows (current, next) of two inputs and of two gathers,
/// the effective gradients of the last three rows (4 buffers of 3 rows), a zero row
/// and a row to discard.
struct Scratch {
    vin: [[Vert; 2]; 2],
    vg: [[Vert; 2]; 2],
    ring: [Vec<f32>; 4],
    zeros: Vec<f32>,
    sink: Vec<f32>,
}

impl Scratch {
    fn new(w: usize) -> Self {
        let v = || [Vert::new(w), Vert::new(w)];
        Scratch {
            vin: [v(), v()],
            vg: [v(), v()],
            ring: [0; 4].map(|_| vec![0.0; 3 * w]),
            zeros: vec![0.0; w],
            sink: vec![0.0; w],
        }
    }
}

/// Effective-gradient row `k` of a band: its slot in the 3-row ring while
/// `k ∈ 0..eb`, else the zero row (outside the plane, or not needed).
#[inline(always)]
fn ring_row<'a>(ring: &'a [f32], zeros: &'a [f32], w: usize, eb: usize, k: isize) -> &'a [f32] {
    if k < 0 || k as usize >= eb {
        &zeros[..w]
    } else {
        let j = k as usize % 3;
        &ring[j * w..(j + 1) * w]
    }
}

/// Sobel forward of rows `h0..h1` of plane `x` into those rows of `gx`, `gy`, `m`.
fn forward_band(
    avx2: bool,
    x: &[f32],
    s: &ImageShape,
    h0: usize,
    h1: usize,
    [gx, gy, m]: [&mut [f32]; 3],
    sc: &mut Scratch,
) {
    let w = s.width;
    let Scratch { vin, zeros, .. } = sc;
    let [cur, next] = &mut vin[0];
    rows!(avx2, vert_row(src3(x, zeros, w, h0 as isize - 1), cur, w));
    let rows = gx
        .chunks_exact_mut(w)
        .zip(gy.chunks_exact_mut(w))
        .zip(m.chunks_exact_mut(w));
    for (h, ((gx, gy), m)) in (h0..h1).zip(rows) {
        let src = src3(x, zeros, w, h as isize);
        rows!(avx2, forward_row(cur, next, src, w, [gx, gy, m]));
        swap(cur, next);
    }
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
    let w = s.width;
    let Scratch { vin, zeros, .. } = sc;
    let [[pc, pn], [tc, tn]] = vin;
    let top = h0 as isize - 1;
    rows!(avx2, vert_row(src3(xp, zeros, w, top), pc, w));
    rows!(avx2, vert_row(src3(xt, zeros, w, top), tc, w));
    let mut acc = [0f64; LANES];
    for h in h0..h1 {
        let h = h as isize;
        let src = [src3(xp, zeros, w, h), src3(xt, zeros, w, h)];
        rows!(avx2, loss_row(form, [pc, tc], [pn, tn], src, w, &mut acc));
        swap(pc, pn);
        swap(tc, tn);
    }
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
    let (w, ht) = (s.width, s.height);
    let Scratch {
        vin,
        vg,
        ring,
        zeros,
        sink,
    } = sc;
    let [[xc, xn], _] = vin;
    let [[gc, gn], _] = vg;
    let [rx, ry, ..] = ring;
    // Effective gradients are needed for rows ea..eb: the band and a row on each side.
    let (ea, eb) = (h0.saturating_sub(1), (h1 + 1).min(ht));
    let [dgx, dgy, dm] = grads;
    if dm.is_some() {
        rows!(avx2, vert_row(src3(x, zeros, w, ea as isize - 1), xc, w));
    }
    let zeros = &zeros[..];
    for k in ea..h1 + 2 {
        if let (Some(dm), true) = (dm, k < eb) {
            let j = k % 3;
            let (ex, ey) = (&mut rx[j * w..(j + 1) * w], &mut ry[j * w..(j + 1) * w]);
            let g = [Some(dm), dgx, dgy].map(|g| row(g.unwrap_or(zeros), zeros, w, k as isize));
            let src = src3(x, zeros, w, k as isize);
            rows!(avx2, bwd_eff_row(xc, xn, src, g, w, ex, ey));
            swap(xc, xn);
        }
        if k > h0 {
            // Gather row k − 2 and the vertical rows of row k − 1.
            let r = k as isize - 1;
            let (rx, ry) = (&rx[..], &ry[..]);
            let ex = [r - 1, r, r + 1].map(|k| match dm {
                Some(_) => ring_row(rx, zeros, w, eb, k),
                None => row(dgx.unwrap_or(zeros), zeros, w, k),
            });
            let ey = [r - 1, r, r + 1].map(|k| match dm {
                Some(_) => ring_row(ry, zeros, w, eb, k),
                None => row(dgy.unwrap_or(zeros), zeros, w, k),
            });
            let o = match k.checked_sub(h0 + 2) {
                Some(j) => &mut out[j * w..(j + 1) * w],
                None => &mut sink[..],
            };
            rows!(avx2, gather_row(ex, ey, gc, gn, w, o, Gather::Set));
            swap(gc, gn);
        }
    }
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
    [mut dp, mut dt]: [Option<&mut [f32]>; 2],
    sc: &mut Scratch,
) {
    let (w, ht) = (s.width, s.height);
    let Scratch {
        vin,
        vg,
        ring,
        zeros,
        sink,
    } = sc;
    let [[pc, pn], [tc, tn]] = vin;
    let [[gpc, gpn], [gtc, gtn]] = vg;
    // Magnitude form: one pair (Dx, Dy) per input, target's only when asked for.
    // Components form: one pair for pred, whose negation is target's.
    let mode = match form {
        SobelLossForm::Components => EffMode::Components,
        SobelLossForm::Magnitude if dt.is_some() => EffMode::MagBoth,
        SobelLossForm::Magnitude => EffMode::MagPred,
    };
    // Effective gradients are needed for rows ea..eb: the band and a row on each side.
    let (ea, eb) = (h0.saturating_sub(1), (h1 + 1).min(ht));
    let top = ea as isize - 1;
    rows!(avx2, vert_row(src3(xp, zeros, w, top), pc, w));
    rows!(avx2, vert_row(src3(xt, zeros, w, top), tc, w));
    for k in ea..h1 + 2 {
        if k < eb {
            let j = k % 3;
            let e = ring.each_mut().map(|r| &mut r[j * w..(j + 1) * w]);
            let src = [
                src3(xp, zeros, w, k as isize),
                src3(xt, zeros, w, k as isize),
            ];
            rows!(avx2, eff_row(mode, [pc, tc], [pn, tn], src, w, c, e));
            swap(pc, pn);
            swap(tc, tn);
        }
        if k > h0 {
            // Gather row k − 2 and the vertical rows of row k − 1.
            let r = k as isize - 1;
            let rows3 = |q: usize| [r - 1, r, r + 1].map(|k| ring_row(&ring[q], zeros, w, eb, k));
            // Output row k − 2 of the band, or the sink before the band starts.
            let j = k.checked_sub(h0 + 2);
            if let Some(dp) = dp.as_deref_mut() {
                let o = match j {
                    Some(j) => &mut dp[j * w..(j + 1) * w],
                    None => &mut sink[..],
                };
                rows!(
                    avx2,
                    gather_row(rows3(0), rows3(1), gpc, gpn, w, o, Gather::Sub)
                );
                swap(gpc, gpn);
            }
            if let Some(dt) = dt.as_deref_mut() {
                let (ex, ey, how) = match form {
                    SobelLossForm::Components => (rows3(0), rows3(1), Gather::Add),
                    SobelLossForm::Magnitude => (rows3(2), rows3(3), Gather::Sub),
                };
                let o = match j {
                    Some(j) => &mut dt[j * w..(j + 1) * w],
                    None => &mut sink[..],
                };
                rows!(avx2, gather_row(ex, ey, gtc, gtn, w, o, how));
                swap(gtc, gtn);
            }
        }
    }
}

// ------------------------------------------------------------------ drivers

/// Rows per band of the loss forward, from the shape alone: the largest band of at
/// most [`BAND_ELEMS`] elements (at least one row, at most the plane).
fn shape_band(s: &ImageShape) -> usize {
    s.height.min((BAND_ELEMS / s.width.max(1)).max(1)).max(1)
}

/// Rows per band for kernels whose results do not depend on it: whole planes, split
/// when the planes give fewer than four bands per thread (bands of at least 8 rows;
/// each recomputes the effective gradients of the row on each side).
fn par_band(ex: Exec, s: &ImageShape) -> usize {
    let planes = s.batch * s.channels;
    let want = ex.threads * 4;
    if !ex.par || planes >= want {
        return s.height.max(1);
    }
    let per_plane = want.div_ceil(planes.max(1));
    s.height.div_ceil(per_plane).max(8.min(s.height)).max(1)
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
    let init = || Scratch::new(s.width);
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
    let init = || Scratch::new(s.width);
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
    let init = || Scratch::new(s.width);
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
    let init = || Scratch::new(s.width);
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
