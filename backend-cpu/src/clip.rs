//! The two passes of the composite contrastive loss over its raw `[n, d]` inputs
//! (rows of 257·768 values, n a batch of 32):
//!
//! - forward, [`clip_grams_forward`]: G_pt = P·Tᵀ, (SoftCLIP) G_tt = T·Tᵀ and the
//!   squared row norms, k split across the pool. Each task walks its depth range in
//!   blocks sized for L2; per block the squares come first (that sweep also pulls the
//!   block in), then 4×3 dot-product tiles (G_tt: upper triangle only);
//! - backward, [`clip_inputs_backward`]: one sweep over column panels of 24 that
//!   reads P, T, dP, dT once each: dP += W·T + diag(d_p)·P and dT += Wᵀ·P + W_tt·T
//!   (InfoNCE: W_tt diagonal), 4×24 tiles of the output in registers with the n×n
//!   coefficients broadcast. The 4n rows are `d` apart, a pattern the hardware
//!   prefetchers miss, so the next panel is prefetched by hand.
//!
//! The AVX2 + FMA kernels serve n ≤ [`FAST_MAX_N`] (coefficients and tiles sized for
//! a batch); otherwise, or without AVX2, the portable path composes the row
//! reductions and GEMMs. Sums of products are f32 FMA lanes (the GEMMs' accuracy),
//! the squared norms f64 across blocks.

// Kernel signatures are the Backend trait's.
#![allow(clippy::too_many_arguments)]

use crate::gemm::{gemm, Mat};
use crate::par::{sum_sq_f64, Exec, SEQ_MEM};
use crate::{CpuBackend, CpuBuffer};
use brain_core::{check, ContrastiveLoss, Result};

/// Largest batch the AVX2 kernels take.
pub const FAST_MAX_N: usize = 64;

/// Whether the AVX2 kernels run for this shape on this CPU.
fn fast(n: usize, d: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        n <= FAST_MAX_N && d >= 8 && crate::simd::has_avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, d);
        false
    }
}

/// The raw-pointer loops need every slice to hold at least `want` elements; the
/// typed checks already ensure it, this keeps the kernels safe if called otherwise.
fn need(op: &'static str, arg: &'static str, got: usize, want: usize) -> Result<()> {
    if got >= want {
        Ok(())
    } else {
        check::len(op, arg, got, want)
    }
}

/// `Backend::clip_grams_forward` on the CPU.
pub(crate) fn clip_grams_forward(
    be: &CpuBackend,
    kind: ContrastiveLoss,
    preds: &CpuBuffer,
    targets: &CpuBuffer,
    n: usize,
    d: usize,
    p_sq: &mut CpuBuffer,
    t_sq: &mut CpuBuffer,
    g_pt: &mut CpuBuffer,
    g_tt: Option<&mut CpuBuffer>,
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
        g_tt.as_deref().map(CpuBuffer::len),
    )?;
    let (p, t) = (preds.as_slice(), targets.as_slice());
    let (ps, ts, gp) = (
        p_sq.as_mut_slice(),
        t_sq.as_mut_slice(),
        g_pt.as_mut_slice(),
    );
    let gt = g_tt.map(CpuBuffer::as_mut_slice);
    be.exec(2 * n * n * d, SEQ_MEM, |ex| {
        grams(ex, fast(n, d), p, t, n, d, ps, ts, gp, gt)
    })
}

/// The forward pass, fast or portable.
fn grams(
    ex: Exec,
    fast: bool,
    p: &[f32],
    t: &[f32],
    n: usize,
    d: usize,
    p_sq: &mut [f32],
    t_sq: &mut [f32],
    g_pt: &mut [f32],
    g_tt: Option<&mut [f32]>,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if fast {
        return x86::grams(ex, p, t, n, d, p_sq, t_sq, g_pt, g_tt);
    }
    let _ = fast;
    let sq = |x: &[f32], out: &mut [f32]| {
        for (o, r) in out.iter_mut().zip(x.chunks_exact(d)) {
            *o = sum_sq_f64(r) as f32;
        }
    };
    sq(p, p_sq);
    sq(t, t_sq);
    let tr = Mat::transposed(t, d);
    gemm(ex, n, n, d, 1.0, Mat::rows(p, d), tr, 0.0, g_pt);
    if let Some(g) = g_tt {
        gemm(ex, n, n, d, 1.0, Mat::rows(t, d), tr, 0.0, g);
    }
    Ok(())
}

