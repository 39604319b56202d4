//! Sobel gradients on NCHW and the Sobel loss (HAVIR eq. 2).
//!
//! Separable arithmetic: for a row x of the plane, h = 2x₀ + (x₋ + x₊) and
//! d = x₊ − x₋ (columns −1, 0, +1; one FMA, one add, one subtract). With the rows
//! above (a), at (b) and below (c) a pixel,
//! gx = 2d_b + (d_a + d_c) and gy = h_c − h_a, so each input row's pieces are
//! computed once and serve the three output rows around it. Only each kernel's six
//! non-zero taps enter (gx never reads column 0, gy never reads row b), so a NaN
//! reaches exactly the outputs whose non-zero taps touch it, as in the reference.
//! The magnitude is √(gx² + (gy² + ε)) with two FMAs. Rows outside the plane and
//! columns −1 and W read as zeros.
//!
//! Layout: nothing is copied. The AVX2 loops walk down strips of 8 columns, a block of
//! rows at a time, keeping the (h, d) pieces of the two previous rows in registers, so
//! each input row of a strip is loaded once (three loads, at columns −1, 0, +1); the
//! first and last strip of a row load their outer neighbour with a masked load that
//! leaves the column outside the plane out. Everything a pixel needs (both Sobels,
//! magnitudes, loss terms or effective gradients) is done in that one loop, so the
//! long-latency square roots and divisions overlap with the stencil arithmetic.
//!
//! Vectorisation: the loops exist twice with the same arithmetic in the same order
//! (FMAs included: the portable code uses `mul_add`): AVX2 intrinsics (module `x86`, 8
//! columns per strip, chosen at run time by [`crate::simd::has_avx2_fma`]) and
//! portable scalar code (module `portable`, which also does the AVX2 loops' last
//! W mod 8 columns). Both give bit-identical results; a unit test checks it. (Where
//! the CPU has no FMA, `mul_add` is a libm call: slower, still exactly rounded.)
//!
//! - Sobel loss forward: each strip sums its loss terms over a block of
//!   [`FWD_BLOCK`] rows in f32 (lane = column mod 8), then adds them into 8 f64 lanes;
//!   blocks and strips go in a fixed order and the bands depend on the shape only, so
//!   the loss does not depend on the thread count.
//! - Backward kernels compute the effective gradients (Dx, Dy) of a block of
//!   [`BWD_BLOCK`] rows and of the row on each side into a small zero-padded buffer
//!   (L1-resident), then gather dx = −(Sx(Dx) + Sy(Dy)) for the block with the same
//!   separable walk (the adjoint of a correlation with Kx, Ky is the correlation with
//!   the flipped kernels −Kx, −Ky); the buffer's last two rows carry over to the next
//!   block. Planes are split into bands only when there are too few of them for the
//!   threads; bands change no result.

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
/// Rows a strip of the loss forward sums in f32 before its lanes go into f64 (and rows
/// per block of the Sobel forward).
const FWD_BLOCK: usize = 32;
/// Output rows per block of the backward kernels: their effective-gradient buffer
/// holds this many rows plus one on each side.
const BWD_BLOCK: usize = 16;
/// Zero columns on each side of an effective-gradient buffer row: column i sits at
/// `PAD + i`, so the gather's loads at columns −1 and W read zeros and the row's
/// vectors are aligned.
const PAD: usize = 8;

/// Whether the AVX2 loops may run on this CPU.
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
    Components = 0,
    /// Pred's Dx = k_p·gx_p, Dy = k_p·gy_p with k_p = c(M_p − M_t)/M_p, computed as
    /// (c/S_p)(S_p − M_p·M_t) from the squared magnitude S_p = M_p² so that the
    /// division does not wait for the square roots (same rounding error bound).
    MagPred = 1,
    /// Pred's as above and target's Dx = −k_t·gx_t, Dy = −k_t·gy_t with
    /// −k_t = −c(M_p − M_t)/M_t = (c/S_t)(S_t − M_p·M_t).
    MagBoth = 2,
}

impl EffMode {
    /// Effective-gradient arrays it writes.
    fn arrays(self) -> usize {
        if self == EffMode::MagBoth {
            4
        } else {
            2
        }
    }
}

/// How the gather writes `g` = Sx(Dx) + Sy(Dy) into its output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gather {
    /// out = −g.
    Set = 0,
    /// out −= g (accumulating dx = −g).
    Sub = 1,
    /// out += g (accumulating the negation of dx).
    Add = 2,
}

/// A plane of `ht` rows of `w` values whose rows outside it (any index ≥ `ht`,
/// including −1 wrapped) read as `zeros`.
#[derive(Clone, Copy)]
struct Plane<'a> {
    x: &'a [f32],
    w: usize,
    ht: usize,
    zeros: &'a [f32],
}

impl<'a> Plane<'a> {
    /// `x` as a plane of rows of `w`; `zeros` holds at least `w` zeros.
    fn new(x: &'a [f32], w: usize, zeros: &'a [f32]) -> Self {
        // Internal invariant, not user input: the kernels' entry points have checked
        // every length with brain_core::check before any plane is built. The asserts in
        // this file guard the unchecked pointer reads of the SIMD walks below.
        assert!(w > 0 && zeros.len() >= w && x.len() % w == 0);
        Plane {
            x,
            w,
            ht: x.len() / w,
            zeros,
        }
    }

    /// A plane of zeros of any height (an absent incoming gradient).
    fn zero(w: usize, zeros: &'a [f32]) -> Self {
        Plane::new(&zeros[..0], w, zeros)
    }

    /// Row `r`, or the zero row outside the plane.
    #[inline(always)]
    fn row(&self, r: usize) -> &'a [f32] {
        if r < self.ht {
            &self.x[r * self.w..(r + 1) * self.w]
        } else {
            &self.zeros[..self.w]
        }
    }
}

