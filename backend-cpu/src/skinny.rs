//! Register-blocked kernels for GEMMs with few rows (`m` small: a Linear layer on a
//! small batch), x86-64 with AVX2 + FMA, detected at run time.
//!
//! The general-purpose crate packs the big operand (the weight) before multiplying;
//! with only `m ≤ SKINNY_MAX_M` rows to reuse each packed element, packing costs
//! about as much as the product. These kernels read the weight in place:
//!
//! - NN, `C = A·B` with B row-major `k×n` (`dx = dy·W`): a 6×16 (or narrower) tile of C
//!   in registers over k blocks of 32 rows of B, panels swept left to right (32
//!   parallel sequential streams, plus software prefetch: rows `ldb` apart defeat the
//!   hardware prefetchers), A broadcast;
//! - NT, `C = A·Bᵀ` with B stored `n×k` (`y = x·Wᵀ`): 4×3 dot products over 8 lanes,
//!   A and W rows both contiguous along k, k blocked so the A block stays in L2;
//! - NT with few columns (a Gram matrix of a batch over long rows): k split across the
//!   pool, each task's 4×3 tiles accumulating 8-lane partials over L1/L2-sized blocks.
//!
//! The column range of C is split across the pool. Accumulation order differs from the
//! reference (8 lanes, FMA); the result is within the usual `k·u·|A||B|` bound.

use crate::gemm::Mat;
use crate::par::Exec;

/// Largest `m` sent to these kernels (above it the crate's packing pays off).
pub const SKINNY_MAX_M: usize = 64;
/// Floats of A kept hot per k block (256 KiB, half a typical L2): the NT k block is
/// `A_BLOCK / m` deep, so each W row is streamed in long runs.
const A_BLOCK: usize = 1 << 16;

/// Run `C = alpha·A·B + beta·C` here if the shape, layout and CPU suit; returns
/// whether it did. C is dense row-major `m×n` (exactly `m·n` long), A and B already
/// checked to fit their views.
#[allow(clippy::too_many_arguments)]
pub fn try_gemm(
    ex: Exec,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    c: &mut [f32],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if m == 0 || m > SKINNY_MAX_M || n < 16 || k < 16 || !x86::available() {
            return false;
        }
        let nn = b.cs == 1;
        if !nn && b.rs != 1 {
            return false;
        }
        // A row-major with unit column stride; otherwise pack it (m·k, small).
        let packed;
        let (a_data, lda) = if a.cs == 1 {
            (a.data, a.rs)
        } else {
            let mut p = vec![0f32; m * k];
            for (i, row) in p.chunks_exact_mut(k).enumerate() {
                for (l, v) in row.iter_mut().enumerate() {
                    *v = a.data[i * a.rs + l * a.cs];
                }
            }
            packed = p;
            (&packed[..], k)
        };
        let ptrs = x86::Args {
            m,
            n,
            k,
            a: a_data.as_ptr(),
            lda,
            b: b.data.as_ptr(),
            ldb: if nn { b.rs } else { b.cs },
            c: x86::SyncPtr(c.as_mut_ptr()),
            alpha,
            beta,
        };
        let run = |j0: usize, j1: usize| {
            // SAFETY: AVX2 and FMA are present (checked above); every pointer offset the
            // kernels form stays inside the views checked by the caller (A: m×k with
            // stride lda, B: k×n or n×k with stride ldb, C: m×n dense), and tasks write
            // disjoint column ranges [j0, j1) of C.
            unsafe {
                if nn {
                    x86::nn(&ptrs, j0, j1)
                } else {
                    x86::nt(&ptrs, j0, j1)
                }
            }
        };
        // Columns per task, a multiple of 48 (16-wide NN panels, 3-wide NT blocks): one
        // task per thread for NN (long row runs of B), four for NT (load balance).
        let per = if nn {
            n.div_ceil(ex.threads.max(1)).div_ceil(48) * 48
        } else {
            ex.chunk(n, 48, 48)
        };
        // NT with too few columns to split (a Gram matrix A·Bᵀ of a small batch over
        // long rows, m, n ≤ 64): split k instead, each task into its own m×n partial,
        // then C = alpha·Σ partials + beta·C.
        if !nn && ex.par && ex.threads > 1 && n <= per && k >= SPLIT_K_MIN {
            split_k_nt(ex, &ptrs, c);
            return true;
        }
        if ex.par && n > per {
            use rayon::prelude::*;
            (0..n.div_ceil(per))
                .into_par_iter()
                .for_each(|t| run(t * per, ((t + 1) * per).min(n)));
        } else {
            run(0, n);
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ex, m, n, k, alpha, a, b, beta, c);
        false
    }
}