/// `Backend::clip_inputs_backward` on the CPU.
pub(crate) fn clip_inputs_backward(
    be: &CpuBackend,
    kind: ContrastiveLoss,
    w_pt: &CpuBuffer,
    d_p: &CpuBuffer,
    w_tt: &CpuBuffer,
    preds: &CpuBuffer,
    targets: &CpuBuffer,
    n: usize,
    d: usize,
    dpreds: Option<&mut CpuBuffer>,
    dtargets: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::clip_inputs_backward(
        w_pt.len(),
        d_p.len(),
        w_tt.len(),
        preds.len(),
        targets.len(),
        n,
        d,
        dpreds.as_deref().map(CpuBuffer::len),
        dtargets.as_deref().map(CpuBuffer::len),
    )?;
    if dpreds.is_none() && dtargets.is_none() {
        return Ok(());
    }
    let c = Coefs::new(kind, w_pt.as_slice(), d_p.as_slice(), w_tt.as_slice(), n);
    let (p, t) = (preds.as_slice(), targets.as_slice());
    let dp = dpreds.map(CpuBuffer::as_mut_slice);
    let dt = dtargets.map(CpuBuffer::as_mut_slice);
    be.exec(4 * n * n * d, SEQ_MEM, |ex| {
        apply(ex, fast(n, d), &c, p, t, n, d, dp, dt)
    })
}

/// The backward coefficients, unpacked: W = w_pt, Wᵀ, the diagonal of d_p, and W_tt
/// (full for SoftCLIP, else its diagonal).
struct Coefs {
    soft: bool,
    w: Vec<f32>,
    wt: Vec<f32>,
    dp: Vec<f32>,
    wtt: Vec<f32>,
}

impl Coefs {
    fn new(kind: ContrastiveLoss, w_pt: &[f32], d_p: &[f32], w_tt: &[f32], n: usize) -> Self {
        let soft = kind == ContrastiveLoss::SoftClip;
        let diag = |m: &[f32]| (0..n).map(|i| m[i * n + i]).collect::<Vec<f32>>();
        let mut wt = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                wt[j * n + i] = w_pt[i * n + j];
            }
        }
        Coefs {
            soft,
            w: w_pt[..n * n].to_vec(),
            wt,
            dp: diag(d_p),
            wtt: if soft {
                w_tt[..n * n].to_vec()
            } else {
                diag(w_tt)
            },
        }
    }
}