/// Effective-gradient rows of one backward block: `arrays` arrays (Dx, Dy, and
/// target's pair in [`EffMode::MagBoth`]) of `rows` rows of stride `ws` ≥ W + 2·[`PAD`]
/// (32-byte aligned); only columns 0..W are ever written, so the pads stay zero.
struct EffBuf {
    buf: Vec<f32>,
    off: usize,
    ws: usize,
    rows: usize,
    arrays: usize,
}

impl EffBuf {
    fn new(w: usize, arrays: usize) -> Self {
        let ws = (w + 2 * PAD).next_multiple_of(8);
        let rows = BWD_BLOCK + 2;
        let buf = vec![0f32; arrays * rows * ws + 8];
        let off = buf.as_ptr().align_offset(32).min(8);
        EffBuf {
            buf,
            off,
            ws,
            rows,
            arrays,
        }
    }

    /// Array `k` (empty past `arrays`).
    fn array(&self, k: usize) -> &[f32] {
        let n = self.rows * self.ws;
        if k < self.arrays {
            &self.buf[self.off + k * n..self.off + (k + 1) * n]
        } else {
            &[]
        }
    }

    /// Rows `i0..` of every array (empty slices past `arrays`).
    fn rows_from(&mut self, i0: usize) -> [&mut [f32]; 4] {
        let (n, arrays) = (self.rows * self.ws, self.arrays);
        let mut it = self.buf[self.off..]
            .chunks_mut(n)
            .take(arrays)
            .map(|a| &mut a[i0 * self.ws..]);
        core::array::from_fn(|_| it.next().unwrap_or_default())
    }

    /// Zero row `i` of every array.
    fn zero_row(&mut self, i: usize) {
        let ws = self.ws;
        for a in self.rows_from(i) {
            if !a.is_empty() {
                a[..ws].fill(0.0);
            }
        }
    }

    /// Copy rows `i`, `i + 1` of every array to rows 0, 1.
    fn carry(&mut self, i: usize) {
        let ws = self.ws;
        for a in self.rows_from(0) {
            if !a.is_empty() {
                a.copy_within(i * ws..(i + 2) * ws, 0);
            }
        }
    }
}

/// The portable loops; they also do the AVX2 loops' last W mod 8 columns.
mod portable {
    use super::{EffMode, Gather, Plane, EPS, LANES, PAD};
    use brain_core::SobelLossForm;

    /// Column `i` of `row`, 0 outside it (`i` = −1 arrives wrapped).
    #[inline(always)]
    fn at(row: &[f32], i: usize) -> f32 {
        row.get(i).copied().unwrap_or(0.0)
    }

    /// The pieces (h, d) = (2x₀ + (x₋ + x₊), x₊ − x₋) of `row` at column `i`.
    #[inline(always)]
    pub fn hd(row: &[f32], i: usize) -> (f32, f32) {
        let (m, p) = (at(row, i.wrapping_sub(1)), at(row, i + 1));
        (row[i].mul_add(2.0, m + p), p - m)
    }

    /// (corr(x, Kx), corr(x, Ky)) at row `r`, column `i`.
    #[inline(always)]
    pub fn sobel(x: Plane, r: usize, i: usize) -> (f32, f32) {
        let (ha, da) = hd(x.row(r.wrapping_sub(1)), i);
        let (_, db) = hd(x.row(r), i);
        let (hc, dc) = hd(x.row(r + 1), i);
        (db.mul_add(2.0, da + dc), hc - ha)
    }

    /// a² + (b² + ε), the square of the magnitude.
    #[inline(always)]
    pub fn sumsq(a: f32, b: f32) -> f32 {
        a.mul_add(a, b.mul_add(b, EPS))
    }

    /// √(a² + (b² + ε)).
    #[inline(always)]
    pub fn mag(a: f32, b: f32) -> f32 {
        sumsq(a, b).sqrt()
    }

    /// `acc` plus the loss term at row `r`, column `i`.
    #[inline(always)]
    fn loss_add(form: SobelLossForm, p: Plane, t: Plane, r: usize, i: usize, acc: f32) -> f32 {
        let ((gxp, gyp), (gxt, gyt)) = (sobel(p, r, i), sobel(t, r, i));
        match form {
            SobelLossForm::Magnitude => {
                let d = mag(gxp, gyp) - mag(gxt, gyt);
                d.mul_add(d, acc)
            }
            SobelLossForm::Components => {
                let (u, v) = (gxp - gxt, gyp - gyt);
                u.mul_add(u, v.mul_add(v, acc))
            }
        }
    }

    /// `acc[l] += a[l]` in f64.
    #[inline(always)]
    pub fn flush(acc: &mut [f64; LANES], a: &[f32; LANES]) {
        for l in 0..LANES {
            acc[l] += a[l] as f64;
        }
    }