/// Least k worth splitting across the pool (each task keeps ≥ 1024 deep).
const SPLIT_K_MIN: usize = 4096;

/// `C = alpha·A·Bᵀ + beta·C` with k split across the pool (see [`try_gemm`]).
#[cfg(target_arch = "x86_64")]
fn split_k_nt(ex: Exec, p: &x86::Args, c: &mut [f32]) {
    use rayon::prelude::*;
    let (m, n, k) = (p.m, p.n, p.k);
    // Task depth: a multiple of 8 lanes, at least 1024, about 2 tasks per thread.
    let depth = k.div_ceil(ex.threads * 2).max(1024).div_ceil(8) * 8;
    let tasks = k.div_ceil(depth);
    let mut partials = vec![0f32; tasks * m * n];
    // A·Aᵀ (a Gram matrix: the same rows on both sides) is symmetric: compute the
    // upper triangle only.
    let symmetric = m == n && p.a == p.b && p.lda == p.ldb;
    let (a, b) = (x86::SyncConst(p.a), x86::SyncConst(p.b));
    partials
        .par_chunks_mut(m * n)
        .enumerate()
        .for_each(|(t, part)| {
            let (a, b) = (a, b); // capture the Sync wrappers whole, not their fields
            let k0 = t * depth;
            let k1 = (k0 + depth).min(k);
            let sub = x86::Args {
                k: k1 - k0,
                // SAFETY: k0 < k, so both offsets stay inside rows of length k (A: lda
                // apart, B: ldb apart); the kernel reads columns [k0, k1) of each row.
                a: unsafe { a.0.add(k0) },
                b: unsafe { b.0.add(k0) },
                c: x86::SyncPtr(part.as_mut_ptr()),
                alpha: 1.0,
                beta: 0.0,
                ..*p
            };
            // SAFETY: AVX2 and FMA are present (checked by try_gemm); `part` is a dense
            // m×n buffer owned by this task; `sub` views columns [k0, k1) of A and B.
            unsafe { x86::nt_split_task(&sub, part, symmetric) }
        });
    let (alpha, beta) = (p.alpha, p.beta);
    for i in 0..m {
        for j in 0..n {
            // A symmetric product takes its lower triangle from the upper one, so the
            // result is exactly symmetric.
            let (r, q) = if symmetric && j < i { (j, i) } else { (i, j) };
            let sum: f32 = partials.iter().skip(r * n + q).step_by(m * n).sum();
            let ci = &mut c[i * n + j];
            *ci = if beta == 0.0 {
                alpha * sum
            } else {
                alpha * sum + beta * *ci
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::A_BLOCK;
    use core::arch::x86_64::*;

    /// Whether the CPU has what the kernels need (cached by std).
    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    /// C's base pointer, shared by tasks that write disjoint columns.
    #[derive(Clone, Copy)]
    pub struct SyncPtr(pub *mut f32);
    // SAFETY: tasks write disjoint column ranges (see `try_gemm`).
    unsafe impl Send for SyncPtr {}
    unsafe impl Sync for SyncPtr {}

    /// A read-only operand pointer shared by the split-k tasks.
    #[derive(Clone, Copy)]
    pub struct SyncConst(pub *const f32);
    // SAFETY: only read, from slices borrowed for the whole call.
    unsafe impl Send for SyncConst {}
    unsafe impl Sync for SyncConst {}

    /// One problem: A `m×k` (row stride lda), B `k×n` (NN, row stride ldb) or `n×k`
    /// (NT, row stride ldb), C `m×n` dense.
    pub struct Args {
        pub m: usize,
        pub n: usize,
        pub k: usize,
        pub a: *const f32,
        pub lda: usize,
        pub b: *const f32,
        pub ldb: usize,
        pub c: SyncPtr,
        pub alpha: f32,
        pub beta: f32,
    }
    // SAFETY: read-only pointers into slices borrowed for the whole call; C as above.
    unsafe impl Sync for Args {}

    /// Mask with the first `r` (< 8) lanes on.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tail_mask(r: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(r as i32), idx)
    }

    /// Write `alpha·acc` into C (first k block: `+ beta·C`, or overwrite when beta = 0;
    /// later blocks: `+ C`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store8(
        p: *mut f32,
        acc: __m256,
        alpha: f32,
        beta: f32,
        first: bool,
        mask: Option<__m256i>,
    ) {
        let mut v = _mm256_mul_ps(_mm256_set1_ps(alpha), acc);
        let old_scale = if first { beta } else { 1.0 };
        if old_scale != 0.0 {
            let old = match mask {
                Some(mk) => _mm256_maskload_ps(p, mk),
                None => _mm256_loadu_ps(p),
            };
            v = _mm256_fmadd_ps(_mm256_set1_ps(old_scale), old, v);
        }
        match mask {
            Some(mk) => _mm256_maskstore_ps(p, mk, v),
            None => _mm256_storeu_ps(p, v),
        }
    }

    /// NN tile: rows [i0, i0+MR) × columns [j, j+width) of C (width ≤ 16), over depth
    /// [l0, l0+kb), reading B in place (row stride ldb). Columns past `width` are
    /// neither read nor written (masked).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nn_tile<const MR: usize, const PREFETCH: bool>(
        p: &Args,
        i0: usize,
        l0: usize,
        kb: usize,
        j: usize,
        width: usize,
    ) {
        let (m0, m1) = if width >= 16 {
            (None, None)
        } else if width >= 8 {
            (None, Some(tail_mask(width - 8)))
        } else {
            (Some(tail_mask(width)), Some(tail_mask(0)))
        };
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        if PREFETCH && (l0 > 0 || p.beta != 0.0) {
            // C is read back too, MR rows `n` apart: fetch the panels ahead.
            for r in 0..MR {
                let crow = p.c.0.add((i0 + r) * p.n + j);
                _mm_prefetch::<_MM_HINT_T0>(crow.wrapping_add(PF_AHEAD_C) as *const i8);
            }
        }
        let a = p.a.add(i0 * p.lda + l0);
        let b = p.b.add(l0 * p.ldb + j);
        for l in 0..kb {
            let brow = b.add(l * p.ldb);
            if PREFETCH {
                // The panels to the right, same rows: B rows are `ldb` apart, a stride
                // the hardware prefetchers do not follow.
                _mm_prefetch::<_MM_HINT_T0>(brow.wrapping_add(PF_AHEAD) as *const i8);
            }
            let b0 = match m0 {
                None => _mm256_loadu_ps(brow),
                Some(mk) => _mm256_maskload_ps(brow, mk),
            };
            let b1 = match m1 {
                None => _mm256_loadu_ps(brow.add(8)),
                Some(mk) => _mm256_maskload_ps(brow.add(8), mk),
            };
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*a.add(r * p.lda + l));
                accr[0] = _mm256_fmadd_ps(av, b0, accr[0]);
                accr[1] = _mm256_fmadd_ps(av, b1, accr[1]);
            }
        }
        let first = l0 == 0;
        for (r, accr) in acc.iter().enumerate() {
            let crow = p.c.0.add((i0 + r) * p.n + j);
            store8(crow, accr[0], p.alpha, p.beta, first, m0);
            if width > 8 {
                store8(crow.add(8), accr[1], p.alpha, p.beta, first, m1);
            }
        }
    }

    /// NN over columns [j0, j1): k in blocks of `NN_KB` rows of B; each block is swept
    /// in 16-column panels across the whole range, so B is read as `NN_KB` parallel
    /// sequential streams (prefetcher-friendly) and each panel is reused from L1 by
    /// every row block of A; C is revisited once per k block.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn nn(p: &Args, j0: usize, j1: usize) {
        let mut l0 = 0;
        while l0 < p.k {
            let kb = (p.k - l0).min(NN_KB);
            let mut j = j0;
            while j < j1 {
                let w = (j1 - j).min(16);
                let mut i = 0;
                while i < p.m {
                    // Only the first row block of a panel brings B in.
                    const PF: bool = true;
                    match p.m - i {
                        1 => nn_tile::<1, PF>(p, i, l0, kb, j, w),
                        2 => nn_tile::<2, PF>(p, i, l0, kb, j, w),
                        3 => nn_tile::<3, PF>(p, i, l0, kb, j, w),
                        4 => nn_tile::<4, PF>(p, i, l0, kb, j, w),
                        5 => nn_tile::<5, PF>(p, i, l0, kb, j, w),
                        _ => nn_tile::<6, PF>(p, i, l0, kb, j, w),
                    }
                    i += 6;
                }
                j += 16;
            }
            l0 += kb;
        }
    }

    /// Floats ahead of the current panel that the NN kernel prefetches.
    const PF_AHEAD: usize = 32;

    /// Floats ahead of the current panel that the NN kernel prefetches in C.
    const PF_AHEAD_C: usize = 64;

    /// Rows of B per NN k block (parallel streams).
    const NN_KB: usize = 32;

    /// Horizontal sum of 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// NT tile accumulating into 8-lane partials: acc (MR·NR vectors, loaded unless
    /// `first`) += rows [0, MR) of `a` (stride lda) · rows [0, NR) of `b` (stride
    /// ldb) over `len` floats, lane by lane (the last `len % 8` through a mask).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn nt_acc_tile<const MR: usize, const NR: usize>(
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        len: usize,
        acc: *mut __m256,
        first: bool,
    ) {
        let mut v = [[_mm256_setzero_ps(); NR]; MR];
        if !first {
            for (r, vr) in v.iter_mut().enumerate() {
                for (c, x) in vr.iter_mut().enumerate() {
                    *x = *acc.add(r * NR + c);
                }
            }
        }
        let l8 = len / 8 * 8;
        let mut l = 0;
        while l < l8 {
            let mut wv = [_mm256_setzero_ps(); NR];
            for (c, x) in wv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(b.add(c * ldb + l));
            }
            for (r, vr) in v.iter_mut().enumerate() {
                let av = _mm256_loadu_ps(a.add(r * lda + l));
                for c in 0..NR {
                    vr[c] = _mm256_fmadd_ps(av, wv[c], vr[c]);
                }
            }
            l += 8;
        }
        if l8 < len {
            let mk = tail_mask(len - l8);
            let mut wv = [_mm256_setzero_ps(); NR];
            for (c, x) in wv.iter_mut().enumerate() {
                *x = _mm256_maskload_ps(b.add(c * ldb + l8), mk);
            }
            for (r, vr) in v.iter_mut().enumerate() {
                let av = _mm256_maskload_ps(a.add(r * lda + l8), mk);
                for c in 0..NR {
                    vr[c] = _mm256_fmadd_ps(av, wv[c], vr[c]);
                }
            }
        }
        for (r, vr) in v.iter().enumerate() {
            for (c, &x) in vr.iter().enumerate() {
                *acc.add(r * NR + c) = x;
            }
        }
    }

    /// Depth of one split-k NT block: 4 rows of it (8 KiB) stay in L1, all 32 rows of
    /// a Gram operand (64 KiB) in L2.
    const SPLIT_KC: usize = 512;

    /// One split-k task of an NT product with m, n ≤ 64: `part` (dense m×n) = A·Bᵀ
    /// over depth [0, p.k), in k blocks of `SPLIT_KC`. In a block, row blocks of 4
    /// outer, column blocks of 3 inner: the 4 A rows stay in L1 while the B rows come
    /// from L2 (columns outer, as [`nt`], reads both from L2: 7 loads per 12 FMAs, more
    /// than L2 delivers). 8-lane partials live in `acc` across blocks and are reduced
    /// once at the end. The next block is prefetched into L2 while the tiles run (32
    /// rows far apart defeat the hardware prefetchers). `symmetric`: A = B, upper
    /// triangle only.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn nt_split_task(p: &Args, part: &mut [f32], symmetric: bool) {
        let (m, n, k) = (p.m, p.n, p.k);
        // Symmetric: each row block from its first row's diagonal entry rightwards.
        let mut tiles = Vec::new();
        for i0 in (0..m).step_by(4) {
            let js = if symmetric { i0 } else { 0 };
            for j0 in (js..n).step_by(3) {
                tiles.push((i0, j0));
            }
        }
        let mut acc = vec![_mm256_setzero_ps(); tiles.len() * 12];
        let accp = acc.as_mut_ptr();
        // Prefetch targets: every line of the next block of A's rows (and B's, when
        // not the same), a few per tile.
        let rows = if symmetric { m } else { m + n };
        let lines_per_row = SPLIT_KC / 16;
        let pf_per_tile = (rows * lines_per_row).div_ceil(tiles.len());
        let mut l0 = 0;
        while l0 < k {
            let len = (k - l0).min(SPLIT_KC);
            let next = l0 + SPLIT_KC;
            let (mut pf_r, mut pf_q) = (0, 0);
            for (t, &(i0, j0)) in tiles.iter().enumerate() {
                if next < k && pf_r < rows {
                    for _ in 0..pf_per_tile {
                        let row = if pf_r < m {
                            p.a.add(pf_r * p.lda)
                        } else {
                            p.b.add((pf_r - m) * p.ldb)
                        };
                        let at = row.wrapping_add(next + 16 * pf_q) as *const i8;
                        _mm_prefetch::<_MM_HINT_T1>(at);
                        pf_q += 1;
                        if pf_q == lines_per_row {
                            pf_q = 0;
                            pf_r += 1;
                            if pf_r == rows {
                                break;
                            }
                        }
                    }
                }
                let a = p.a.add(i0 * p.lda + l0);
                let b = p.b.add(j0 * p.ldb + l0);
                let (lda, ldb) = (p.lda, p.ldb);
                let at = accp.add(12 * t);
                let first = l0 == 0;
                match ((m - i0).min(4), (n - j0).min(3)) {
                    (4, 3) => nt_acc_tile::<4, 3>(a, lda, b, ldb, len, at, first),
                    (4, 2) => nt_acc_tile::<4, 2>(a, lda, b, ldb, len, at, first),
                    (4, 1) => nt_acc_tile::<4, 1>(a, lda, b, ldb, len, at, first),
                    (3, 3) => nt_acc_tile::<3, 3>(a, lda, b, ldb, len, at, first),
                    (3, 2) => nt_acc_tile::<3, 2>(a, lda, b, ldb, len, at, first),
                    (3, 1) => nt_acc_tile::<3, 1>(a, lda, b, ldb, len, at, first),
                    (2, 3) => nt_acc_tile::<2, 3>(a, lda, b, ldb, len, at, first),
                    (2, 2) => nt_acc_tile::<2, 2>(a, lda, b, ldb, len, at, first),
                    (2, 1) => nt_acc_tile::<2, 1>(a, lda, b, ldb, len, at, first),
                    (1, 3) => nt_acc_tile::<1, 3>(a, lda, b, ldb, len, at, first),
                    (1, 2) => nt_acc_tile::<1, 2>(a, lda, b, ldb, len, at, first),
                    _ => nt_acc_tile::<1, 1>(a, lda, b, ldb, len, at, first),
                }
            }
            l0 += len;
        }
        for (t, &(i0, j0)) in tiles.iter().enumerate() {
            let (mr, nr) = ((m - i0).min(4), (n - j0).min(3));
            for r in 0..mr {
                for c in 0..nr {
                    part[(i0 + r) * n + j0 + c] = hsum(acc[12 * t + r * nr + c]);
                }
            }
        }
    }

    /// NT block: rows [i0, i0+MR) × columns [j, j+NR) of C, depth [l0, l1).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nt_tile<const MR: usize, const NR: usize>(
        p: &Args,
        i0: usize,
        j: usize,
        l0: usize,
        l1: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); NR]; MR];
        let a = p.a.add(i0 * p.lda);
        let w = p.b.add(j * p.ldb);
        let l8 = l0 + (l1 - l0) / 8 * 8;
        let mut l = l0;
        while l < l8 {
            let mut wv = [_mm256_setzero_ps(); NR];
            for (c, x) in wv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(w.add(c * p.ldb + l));
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                let av = _mm256_loadu_ps(a.add(r * p.lda + l));
                for c in 0..NR {
                    accr[c] = _mm256_fmadd_ps(av, wv[c], accr[c]);
                }
            }
            l += 8;
        }
        let first = l0 == 0;
        for (r, accr) in acc.iter().enumerate() {
            for (c, &x) in accr.iter().enumerate() {
                let mut s = hsum(x);
                for t in l8..l1 {
                    s = (*a.add(r * p.lda + t)).mul_add(*w.add(c * p.ldb + t), s);
                }
                let cp = p.c.0.add((i0 + r) * p.n + j + c);
                let old_scale = if first { p.beta } else { 1.0 };
                *cp = if old_scale != 0.0 {
                    p.alpha * s + old_scale * *cp
                } else {
                    p.alpha * s
                };
            }
        }
    }

    /// All row blocks for NR columns at j.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nt_cols<const NR: usize>(p: &Args, j: usize, l0: usize, l1: usize) {
        let mut i = 0;
        while i < p.m {
            match p.m - i {
                1 => nt_tile::<1, NR>(p, i, j, l0, l1),
                2 => nt_tile::<2, NR>(p, i, j, l0, l1),
                3 => nt_tile::<3, NR>(p, i, j, l0, l1),
                _ => nt_tile::<4, NR>(p, i, j, l0, l1),
            }
            i += 4;
        }
    }

    /// NT over columns [j0, j1).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn nt(p: &Args, j0: usize, j1: usize) {
        let kc = (A_BLOCK / p.m).max(256) / 8 * 8;
        let mut l0 = 0;
        while l0 < p.k {
            let l1 = (l0 + kc).min(p.k);
            let mut j = j0;
            while j + 3 <= j1 {
                nt_cols::<3>(p, j, l0, l1);
                j += 3;
            }
            match j1 - j {
                2 => nt_cols::<2>(p, j, l0, l1),
                1 => nt_cols::<1>(p, j, l0, l1),
                _ => {}
            }
            l0 = l1;
        }
    }
}
