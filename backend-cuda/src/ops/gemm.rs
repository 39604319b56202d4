//! GEMM through cuBLAS, and the Linear layer on top of it (plus `kernels/bias.cu`).
//!
//! Row-major by operand swap: a row-major `m×n` C is the column-major `n×m` Cᵀ, and
//! Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS computes with (B, A) swapped, n and m swapped, and
//! each operand's own storage read column-major (a row-major `r×c` matrix is the
//! column-major `c×r` transpose with leading dimension c). Strided-batched in one call;
//! a stride of 0 broadcasts A or B. f32 in, f32 accumulate; TF32 tensor cores only
//! after [`CudaBackend::set_tf32`](crate::CudaBackend::set_tf32).

use super::{bias, elementwise};
use crate::device::{CudaBuffer, Device, Sgemm};
use crate::launch::{i32_dim, i64_dim};
use brain_core::{Gemm, Result};

/// `C = alpha·op(A)·op(B) + beta·C` for each matrix of the batch.
pub(crate) fn gemm(
    dev: &Device,
    g: &Gemm,
    a: &CudaBuffer,
    b: &CudaBuffer,
    c: &mut CudaBuffer,
) -> Result<()> {
    let (a, b, c) = (dev.ptr(a)?, dev.ptr(b)?, dev.ptr_mut(c)?);
    gemm_ptrs(dev, g, a, b, c)
}

/// [`gemm`] on device addresses (for kernels of other families that need a product
/// inside a buffer, e.g. Gram matrices). The caller guarantees that every matrix of
/// the batch lies inside its allocation (`brain_core::check::gemm`).
pub(crate) fn gemm_ptrs(dev: &Device, g: &Gemm, a: u64, b: u64, c: u64) -> Result<()> {
    const OP: &str = "gemm";
    if g.batch == 0 || g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let (alpha, beta) = (g.alpha as f32, g.beta as f32);
    if g.k == 0 {
        // An empty sum: C = beta·C (cuBLAS's handling of k = 0 is not documented).
        return elementwise::scale_matrices(
            dev,
            c,
            beta,
            g.m.saturating_mul(g.n),
            g.stride_c,
            g.batch,
        );
    }
    let m = i32_dim(OP, "m", g.m)?;
    let n = i32_dim(OP, "n", g.n)?;
    let k = i32_dim(OP, "k", g.k)?;
    let batch = i32_dim(OP, "batch", g.batch)?;
    // Column-major views: X = B is op_x(X) n×k, Y = A is op_y(Y) k×m.
    // (op = true: transposed.)
    let (op_x, ld_x) = if g.trans_b { (true, k) } else { (false, n) };
    let (op_y, ld_y) = if g.trans_a { (true, m) } else { (false, k) };
    let stride_a = i64_dim(OP, "stride_a", g.stride_a)?;
    let stride_b = i64_dim(OP, "stride_b", g.stride_b)?;
    let stride_c = i64_dim(OP, "stride_c", g.stride_c)?;
    let call = Sgemm {
        trans_a: op_x,
        trans_b: op_y,
        m: n,
        n: m,
        k,
        alpha,
        a: b,
        lda: ld_x.max(1),
        stride_a: stride_b,
        b: a,
        ldb: ld_y.max(1),
        stride_b: stride_a,
        beta,
        c,
        ldc: n,
        stride_c,
        batch,
    };
    // SAFETY: the pointers address f32 buffers of this device in which every matrix
    // of the batch lies (checked by the caller).
    unsafe { dev.sgemm(&call) }
}

/// `y[rows,out] = x[rows,in]·weight[out,in]ᵀ + bias[out]`: one GEMM, then the bias
/// broadcast added by `bias_add_f32`.
pub(crate) fn linear_forward(
    dev: &Device,
    x: &CudaBuffer,
    weight: &CudaBuffer,
    bias: Option<&CudaBuffer>,
    y: &mut CudaBuffer,
    rows: usize,
    in_features: usize,
    out_features: usize,
) -> Result<()> {
    let g = Gemm::new(rows, out_features, in_features).trans(false, true);
    gemm(dev, &g, x, weight, y)?;
    match bias {
        Some(b) => bias::bias_add(dev, y, b, rows, out_features, 1),
        None => Ok(()),
    }
}

/// `dx = dy·W` (overwritten), `dweight += dyᵀ·x`, `dbias += Σ_rows dy`.
pub(crate) fn linear_backward(
    dev: &Device,
    dy: &CudaBuffer,
    x: &CudaBuffer,
    weight: &CudaBuffer,
    dx: Option<&mut CudaBuffer>,
    dweight: Option<&mut CudaBuffer>,
    dbias: Option<&mut CudaBuffer>,
    rows: usize,
    in_features: usize,
    out_features: usize,
) -> Result<()> {
    if let Some(dx) = dx {
        // dx[rows,in] = dy[rows,out]·W[out,in]
        let g = Gemm::new(rows, in_features, out_features);
        gemm(dev, &g, dy, weight, dx)?;
    }
    if let Some(dw) = dweight {
        // dW[out,in] += dy[rows,out]ᵀ·x[rows,in]
        let g = Gemm::new(out_features, in_features, rows)
            .trans(true, false)
            .scale(1.0, 1.0);
        gemm(dev, &g, dy, x, dw)?;
    }
    if let Some(db) = dbias {
        bias::bias_backward(dev, dy, db, rows, out_features, 1)?;
    }
    Ok(())
}
