//! The one place the matrix-multiply crate is called (`gemm` 0.19), so it can be
//! swapped for another (e.g. `matrixmultiply`) without touching the kernels.
//!
//! `gemm::gemm` computes `dst = α·dst + β·lhs·rhs` — its α/β are swapped relative to
//! BLAS — and with `read_dst == false` it ignores `dst` entirely (NaN included), which
//! is how BLAS's `beta == 0` is honoured here.
//!
//! Products with few rows (`m ≤ 64`: a Linear layer on a small batch) go to the
//! AVX2/FMA kernels of `skinny.rs` first, which read the weight in place instead of
//! packing it (2–3× faster on `16×4096×4096`).

use crate::par::Exec;
use brain_core::ops::Gemm;
use gemm::Parallelism;
use rayon::prelude::*;

/// Batched matrices below this m·n·k run one whole matrix per task.
pub const BATCH_PAR_MNK: usize = 1 << 21;

/// A read-only matrix operand: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    /// Storage, starting at element (0, 0).
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A dense row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a dense row-major matrix with `stored_cols` columns.
    pub fn transposed(data: &'a [f32], stored_cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: stored_cols,
        }
    }
    /// `op(X)` of a stored row-major matrix: `rows×cols` of op(X), stored transposed or not.
    pub fn op(data: &'a [f32], trans: bool, op_rows: usize, op_cols: usize) -> Self {
        if trans {
            Mat::transposed(data, op_rows)
        } else {
            Mat::rows(data, op_cols)
        }
    }
    /// Panics (internal invariant, never user input) unless every element of an
    /// `r×c` view lies inside `data`: this is what makes the raw-pointer call sound.
    fn assert_fits(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            let last = (r - 1) * self.rs + (c - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "gemm operand out of bounds (internal error)"
            );
        }
    }
}

/// `c[m×n] = alpha·A·B + beta·c` with A `m×k`, B `k×n`, C dense row-major (`n`
/// columns). `beta == 0` overwrites C (NaN included). Parallel inside the crate
/// when `ex.par` (the caller is then inside the backend's pool).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    ex: Exec,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 {
        // The product is empty: C = beta·C (alpha·0 adds nothing).
        if beta == 0.0 {
            c.fill(0.0);
        } else if beta != 1.0 {
            c.iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    a.assert_fits(m, k);
    b.assert_fits(k, n);
    if crate::skinny::try_gemm(ex, m, n, k, alpha, a, b, beta, c) {
        return;
    }
    let parallelism = if ex.par && ex.threads > 1 {
        Parallelism::Rayon(ex.threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every element the crate reads lies inside `a.data` / `b.data`
    // (assert_fits above) and C is exactly `m·n` dense elements we borrow mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Strided-batched GEMM as [`Gemm`] describes it; arguments already validated by
/// `brain_core::check::gemm`. Small matrices run one per task across the batch;
/// large ones one after the other, each parallel inside.
pub fn gemm_batched(ex: Exec, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if g.batch == 0 || m == 0 || n == 0 {
        return;
    }
    let (alpha, beta) = (g.alpha as f32, g.beta as f32);
    let mn = m * n;
    // check::gemm guarantees stride_c ≥ m·n when batch > 1, and that matrix p of
    // each operand ends inside its buffer.
    let c_stride = if g.batch == 1 { mn } else { g.stride_c };
    let one = |ex: Exec, p: usize, cp: &mut [f32]| {
        let ap = Mat::op(&a[p * g.stride_a..], g.trans_a, m, k);
        let bp = Mat::op(&b[p * g.stride_b..], g.trans_b, k, n);
        gemm(ex, m, n, k, alpha, ap, bp, beta, &mut cp[..mn]);
    };
    let mnk = mn.saturating_mul(k);
    let batch_par = ex.par && g.batch > 1 && (mnk < BATCH_PAR_MNK || g.batch >= 2 * ex.threads);
    if batch_par {
        c.par_chunks_mut(c_stride)
            .take(g.batch)
            .enumerate()
            .for_each(|(p, cp)| one(Exec::SEQ, p, cp));
    } else {
        for (p, cp) in c.chunks_mut(c_stride).take(g.batch).enumerate() {
            one(ex, p, cp);
        }
    }
}