    /// The strip of columns `j0..j1` (at most 8) over rows `r0..r1`: its loss terms
    /// summed in f32 by column, then added into `acc[column − j0]`.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_strip(
        form: SobelLossForm,
        p: Plane,
        t: Plane,
        (r0, r1): (usize, usize),
        (j0, j1): (usize, usize),
        acc: &mut [f64; LANES],
    ) {
        let mut a = [0f32; LANES];
        for r in r0..r1 {
            for (l, i) in (j0..j1).enumerate() {
                a[l] = loss_add(form, p, t, r, i, a[l]);
            }
        }
        flush(acc, &a);
    }

    /// Σ of the loss terms of rows `r0..r1` into `acc`, strip by strip.
    pub fn loss_block(
        form: SobelLossForm,
        p: Plane,
        t: Plane,
        rows: (usize, usize),
        acc: &mut [f64; LANES],
    ) {
        for j0 in (0..p.w).step_by(LANES) {
            loss_strip(form, p, t, rows, (j0, (j0 + LANES).min(p.w)), acc);
        }
    }

    /// Effective gradients at row `r`, column `i` into column `i` of buffer row `k`
    /// (an index into each array of `e`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn eff(
        mode: EffMode,
        p: Plane,
        t: Plane,
        r: usize,
        i: usize,
        c: f32,
        e: &mut [&mut [f32]; 4],
        k: usize,
    ) {
        let ((px, py), (qx, qy)) = (sobel(p, r, i), sobel(t, r, i));
        match mode {
            EffMode::Components => {
                e[0][k] = c * (px - qx);
                e[1][k] = c * (py - qy);
            }
            EffMode::MagPred => {
                let (sp, st) = (sumsq(px, py), sumsq(qx, qy));
                let (mp, mt) = (sp.sqrt(), st.sqrt());
                let kp = (c / sp) * (-mp).mul_add(mt, sp);
                e[0][k] = kp * px;
                e[1][k] = kp * py;
            }
            EffMode::MagBoth => {
                let (sp, st) = (sumsq(px, py), sumsq(qx, qy));
                let (mp, mt) = (sp.sqrt(), st.sqrt());
                let kp = (c / sp) * (-mp).mul_add(mt, sp);
                let kt = (c / st) * (-mp).mul_add(mt, st);
                e[0][k] = kp * px;
                e[1][k] = kp * py;
                e[2][k] = kt * qx;
                e[3][k] = kt * qy;
            }
        }
    }

    /// Effective gradients of rows `r0..r1`, columns `j0..` into the buffer rows `e`
    /// (row r at `(r − r0)·ws`, column i at `PAD + i`).
    #[allow(clippy::too_many_arguments)]
    pub fn eff_cols(
        mode: EffMode,
        p: Plane,
        t: Plane,
        (r0, r1): (usize, usize),
        j0: usize,
        c: f32,
        e: &mut [&mut [f32]; 4],
        ws: usize,
    ) {
        for r in r0..r1 {
            for i in j0..p.w {
                eff(mode, p, t, r, i, c, e, (r - r0) * ws + PAD + i);
            }
        }
    }

    /// [`eff_cols`] from column 0.
    #[allow(clippy::too_many_arguments)]
    pub fn eff_block(
        mode: EffMode,
        p: Plane,
        t: Plane,
        rows: (usize, usize),
        c: f32,
        mut e: [&mut [f32]; 4],
        ws: usize,
    ) {
        eff_cols(mode, p, t, rows, 0, c, &mut e, ws);
    }

    /// `o` updated with g = Sx(Dx) + Sy(Dy) at column `i` from the buffer rows at `k`
    /// (row r − 1), `k + ws` (row r) and `k + 2ws` (row r + 1) of Dx (`x`) and Dy (`y`).
    #[inline(always)]
    fn gather(x: &[f32], y: &[f32], k: usize, ws: usize, o: &mut f32, mode: Gather) {
        let dd = |k: usize| x[k + 1] - x[k - 1];
        let hh = |k: usize| y[k].mul_add(2.0, y[k - 1] + y[k + 1]);
        let (ka, kb, kc) = (k, k + ws, k + 2 * ws);
        let g = dd(kb).mul_add(2.0, dd(ka) + dd(kc)) + (hh(kc) - hh(ka));
        *o = match mode {
            Gather::Set => -g,
            Gather::Sub => *o - g,
            Gather::Add => *o + g,
        };
    }

    /// Gather of columns `j0..w` of the output rows `out` (row i from buffer rows i,
    /// i + 1, i + 2).
    pub fn gather_cols(
        x: &[f32],
        y: &[f32],
        ws: usize,
        j0: usize,
        out: &mut [f32],
        w: usize,
        mode: Gather,
    ) {
        for (r, o) in out.chunks_exact_mut(w).enumerate() {
            for (i, o) in o.iter_mut().enumerate().skip(j0) {
                gather(x, y, r * ws + PAD + i, ws, o, mode);
            }
        }
    }

    /// [`gather_cols`] from column 0.
    pub fn gather_block(x: &[f32], y: &[f32], ws: usize, out: &mut [f32], w: usize, mode: Gather) {
        gather_cols(x, y, ws, 0, out, w, mode);
    }

    /// gx, gy, magnitude of rows `r0..r1`, columns `j0..` into the rows of `out`.
    pub fn forward_cols(
        x: Plane,
        (r0, r1): (usize, usize),
        j0: usize,
        [gx, gy, m]: [&mut [f32]; 3],
    ) {
        for r in r0..r1 {
            for i in j0..x.w {
                let k = (r - r0) * x.w + i;
                let (a, b) = sobel(x, r, i);
                (gx[k], gy[k], m[k]) = (a, b, mag(a, b));
            }
        }
    }

    /// [`forward_cols`] from column 0.
    pub fn forward_block(x: Plane, rows: (usize, usize), out: [&mut [f32]; 3]) {
        forward_cols(x, rows, 0, out);
    }

    /// Sobel backward's effective gradients of rows `r0..r1`, columns `j0..`:
    /// (gxin + q·gx, gyin + q·gy) with q = dm / magnitude, `g` = dm, dgx, dgy.
    pub fn bwd_eff_cols(
        x: Plane,
        g: [Plane; 3],
        (r0, r1): (usize, usize),
        j0: usize,
        [ex, ey]: [&mut [f32]; 2],
        ws: usize,
    ) {
        for r in r0..r1 {
            let [dm, gxin, gyin] = g.map(|g| g.row(r));
            for i in j0..x.w {
                let (gx, gy) = sobel(x, r, i);
                let q = dm[i] / mag(gx, gy);
                let k = (r - r0) * ws + PAD + i;
                (ex[k], ey[k]) = (q.mul_add(gx, gxin[i]), q.mul_add(gy, gyin[i]));
            }
        }
    }

    /// [`bwd_eff_cols`] from column 0.
    pub fn bwd_eff_block(
        x: Plane,
        g: [Plane; 3],
        rows: (usize, usize),
        e: [&mut [f32]; 2],
        ws: usize,
    ) {
        bwd_eff_cols(x, g, rows, 0, e, ws);
    }
}