/// The backward pass, fast or portable.
fn apply(
    ex: Exec,
    fast: bool,
    c: &Coefs,
    p: &[f32],
    t: &[f32],
    n: usize,
    d: usize,
    dp: Option<&mut [f32]>,
    dt: Option<&mut [f32]>,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if fast {
        return x86::apply(ex, c, p, t, n, d, dp, dt);
    }
    let _ = fast;
    // Row scaling by a diagonal: out_i += diag_i·x_i.
    let scale_rows = |out: &mut [f32], diag: &[f32], x: &[f32]| {
        for ((o, &s), xr) in out.chunks_exact_mut(d).zip(diag).zip(x.chunks_exact(d)) {
            for (o, &v) in o.iter_mut().zip(xr) {
                *o += s * v;
            }
        }
    };
    let (pr, tr) = (Mat::rows(p, d), Mat::rows(t, d));
    if let Some(dp) = dp {
        gemm(ex, n, d, n, 1.0, Mat::rows(&c.w, n), tr, 1.0, dp);
        scale_rows(dp, &c.dp, p);
    }
    if let Some(dt) = dt {
        gemm(ex, n, d, n, 1.0, Mat::rows(&c.wt, n), pr, 1.0, dt);
        if c.soft {
            gemm(ex, n, d, n, 1.0, Mat::rows(&c.wtt, n), tr, 1.0, dt);
        } else {
            scale_rows(dt, &c.wtt, t);
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{need, Coefs};
    use crate::par::Exec;
    use brain_core::Result;
    use core::arch::x86_64::*;
    use rayon::prelude::*;

    /// A raw pointer shared by tasks that touch disjoint parts of its buffer.
    #[derive(Clone, Copy)]
    struct Ptr<T>(T);
    // SAFETY: tasks write disjoint column ranges / read only (see the users).
    unsafe impl<T> Send for Ptr<T> {}
    unsafe impl<T> Sync for Ptr<T> {}

    /// Mask with the first `r` lanes on (r ≤ 8).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn mask(r: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(r as i32), idx)
    }

    /// Columns of one backward panel (two vectors).
    const PANEL: usize = 16;

    /// Output rows per tile (12 accumulators, 2 panel vectors, 1 broadcast).
    const MR: usize = 6;

    /// acc += A·X over k: A an `R × k` block of coefficients (row stride `lda`), X a
    /// packed `k × PANEL` panel. A macro, not a function: the accumulators must stay
    /// in registers (through a `&mut` array LLVM kept them on the stack).
    macro_rules! madd {
        ($acc:ident, $a:expr, $lda:expr, $x:expr, $k:expr) => {{
            let (a, lda, x): (*const f32, usize, *const f32) = ($a, $lda, $x);
            for l in 0..$k {
                let row = x.add(l * PANEL);
                let b0 = _mm256_loadu_ps(row);
                let b1 = _mm256_loadu_ps(row.add(8));
                for (r, accr) in $acc.iter_mut().enumerate() {
                    let s = _mm256_broadcast_ss(&*a.add(r * lda + l));
                    accr[0] = _mm256_fmadd_ps(s, b0, accr[0]);
                    accr[1] = _mm256_fmadd_ps(s, b1, accr[1]);
                }
            }
        }};
    }

    /// One output tile: rows [i, i + R) of `out` (row stride `ld`, at the panel's
    /// column) += A·X (+ A2·X2) (+ diag·rows [i, i + R) of Y), X, X2, Y packed
    /// panels; `a2` / `diag` null: no such term; `masks`: a partial panel.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(
        i: usize,
        n: usize,
        a: *const f32,
        x: *const f32,
        a2: *const f32,
        x2: *const f32,
        diag: *const f32,
        y: *const f32,
        out: *mut f32,
        ld: usize,
        masks: Option<&[__m256i; 2]>,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        madd!(acc, a.add(i * n), n, x, n);
        if !a2.is_null() {
            madd!(acc, a2.add(i * n), n, x2, n);
        }
        for (r, accr) in acc.iter_mut().enumerate() {
            if !diag.is_null() {
                let s = _mm256_broadcast_ss(&*diag.add(i + r));
                let yr = y.add((i + r) * PANEL);
                for (v, a) in accr.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(s, _mm256_loadu_ps(yr.add(8 * v)), *a);
                }
            }
            let o = out.add((i + r) * ld);
            for (v, a) in accr.iter().enumerate() {
                let p = o.add(8 * v);
                match masks {
                    None => _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), *a)),
                    Some(m) => {
                        let sum = _mm256_add_ps(_mm256_maskload_ps(p, m[v]), *a);
                        _mm256_maskstore_ps(p, m[v], sum)
                    }
                }
            }
        }
    }

    /// All row tiles of one output for one panel.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel(
        n: usize,
        a: *const f32,
        x: *const f32,
        a2: *const f32,
        x2: *const f32,
        diag: *const f32,
        y: *const f32,
        out: *mut f32,
        ld: usize,
        masks: Option<&[__m256i; 2]>,
        pf: &mut Prefetch,
    ) {
        // Tiles of at most MR rows, as even as possible (32 = 6+6+5+5+5+5): a short
        // tile has too few independent FMA chains.
        let tiles = n.div_ceil(MR);
        let mut i = 0;
        for q in 0..tiles {
            let rows = (n - i) / (tiles - q) + usize::from((n - i) % (tiles - q) != 0);
            pf.step();
            match rows {
                1 => tile::<1>(i, n, a, x, a2, x2, diag, y, out, ld, masks),
                2 => tile::<2>(i, n, a, x, a2, x2, diag, y, out, ld, masks),
                3 => tile::<3>(i, n, a, x, a2, x2, diag, y, out, ld, masks),
                4 => tile::<4>(i, n, a, x, a2, x2, diag, y, out, ld, masks),
                5 => tile::<5>(i, n, a, x, a2, x2, diag, y, out, ld, masks),
                _ => tile::<MR>(i, n, a, x, a2, x2, diag, y, out, ld, masks),
            }
            i += rows;
        }
    }

    /// Software prefetch of one line per row of up to four `n × d` matrices at
    /// column `at` (none when `usize::MAX`), `per_tile` lines per call.
    struct Prefetch {
        bases: [*const f32; 4],
        n: usize,
        d: usize,
        at: usize,
        next: usize,
        per_tile: usize,
    }

    impl Prefetch {
        #[inline(always)]
        fn step(&mut self) {
            if self.at == usize::MAX {
                return;
            }
            let end = (self.next + self.per_tile).min(4 * self.n);
            while self.next < end {
                let (m, r) = (self.next / self.n, self.next % self.n);
                let base = self.bases[m];
                if !base.is_null() {
                    let q = base.wrapping_add(r * self.d + self.at) as *const i8;
                    // SAFETY: a prefetch does not fault; the address is in bounds anyway.
                    unsafe { _mm_prefetch::<_MM_HINT_T1>(q) }
                }
                self.next += 1;
            }
        }
    }

    /// Copy columns [j, j + w) of the n rows of `src` (stride `ld`) into a dense
    /// `n × PANEL` panel, zeros past w.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack(
        dst: *mut f32,
        src: *const f32,
        n: usize,
        ld: usize,
        masks: Option<&[__m256i; 2]>,
    ) {
        for r in 0..n {
            let (s, d) = (src.add(r * ld), dst.add(r * PANEL));
            for v in 0..2 {
                let x = match masks {
                    None => _mm256_loadu_ps(s.add(8 * v)),
                    Some(m) => _mm256_maskload_ps(s.add(8 * v), m[v]),
                };
                _mm256_storeu_ps(d.add(8 * v), x);
            }
        }
    }

    /// Panels ahead that are prefetched (into L2; 2 and 4 measured alike, 1 slower).
    const PF_PANELS: usize = 2;

    /// Columns [c0, c1) of the backward pass. The n rows of an input are `d` apart,
    /// which maps them onto a few L1 sets (e.g. d·4 bytes ≡ 3072 mod 4096 puts 32
    /// rows in 4 sets): each panel of P and T is therefore packed once and the
    /// tiles read it from the packed copy.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn apply_cols(
        c: &Coefs,
        p: *const f32,
        t: *const f32,
        n: usize,
        d: usize,
        dp: *mut f32,
        dt: *mut f32,
        c0: usize,
        c1: usize,
    ) {
        let null = core::ptr::null::<f32>();
        let mut pk_p = vec![0f32; n * PANEL];
        let mut pk_t = vec![0f32; n * PANEL];
        let (pp, pt) = (pk_p.as_mut_ptr(), pk_t.as_mut_ptr());
        // Panels start on cache lines of the (first) output, so each line of it is
        // read and written once, by one panel, with no line-splitting vectors.
        let out = if dp.is_null() { dt } else { dp };
        let mut j = c0;
        while j < c1 {
            let mis = ((out as usize >> 2) + j) % PANEL;
            let w = (c1 - j).min(PANEL - mis);
            let masks;
            let mk = if w == PANEL {
                None
            } else {
                masks = [mask(w.min(8)), mask(w.saturating_sub(8))];
                Some(&masks)
            };
            // The line at a later panel of every row read or written, spread over
            // the panel's tiles (a burst of 4n misses stalls on the miss buffers).
            let ahead = j + PF_PANELS * PANEL;
            let mut pf = Prefetch {
                bases: [p, t, dp as *const f32, dt as *const f32],
                n,
                d,
                at: if ahead < c1 { ahead } else { usize::MAX },
                next: 0,
                per_tile: (4 * n).div_ceil(2 * n.div_ceil(MR)),
            };
            pack(pp, p.add(j), n, d, mk);
            pack(pt, t.add(j), n, d, mk);
            if !dp.is_null() {
                let wp = c.w.as_ptr();
                panel(
                    n,
                    wp,
                    pt,
                    null,
                    null,
                    c.dp.as_ptr(),
                    pp,
                    dp.add(j),
                    d,
                    mk,
                    &mut pf,
                );
            }
            if !dt.is_null() {
                let (wt, wtt) = (c.wt.as_ptr(), c.wtt.as_ptr());
                if c.soft {
                    panel(n, wt, pp, wtt, pt, null, null, dt.add(j), d, mk, &mut pf);
                } else {
                    panel(n, wt, pp, null, null, wtt, pt, dt.add(j), d, mk, &mut pf);
                }
            }
            j += w;
        }
    }

    /// The backward pass (see the module docs); the caller checked AVX2 + FMA.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        ex: Exec,
        c: &Coefs,
        p: &[f32],
        t: &[f32],
        n: usize,
        d: usize,
        dp: Option<&mut [f32]>,
        dt: Option<&mut [f32]>,
    ) -> Result<()> {
        const OP: &str = "clip_inputs_backward";
        need(OP, "preds", p.len(), n * d)?;
        need(OP, "targets", t.len(), n * d)?;
        if let Some(s) = dp.as_deref() {
            need(OP, "dpreds", s.len(), n * d)?;
        }
        if let Some(s) = dt.as_deref() {
            need(OP, "dtargets", s.len(), n * d)?;
        }
        let dp = Ptr(dp.map_or(core::ptr::null_mut(), |s| s.as_mut_ptr()));
        let dt = Ptr(dt.map_or(core::ptr::null_mut(), |s| s.as_mut_ptr()));
        let (pp, tp) = (Ptr(p.as_ptr()), Ptr(t.as_ptr()));
        let run = |c0: usize, c1: usize| {
            let (dp, dt, pp, tp) = (dp, dt, pp, tp);
            // SAFETY: AVX2 + FMA checked by the caller; every row pointer formed is
            // r·d + j with r < n, j < d (loads masked past c1 ≤ d), inside buffers of
            // n·d; tasks write disjoint column ranges of dP and dT.
            unsafe { apply_cols(c, pp.0, tp.0, n, d, dp.0, dt.0, c0, c1) }
        };
        let per = ex.chunk(d, 32 * PANEL, PANEL);
        if ex.par && d > per {
            (0..d.div_ceil(per))
                .into_par_iter()
                .for_each(|i| run(i * per, ((i + 1) * per).min(d)));
        } else {
            run(0, d);
        }
        Ok(())
    }

    // ------------------------------------------------------------ forward

    /// Horizontal sum of 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Σ x² over `len` floats at `x`, f32 FMA lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_sq(x: *const f32, len: usize) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut l = 0;
        while l + 32 <= len {
            for (q, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_ps(x.add(l + 8 * q));
                *a = _mm256_fmadd_ps(v, v, *a);
            }
            l += 32;
        }
        while l + 8 <= len {
            let v = _mm256_loadu_ps(x.add(l));
            acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
            l += 8;
        }
        let mut s = hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        for l in l..len {
            let v = *x.add(l);
            s = v.mul_add(v, s);
        }
        s
    }

    /// Dot products of rows `a[0..MR]` with rows `b[0..NR]` over `len` floats.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dots<const MR: usize, const NR: usize>(
        a: [*const f32; 4],
        b: [*const f32; 3],
        len: usize,
    ) -> [[f32; NR]; MR] {
        let mut acc = [[_mm256_setzero_ps(); NR]; MR];
        let l8 = len / 8 * 8;
        let mut l = 0;
        while l < l8 {
            let mut bv = [_mm256_setzero_ps(); NR];
            for (c, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(b[c].add(l));
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm256_loadu_ps(a[r].add(l));
                for c in 0..NR {
                    accr[c] = _mm256_fmadd_ps(av, bv[c], accr[c]);
                }
            }
            l += 8;
        }
        let mut out = [[0f32; NR]; MR];
        for r in 0..MR {
            for c in 0..NR {
                let mut s = hsum(acc[r][c]);
                for q in l8..len {
                    s = (*a[r].add(q)).mul_add(*b[c].add(q), s);
                }
                out[r][c] = s;
            }
        }
        out
    }

    /// One task's partial sums over depth [k0, k1): `part` holds the na×n products
    /// (A rows = P, then T for SoftCLIP; B rows = T), then ‖P_i‖², then ‖T_i‖².
    #[target_feature(enable = "avx2,fma")]
    unsafe fn grams_range(
        p: *const f32,
        t: *const f32,
        n: usize,
        d: usize,
        soft: bool,
        k0: usize,
        k1: usize,
        part: &mut [f64],
    ) {
        let na = if soft { 2 * n } else { n };
        let arow = |i: usize| {
            if i < n {
                p.add(i * d)
            } else {
                t.add((i - n) * d)
            }
        };
        // Depth per block: the block's rows (na + n) fit in about 256 KiB.
        let kc = ((1usize << 16) / (na + n)).max(256) / 8 * 8;
        let sq_at = na * n;
        let mut l0 = k0;
        while l0 < k1 {
            let len = (k1 - l0).min(kc);
            for i in 0..n {
                part[sq_at + i] += sum_sq(p.add(i * d + l0), len) as f64;
                part[sq_at + n + i] += sum_sq(t.add(i * d + l0), len) as f64;
            }
            let mut i0 = 0;
            while i0 < na {
                let mr = (na - i0).min(4);
                let a: [*const f32; 4] = core::array::from_fn(|r| arow(i0 + r.min(mr - 1)).add(l0));
                // G_tt rows (i ≥ n) need columns from their diagonal rightwards.
                let jstart = if i0 >= n { (i0 - n) / 3 * 3 } else { 0 };
                let mut j0 = jstart;
                while j0 < n {
                    let nr = (n - j0).min(3);
                    let b: [*const f32; 3] =
                        core::array::from_fn(|c| t.add((j0 + c.min(nr - 1)) * d + l0));
                    let mut put = |r: usize, c: usize, v: f32| {
                        part[(i0 + r) * n + j0 + c] += v as f64;
                    };
                    macro_rules! go {
                        ($mr:literal, $nr:literal) => {{
                            let o = dots::<$mr, $nr>(a, b, len);
                            for (r, row) in o.iter().enumerate() {
                                for (c, &v) in row.iter().enumerate() {
                                    put(r, c, v);
                                }
                            }
                        }};
                    }
                    match (mr, nr) {
                        (4, 3) => go!(4, 3),
                        (4, 2) => go!(4, 2),
                        (4, 1) => go!(4, 1),
                        (3, 3) => go!(3, 3),
                        (3, 2) => go!(3, 2),
                        (3, 1) => go!(3, 1),
                        (2, 3) => go!(2, 3),
                        (2, 2) => go!(2, 2),
                        (2, 1) => go!(2, 1),
                        (1, 3) => go!(1, 3),
                        (1, 2) => go!(1, 2),
                        _ => go!(1, 1),
                    }
                    j0 += 3;
                }
                i0 += 4;
            }
            l0 += len;
        }
    }

    /// The forward pass (see the module docs); the caller checked AVX2 + FMA.
    #[allow(clippy::too_many_arguments)]
    pub fn grams(
        ex: Exec,
        p: &[f32],
        t: &[f32],
        n: usize,
        d: usize,
        p_sq: &mut [f32],
        t_sq: &mut [f32],
        g_pt: &mut [f32],
        g_tt: Option<&mut [f32]>,
    ) -> Result<()> {
        const OP: &str = "clip_grams_forward";
        need(OP, "preds", p.len(), n * d)?;
        need(OP, "targets", t.len(), n * d)?;
        let soft = g_tt.is_some();
        let na = if soft { 2 * n } else { n };
        let width = na * n + 2 * n;
        // About two tasks per thread, each at least 4096 deep.
        let tasks = if ex.par {
            (2 * ex.threads).min(d.div_ceil(4096)).max(1)
        } else {
            1
        };
        let depth = d.div_ceil(tasks).div_ceil(8) * 8;
        let (pp, tp) = (Ptr(p.as_ptr()), Ptr(t.as_ptr()));
        let one = |task: usize, part: &mut [f64]| {
            let (pp, tp) = (pp, tp);
            let k0 = (task * depth).min(d);
            let k1 = (k0 + depth).min(d);
            // SAFETY: AVX2 + FMA checked by the caller; rows r < n of P and T are read
            // at columns [k0, k1) ⊂ [0, d), inside buffers of n·d.
            unsafe { grams_range(pp.0, tp.0, n, d, soft, k0, k1, part) }
        };
        let mut parts = vec![0f64; tasks * width];
        if ex.par && tasks > 1 {
            parts
                .par_chunks_mut(width)
                .enumerate()
                .for_each(|(i, part)| one(i, part));
        } else {
            one(0, &mut parts);
        }
        let total = |x: usize| -> f32 { parts.iter().skip(x).step_by(width).sum::<f64>() as f32 };
        for i in 0..n {
            for j in 0..n {
                g_pt[i * n + j] = total(i * n + j);
            }
            p_sq[i] = total(na * n + i);
            t_sq[i] = total(na * n + n + i);
        }
        if let Some(g) = g_tt {
            // Upper triangle computed; the lower one mirrors it (exactly symmetric).
            for i in 0..n {
                for j in 0..n {
                    let (r, c) = if j < i { (j, i) } else { (i, j) };
                    g[i * n + j] = total((n + r) * n + c);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The AVX2 passes against the portable ones, over batch sizes that leave partial
    /// tiles and widths that leave partial panels and vector tails, both kinds, with
    /// and without each gradient, sequential and in a pool.
    #[test]
    fn avx2_matches_portable() {
        if !crate::simd::has_avx2_fma() {
            println!("skipped: clip avx2_matches_portable: no AVX2/FMA on this CPU");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let par = Exec {
            par: true,
            threads: 2,
        };
        for (n, d) in [
            (1, 8),
            (3, 61),
            (5, 24),
            (7, 1000),
            (32, 999),
            (33, 5000),
            (64, 40),
        ] {
            let p = data(n * d, 1);
            let t = data(n * d, 2);
            for soft in [false, true] {
                let kind = if soft {
                    ContrastiveLoss::SoftClip
                } else {
                    ContrastiveLoss::InfoNce
                };
                for ex in [Exec::SEQ, par] {
                    let run = |fast: bool| {
                        let (mut ps, mut ts) = (vec![0f32; n], vec![0f32; n]);
                        let (mut gp, mut gt) = (vec![0f32; n * n], vec![0f32; n * n]);
                        pool.install(|| {
                            grams(
                                ex,
                                fast,
                                &p,
                                &t,
                                n,
                                d,
                                &mut ps,
                                &mut ts,
                                &mut gp,
                                soft.then_some(&mut gt[..]),
                            )
                        })
                        .unwrap();
                        (ps, ts, gp, gt)
                    };
                    let (f, s) = (run(true), run(false));
                    let tol = 1e-5 * (d as f32).sqrt();
                    close("p_sq", &f.0, &s.0, tol);
                    close("t_sq", &f.1, &s.1, tol);
                    close("g_pt", &f.2, &s.2, tol);
                    close("g_tt", &f.3, &s.3, tol);

                    let (w, dpm, wtt) = (data(n * n, 3), data(n * n, 4), data(n * n, 5));
                    let c = Coefs::new(kind, &w, &dpm, &wtt, n);
                    for (want_p, want_t) in [(true, true), (true, false), (false, true)] {
                        let run = |fast: bool| {
                            let (mut dp, mut dt) = (data(n * d, 6), data(n * d, 7));
                            pool.install(|| {
                                apply(
                                    ex,
                                    fast,
                                    &c,
                                    &p,
                                    &t,
                                    n,
                                    d,
                                    want_p.then_some(&mut dp[..]),
                                    want_t.then_some(&mut dt[..]),
                                )
                            })
                            .unwrap();
                            (dp, dt)
                        };
                        let (f, s) = (run(true), run(false));
                        let tol = 1e-6 * n as f32 * 4.0;
                        close("dp", &f.0, &s.0, tol);
                        close("dt", &f.1, &s.1, tol);
                    }
                }
            }
        }
    }
}