/// `vectors!(w, f[G..](args))` calls `f::<G.., L, R>(j, args)` for j = 0, 8, … while
/// j + 8 ≤ w, where L says that column j − 1 is outside the row (j = 0) and R that
/// column j + 8 is (j + 8 = w), and evaluates to the first column left over.
#[cfg(target_arch = "x86_64")]
macro_rules! vectors {
    ($w:expr, $f:ident[$($g:tt),*]($($a:expr),* $(,)?)) => {{
        let w: usize = $w;
        let mut j = 0usize;
        if w == 8 {
            $f::<$($g,)* true, true>(0, $($a),*);
            j = 8;
        } else if w > 8 {
            $f::<$($g,)* true, false>(0, $($a),*);
            j = 8;
            while j + 8 < w {
                $f::<$($g,)* false, false>(j, $($a),*);
                j += 8;
            }
            if j + 8 == w {
                $f::<$($g,)* false, true>(j, $($a),*);
                j += 8;
            }
        }
        j
    }};
}

/// The AVX2 loops: the portable arithmetic 8 columns at a time.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{portable, EffMode, Gather, Plane, EPS, LANES, PAD};
    use brain_core::SobelLossForm;
    use core::arch::x86_64::*;

    /// Lanes a masked load keeps: all but the first (column −1), all but the last
    /// (column W).
    const KEEP_TAIL: [i32; 8] = [0, -1, -1, -1, -1, -1, -1, -1];
    const KEEP_HEAD: [i32; 8] = [-1, -1, -1, -1, -1, -1, -1, 0];

    /// A [`Plane`] as raw row pointers (bounds checked on construction).
    #[derive(Clone, Copy)]
    struct Rows {
        base: *const f32,
        w: usize,
        ht: usize,
        zeros: *const f32,
    }

    impl Rows {
        fn new(p: Plane) -> Self {
            assert!(p.x.len() >= p.ht * p.w && p.zeros.len() >= p.w);
            Rows {
                base: p.x.as_ptr(),
                w: p.w,
                ht: p.ht,
                zeros: p.zeros.as_ptr(),
            }
        }

        /// End of the steps of a walk over rows `r0..r1` whose row r + 1 lies inside
        /// the plane (at least `r0`).
        #[inline(always)]
        fn inside(&self, r0: usize, r1: usize) -> usize {
            r1.min(self.ht.saturating_sub(1)).max(r0)
        }

        /// Row `r` (W readable values), the zero row outside the plane.
        #[inline(always)]
        fn row(&self, r: usize) -> *const f32 {
            if r < self.ht {
                // SAFETY: r < ht and the plane holds ht rows of w.
                unsafe { self.base.add(r * self.w) }
            } else {
                self.zeros
            }
        }
    }

    /// The pieces (h, d) of columns j .. j + 8 of a row of W values. With `L` (then
    /// j = 0) column −1 reads 0, with `R` (then j + 8 = W) column W does; neither is
    /// accessed.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hd8<const L: bool, const R: bool>(row: *const f32, j: usize) -> (__m256, __m256) {
        let m = if L {
            let keep = _mm256_loadu_si256(KEEP_TAIL.as_ptr().cast());
            _mm256_maskload_ps(row.wrapping_sub(1), keep)
        } else {
            _mm256_loadu_ps(row.add(j - 1))
        };
        let p = if R {
            let keep = _mm256_loadu_si256(KEEP_HEAD.as_ptr().cast());
            _mm256_maskload_ps(row.add(j + 1), keep)
        } else {
            _mm256_loadu_ps(row.add(j + 1))
        };
        let x = _mm256_loadu_ps(row.add(j));
        (
            _mm256_fmadd_ps(x, _mm256_set1_ps(2.0), _mm256_add_ps(m, p)),
            _mm256_sub_ps(p, m),
        )
    }

    /// (gx, gy) from the pieces of the rows above, at and below.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sobel8(
        a: (__m256, __m256),
        b: (__m256, __m256),
        c: (__m256, __m256),
    ) -> (__m256, __m256) {
        let two = _mm256_set1_ps(2.0);
        (
            _mm256_fmadd_ps(b.1, two, _mm256_add_ps(a.1, c.1)),
            _mm256_sub_ps(c.0, a.0),
        )
    }

    /// a² + (b² + ε).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sumsq8(a: __m256, b: __m256) -> __m256 {
        _mm256_fmadd_ps(a, a, _mm256_fmadd_ps(b, b, _mm256_set1_ps(EPS)))
    }

    /// √(a² + (b² + ε)).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mag8(a: __m256, b: __m256) -> __m256 {
        _mm256_sqrt_ps(sumsq8(a, b))
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

    /// [`portable::loss_strip`] of columns j .. j + 8 (magnitude form when `MAG`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn loss8<const MAG: bool, const L: bool, const R: bool>(
        j: usize,
        p: Rows,
        t: Rows,
        (r0, r1): (usize, usize),
        acc: &mut [f64; LANES],
    ) {
        let pieces = |pr: *const f32, tr: *const f32| (hd8::<L, R>(pr, j), hd8::<L, R>(tr, j));
        let r = r0.wrapping_sub(1);
        let (mut a, mut b) = (pieces(p.row(r), t.row(r)), pieces(p.row(r0), t.row(r0)));
        let mut sum = _mm256_setzero_ps();
        macro_rules! step {
            ($pc:expr, $tc:expr) => {{
                let c = pieces($pc, $tc);
                let (gxp, gyp) = sobel8(a.0, b.0, c.0);
                let (gxt, gyt) = sobel8(a.1, b.1, c.1);
                sum = if MAG {
                    let d = _mm256_sub_ps(mag8(gxp, gyp), mag8(gxt, gyt));
                    _mm256_fmadd_ps(d, d, sum)
                } else {
                    let (u, v) = (_mm256_sub_ps(gxp, gxt), _mm256_sub_ps(gyp, gyt));
                    _mm256_fmadd_ps(u, u, _mm256_fmadd_ps(v, v, sum))
                };
                (a, b) = (b, c);
            }};
        }
        // Rows r + 1 inside the plane by pointer increments, then the zero row.
        let (mut pc, mut tc) = (p.row(r0 + 1), t.row(r0 + 1));
        for _ in r0..p.inside(r0, r1) {
            step!(pc, tc);
            (pc, tc) = (pc.wrapping_add(p.w), tc.wrapping_add(t.w));
        }
        for _ in p.inside(r0, r1)..r1 {
            step!(p.zeros, t.zeros);
        }
        flush8(acc, sum);
    }

    /// [`portable::loss_block`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn loss_block(
        form: SobelLossForm,
        p: Plane,
        t: Plane,
        rows: (usize, usize),
        acc: &mut [f64; LANES],
    ) {
        let (pr, tr) = (Rows::new(p), Rows::new(t));
        assert!(p.w == t.w && p.ht == t.ht);
        let j = match form {
            SobelLossForm::Magnitude => vectors!(p.w, loss8[true](pr, tr, rows, acc)),
            SobelLossForm::Components => vectors!(p.w, loss8[false](pr, tr, rows, acc)),
        };
        if j < p.w {
            portable::loss_strip(form, p, t, rows, (j, p.w), acc);
        }
    }

    /// Effective gradients of columns j .. j + 8, rows r0..r1 into the buffer rows `e`
    /// (row r at `(r − r0)·ws`, column i at `PAD + i`; mode `M` as the [`EffMode`]
    /// discriminant).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn eff8<const M: u8, const L: bool, const R: bool>(
        j: usize,
        p: Rows,
        t: Rows,
        (r0, r1): (usize, usize),
        cv: __m256,
        e: [*mut f32; 4],
        ws: usize,
    ) {
        let pieces = |pr: *const f32, tr: *const f32| (hd8::<L, R>(pr, j), hd8::<L, R>(tr, j));
        let r = r0.wrapping_sub(1);
        let (mut a, mut b) = (pieces(p.row(r), t.row(r)), pieces(p.row(r0), t.row(r0)));
        let mut k = PAD + j;
        macro_rules! step {
            ($pc:expr, $tc:expr) => {{
                let c = pieces($pc, $tc);
                let (px, py) = sobel8(a.0, b.0, c.0);
                let (qx, qy) = sobel8(a.1, b.1, c.1);
                if M == EffMode::Components as u8 {
                    _mm256_storeu_ps(e[0].add(k), _mm256_mul_ps(cv, _mm256_sub_ps(px, qx)));
                    _mm256_storeu_ps(e[1].add(k), _mm256_mul_ps(cv, _mm256_sub_ps(py, qy)));
                } else {
                    // c(M_p − M_t)/M_p = (c/S_p)(S_p − M_p·M_t) with S = M²: the
                    // division does not wait for the square roots.
                    let (sp, st) = (sumsq8(px, py), sumsq8(qx, qy));
                    let (mp, mt) = (_mm256_sqrt_ps(sp), _mm256_sqrt_ps(st));
                    let kp = _mm256_mul_ps(_mm256_div_ps(cv, sp), _mm256_fnmadd_ps(mp, mt, sp));
                    _mm256_storeu_ps(e[0].add(k), _mm256_mul_ps(kp, px));
                    _mm256_storeu_ps(e[1].add(k), _mm256_mul_ps(kp, py));
                    if M == EffMode::MagBoth as u8 {
                        // −c(M_p − M_t)/M_t = (c/S_t)(S_t − M_p·M_t).
                        let d = _mm256_fnmadd_ps(mp, mt, st);
                        let kt = _mm256_mul_ps(_mm256_div_ps(cv, st), d);
                        _mm256_storeu_ps(e[2].add(k), _mm256_mul_ps(kt, qx));
                        _mm256_storeu_ps(e[3].add(k), _mm256_mul_ps(kt, qy));
                    }
                }
                (a, b) = (b, c);
                k += ws;
            }};
        }
        let (mut pc, mut tc) = (p.row(r0 + 1), t.row(r0 + 1));
        for _ in r0..p.inside(r0, r1) {
            step!(pc, tc);
            (pc, tc) = (pc.wrapping_add(p.w), tc.wrapping_add(t.w));
        }
        for _ in p.inside(r0, r1)..r1 {
            step!(p.zeros, t.zeros);
        }
    }

    /// [`portable::eff_block`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn eff_block(
        mode: EffMode,
        p: Plane,
        t: Plane,
        rows: (usize, usize),
        c: f32,
        mut e: [&mut [f32]; 4],
        ws: usize,
    ) {
        let (pr, tr) = (Rows::new(p), Rows::new(t));
        let w = p.w;
        assert!(t.w == w && t.ht == p.ht && ws >= w + 2 * PAD);
        let n = rows.1 - rows.0;
        for e in &e[..mode.arrays()] {
            assert!(n == 0 || e.len() >= (n - 1) * ws + PAD + w);
        }
        let ep = e.each_mut().map(|e| e.as_mut_ptr());
        let cv = _mm256_set1_ps(c);
        let j = match mode {
            EffMode::Components => vectors!(w, eff8[0](pr, tr, rows, cv, ep, ws)),
            EffMode::MagPred => vectors!(w, eff8[1](pr, tr, rows, cv, ep, ws)),
            EffMode::MagBoth => vectors!(w, eff8[2](pr, tr, rows, cv, ep, ws)),
        };
        if j < w {
            portable::eff_cols(mode, p, t, rows, j, c, &mut e, ws);
        }
    }

    /// The pieces (dd, hh) of buffer row `x`, `y` at columns j .. j + 8 (`k` = PAD + j).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gpieces(x: *const f32, y: *const f32, k: usize) -> (__m256, __m256) {
        let dd = _mm256_sub_ps(_mm256_loadu_ps(x.add(k + 1)), _mm256_loadu_ps(x.add(k - 1)));
        let s = _mm256_add_ps(_mm256_loadu_ps(y.add(k - 1)), _mm256_loadu_ps(y.add(k + 1)));
        (
            dd,
            _mm256_fmadd_ps(_mm256_loadu_ps(y.add(k)), _mm256_set1_ps(2.0), s),
        )
    }

    /// Gather of the strip of columns j .. j + 8 of the `n` output rows from `o` (row
    /// stride `w`), from buffer rows 0 .. n + 2 of `x`, `y` (mode `G` as the [`Gather`]
    /// discriminant).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gather8<const G: u8>(
        j: usize,
        (x, y): (*const f32, *const f32),
        ws: usize,
        (o, n, w): (*mut f32, usize, usize),
    ) {
        let (two, neg) = (_mm256_set1_ps(2.0), _mm256_set1_ps(-0.0));
        let k = PAD + j;
        let (mut a, mut b) = (gpieces(x, y, k), gpieces(x, y, k + ws));
        let (mut kc, mut o) = (k + 2 * ws, o.add(j));
        for _ in 0..n {
            let c = gpieces(x, y, kc);
            let sx = _mm256_fmadd_ps(b.0, two, _mm256_add_ps(a.0, c.0));
            let g = _mm256_add_ps(sx, _mm256_sub_ps(c.1, a.1));
            let v = if G == Gather::Set as u8 {
                _mm256_xor_ps(g, neg)
            } else if G == Gather::Sub as u8 {
                _mm256_sub_ps(_mm256_loadu_ps(o), g)
            } else {
                _mm256_add_ps(_mm256_loadu_ps(o), g)
            };
            _mm256_storeu_ps(o, v);
            (a, b) = (b, c);
            kc += ws;
            o = o.add(w);
        }
    }

    /// [`portable::gather_block`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gather_block(
        x: &[f32],
        y: &[f32],
        ws: usize,
        out: &mut [f32],
        w: usize,
        mode: Gather,
    ) {
        let n = out.len() / w;
        assert!(ws >= w + 2 * PAD && x.len() >= (n + 2) * ws && y.len() >= (n + 2) * ws);
        let (xy, o) = ((x.as_ptr(), y.as_ptr()), (out.as_mut_ptr(), n, w));
        let mut j = 0;
        while j + 8 <= w {
            match mode {
                Gather::Set => gather8::<{ Gather::Set as u8 }>(j, xy, ws, o),
                Gather::Sub => gather8::<{ Gather::Sub as u8 }>(j, xy, ws, o),
                Gather::Add => gather8::<{ Gather::Add as u8 }>(j, xy, ws, o),
            }
            j += 8;
        }
        if j < w {
            portable::gather_cols(x, y, ws, j, out, w, mode);
        }
    }

    /// gx, gy, magnitude of columns j .. j + 8, rows r0..r1 into `o` (row r at
    /// `(r − r0)·w`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward8<const L: bool, const R: bool>(
        j: usize,
        x: Rows,
        (r0, r1): (usize, usize),
        o: [*mut f32; 3],
    ) {
        let (mut a, mut b) = (
            hd8::<L, R>(x.row(r0.wrapping_sub(1)), j),
            hd8::<L, R>(x.row(r0), j),
        );
        for r in r0..r1 {
            let c = hd8::<L, R>(x.row(r + 1), j);
            let (gx, gy) = sobel8(a, b, c);
            let k = (r - r0) * x.w + j;
            _mm256_storeu_ps(o[0].add(k), gx);
            _mm256_storeu_ps(o[1].add(k), gy);
            _mm256_storeu_ps(o[2].add(k), mag8(gx, gy));
            (a, b) = (b, c);
        }
    }

    /// [`portable::forward_block`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_block(x: Plane, rows: (usize, usize), mut out: [&mut [f32]; 3]) {
        let xr = Rows::new(x);
        assert!(out.iter().all(|o| o.len() >= (rows.1 - rows.0) * x.w));
        let op = out.each_mut().map(|o| o.as_mut_ptr());
        let j = vectors!(x.w, forward8[](xr, rows, op));
        if j < x.w {
            portable::forward_cols(x, rows, j, out);
        }
    }

    /// Sobel backward's effective gradients of columns j .. j + 8, rows r0..r1 into
    /// the buffer rows `e` from `g` = dm, dgx, dgy.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn bwd_eff8<const L: bool, const R: bool>(
        j: usize,
        x: Rows,
        g: [Rows; 3],
        (r0, r1): (usize, usize),
        [ex, ey]: [*mut f32; 2],
        ws: usize,
    ) {
        let (mut a, mut b) = (
            hd8::<L, R>(x.row(r0.wrapping_sub(1)), j),
            hd8::<L, R>(x.row(r0), j),
        );
        for r in r0..r1 {
            let c = hd8::<L, R>(x.row(r + 1), j);
            let (gx, gy) = sobel8(a, b, c);
            let [dm, gxin, gyin] = g.map(|g| _mm256_loadu_ps(g.row(r).add(j)));
            let q = _mm256_div_ps(dm, mag8(gx, gy));
            let k = (r - r0) * ws + PAD + j;
            _mm256_storeu_ps(ex.add(k), _mm256_fmadd_ps(q, gx, gxin));
            _mm256_storeu_ps(ey.add(k), _mm256_fmadd_ps(q, gy, gyin));
            (a, b) = (b, c);
        }
    }

    /// [`portable::bwd_eff_block`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bwd_eff_block(
        x: Plane,
        g: [Plane; 3],
        rows: (usize, usize),
        mut e: [&mut [f32]; 2],
        ws: usize,
    ) {
        let (xr, gr) = (Rows::new(x), g.map(Rows::new));
        let n = rows.1 - rows.0;
        assert!(g.iter().all(|g| g.w == x.w) && ws >= x.w + 2 * PAD);
        assert!(e
            .iter()
            .all(|e| n == 0 || e.len() >= (n - 1) * ws + PAD + x.w));
        let ep = e.each_mut().map(|e| e.as_mut_ptr());
        let j = vectors!(x.w, bwd_eff8[](xr, gr, rows, ep, ws));
        if j < x.w {
            portable::bwd_eff_cols(x, g, rows, j, e, ws);
        }
    }
}

// ------------------------------------------------------------------ bands

/// Buffers of one task: the effective-gradient buffer (backward kernels) and a row of
/// W zeros standing for the rows outside the plane.
struct Scratch {
    e: EffBuf,
    zeros: Vec<f32>,
}

impl Scratch {
    /// For width `w` with `arrays` effective-gradient arrays.
    fn new(w: usize, arrays: usize) -> Self {
        Scratch {
            e: EffBuf::new(w, arrays),
            zeros: vec![0.0; w],
        }
    }
}

/// Blocks of at most `block` rows of `h0..h1`.
fn blocks(h0: usize, h1: usize, block: usize) -> impl Iterator<Item = (usize, usize)> {
    (h0..h1)
        .step_by(block)
        .map(move |b0| (b0, (b0 + block).min(h1)))
}

/// Sobel forward of rows `h0..h1` of plane `x` into those rows of `gx`, `gy`, `m`.
fn forward_band(avx2: bool, x: Plane, (h0, h1): (usize, usize), [gx, gy, m]: [&mut [f32]; 3]) {
    let w = x.w;
    for (b0, b1) in blocks(h0, h1, FWD_BLOCK) {
        let o = (b0 - h0) * w..(b1 - h0) * w;
        let out = [&mut gx[o.clone()], &mut gy[o.clone()], &mut m[o]];
        rows!(avx2, forward_block(x, (b0, b1), out));
    }
}

/// Σ of the loss terms of rows `h0..h1` of planes `p`, `t` (8 f64 lanes by column,
/// added in a fixed order).
fn loss_band(avx2: bool, p: Plane, t: Plane, form: SobelLossForm, (h0, h1): (usize, usize)) -> f64 {
    let mut acc = [0f64; LANES];
    for rows in blocks(h0, h1, FWD_BLOCK) {
        rows!(avx2, loss_block(form, p, t, rows, &mut acc));
    }
    reduce8(acc)
}

/// Runs a backward band `h0..h1` of a plane of `ht` rows block by block through the
/// buffer `e`, whose row i holds the effective gradients of plane row b0 − 1 + i for a
/// block starting at b0: `eff(e, rows, i)` fills buffer rows from `i` with those of
/// the plane rows `rows` (all inside the plane), rows outside the plane are zeroed
/// here, and `gather(e, b0, b1)` then writes output rows `b0..b1`.
fn backward_blocks(
    e: &mut EffBuf,
    (h0, h1, ht): (usize, usize, usize),
    mut eff: impl FnMut(&mut EffBuf, (usize, usize), usize),
    mut gather: impl FnMut(&EffBuf, usize, usize),
) {
    for (b0, b1) in blocks(h0, h1, BWD_BLOCK) {
        // Buffer rows 0 and 1 (plane rows b0 − 1, b0) carry over from the previous
        // block, except in the band's first.
        let first = if b0 == h0 { 0 } else { 2 };
        // Plane rows b0 − 1 + first ..= b1, those inside the plane, at buffer rows
        // from i0.
        let (lo, i0) = match (b0 + first).checked_sub(1) {
            Some(lo) => (lo, first),
            None => {
                e.zero_row(0);
                (0, 1)
            }
        };
        let hi = (b1 + 1).min(ht);
        eff(e, (lo, hi), i0);
        if hi == b1 {
            e.zero_row(b1 + 1 - b0);
        }
        gather(e, b0, b1);
        if b1 < h1 {
            e.carry(b1 - b0);
        }
    }
}

/// `Backend::sobel_backward` for rows `h0..h1` of plane `x` into those rows of `out`;
/// `grads` = dgx, dgy, dmagnitude of the plane.
fn backward_band(
    avx2: bool,
    x: Plane,
    grads: [Option<&[f32]>; 3],
    (h0, h1): (usize, usize),
    out: &mut [f32],
    e: &mut EffBuf,
) {
    let (w, zeros) = (x.w, x.zeros);
    let [gxin, gyin] =
        [grads[0], grads[1]].map(|g| g.map_or(Plane::zero(w, zeros), |g| Plane::new(g, w, zeros)));
    let ws = e.ws;
    let eff = |e: &mut EffBuf, (lo, hi): (usize, usize), i0: usize| {
        let [ex, ey, ..] = e.rows_from(i0);
        match grads[2] {
            Some(dm) => {
                let g = [Plane::new(dm, w, zeros), gxin, gyin];
                rows!(avx2, bwd_eff_block(x, g, (lo, hi), [ex, ey], ws));
            }
            None => {
                for (i, r) in (lo..hi).enumerate() {
                    let k = i * ws + PAD;
                    ex[k..k + w].copy_from_slice(gxin.row(r));
                    ey[k..k + w].copy_from_slice(gyin.row(r));
                }
            }
        }
    };
    let gather = |e: &EffBuf, b0: usize, b1: usize| {
        let o = &mut out[(b0 - h0) * w..(b1 - h0) * w];
        rows!(
            avx2,
            gather_block(e.array(0), e.array(1), ws, o, w, Gather::Set)
        );
    };
    backward_blocks(e, (h0, h1, x.ht), eff, gather);
}

/// `Backend::sobel_loss_backward` for rows `h0..h1` of planes `p`, `t`, accumulated
/// into those rows of `dp`, `dt`; `c` = 2·scale / N·C·H·W.
#[allow(clippy::too_many_arguments)]
fn loss_backward_band(
    avx2: bool,
    [p, t]: [Plane; 2],
    form: SobelLossForm,
    c: f32,
    (h0, h1): (usize, usize),
    [mut dp, mut dt]: [Option<&mut [f32]>; 2],
    e: &mut EffBuf,
) {
    let w = p.w;
    // Magnitude form: one pair (Dx, Dy) per input, target's only when asked for.
    // Components form: one pair for pred, whose negation is target's.
    let mode = match form {
        SobelLossForm::Components => EffMode::Components,
        SobelLossForm::Magnitude if dt.is_some() => EffMode::MagBoth,
        SobelLossForm::Magnitude => EffMode::MagPred,
    };
    let ws = e.ws;
    let eff = |e: &mut EffBuf, rows: (usize, usize), i0: usize| {
        rows!(avx2, eff_block(mode, p, t, rows, c, e.rows_from(i0), ws));
    };
    let gather = |e: &EffBuf, b0: usize, b1: usize| {
        let o = (b0 - h0) * w..(b1 - h0) * w;
        if let Some(dp) = dp.as_deref_mut() {
            let (x, y) = (e.array(0), e.array(1));
            rows!(
                avx2,
                gather_block(x, y, ws, &mut dp[o.clone()], w, Gather::Sub)
            );
        }
        if let Some(dt) = dt.as_deref_mut() {
            let dt = &mut dt[o];
            match form {
                SobelLossForm::Components => {
                    let (x, y) = (e.array(0), e.array(1));
                    rows!(avx2, gather_block(x, y, ws, dt, w, Gather::Add))
                }
                SobelLossForm::Magnitude => {
                    let (x, y) = (e.array(2), e.array(3));
                    rows!(avx2, gather_block(x, y, ws, dt, w, Gather::Sub))
                }
            }
        }
    };
    backward_blocks(e, (h0, h1, p.ht), eff, gather);
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
    let (w, hw) = (s.width, s.height * s.width);
    let init = || vec![0f32; w];
    let task = |z: &mut Vec<f32>, p: usize, h0: usize, h1: usize, o: [Option<&mut [f32]>; 3]| {
        let [Some(gx), Some(gy), Some(m)] = o else {
            return;
        };
        let x = Plane::new(&x[p * hw..(p + 1) * hw], w, z);
        forward_band(avx2, x, (h0, h1), [gx, gy, m])
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
    let (w, hw) = (s.width, s.height * s.width);
    let init = || Scratch::new(w, 2);
    let task = |sc: &mut Scratch, p: usize, h0: usize, h1: usize, o: [Option<&mut [f32]>; 1]| {
        let [Some(out)] = o else { return };
        let sl = p * hw..(p + 1) * hw;
        let g = grads.map(|g| g.map(|g| &g[sl.clone()]));
        let Scratch { e, zeros } = sc;
        backward_band(avx2, Plane::new(&x[sl], w, zeros), g, (h0, h1), out, e)
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
    let (w, hw) = (s.width, s.height * s.width);
    if hw == 0 {
        return 0.0;
    }
    let per_plane = s.height.div_ceil(band);
    let tasks = s.batch * s.channels * per_plane;
    let init = || vec![0f32; w];
    let task = |z: &mut Vec<f32>, t: usize| -> f64 {
        let (p, h0) = (t / per_plane, (t % per_plane) * band);
        let h1 = (h0 + band).min(s.height);
        let sl = p * hw..(p + 1) * hw;
        let (xp, xt) = (Plane::new(&pr[sl.clone()], w, z), Plane::new(&tg[sl], w, z));
        loss_band(avx2, xp, xt, form, (h0, h1))
    };
    let sums: Vec<f64> = if ex.par {
        (0..tasks).into_par_iter().map_init(init, task).collect()
    } else {
        let mut z = init();
        (0..tasks).map(|t| task(&mut z, t)).collect()
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
    let (w, hw) = (s.width, s.height * s.width);
    let arrays = match form {
        SobelLossForm::Magnitude if outs[1].is_some() => 4,
        _ => 2,
    };
    let init = || Scratch::new(w, arrays);
    let task = |sc: &mut Scratch, p: usize, h0: usize, h1: usize, o: [Option<&mut [f32]>; 2]| {
        let sl = p * hw..(p + 1) * hw;
        let Scratch { e, zeros } = sc;
        let x = [&pr[sl.clone()], &tg[sl]].map(|x| Plane::new(x, w, zeros));
        loss_backward_band(avx2, x, form, c, (h0, h1), o, e)
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

    /// Shapes with a zero dimension: nothing to compute and no panic (the loss kernels
    /// reject them with a typed error, the mean being undefined).
    #[test]
    fn empty_shapes() {
        use brain_core::Backend;
        let be = CpuBackend::new();
        for (batch, channels, height, width) in [(1, 1, 0, 5), (1, 1, 5, 0), (0, 1, 4, 4)] {
            let s = ImageShape {
                batch,
                channels,
                height,
                width,
            };
            let n = s.len();
            let x = be.alloc(n).unwrap();
            let [mut a, mut b, mut c] = [0; 3].map(|_| be.alloc(n).unwrap());
            be.sobel_forward(&x, &s, &mut a, &mut b, &mut c).unwrap();
            be.sobel_backward(&x, &s, Some(&a), None, Some(&c), &mut b)
                .unwrap();
            for form in FORMS {
                let mut loss = be.alloc(1).unwrap();
                let _ = be.sobel_loss_forward(&x, &x, &s, form, &mut loss);
                let _ = be.sobel_loss_backward(&x, &x, &s, form, 1.0, Some(&mut a), Some(&mut b));
            }
        }
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
                        // Bands regroup the f32 partial sums (at most FWD_BLOCK
                        // non-negative terms per lane before f64): a missing or repeated
                        // row would move the sum by ~1/height, far beyond this.
                        let lf = loss_forward_impl(ex, true, band, &xf, &t, &s, form);
                        let lw = loss_forward_impl(ex, true, height, &xf, &t, &s, form);
                        let tol = 4.0 * FWD_BLOCK as f64 * f32::EPSILON as f64 * lw.abs();
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
