//! The tiled GEMM (64×64 tiles through workgroup memory, 4×4 per invocation) and the
//! Linear layer built on it.

use crate::gpu::{Kernel, Params, Shader};
use crate::ops::bias;
use crate::{same_len, WgpuBackend, WgpuBuffer};
use brain_core::{check, BrainError, Gemm, Result};

static SHADER: Shader = shader!("gemm.wgsl");
const ABC: crate::gpu::Bindings = &[(1, true), (2, true), (3, false)];
const GEMM_NN: Kernel =
    Kernel::new(&SHADER, "gemm", ABC).with_constants(&[("TRANS_A", 0.0), ("TRANS_B", 0.0)]);
const GEMM_NT: Kernel =
    Kernel::new(&SHADER, "gemm", ABC).with_constants(&[("TRANS_A", 0.0), ("TRANS_B", 1.0)]);
const GEMM_TN: Kernel =
    Kernel::new(&SHADER, "gemm", ABC).with_constants(&[("TRANS_A", 1.0), ("TRANS_B", 0.0)]);
const GEMM_TT: Kernel =
    Kernel::new(&SHADER, "gemm", ABC).with_constants(&[("TRANS_A", 1.0), ("TRANS_B", 1.0)]);

/// `C = alpha·op(A)·op(B) + beta·C` for each matrix of the batch.
pub(crate) fn gemm(
    be: &WgpuBackend,
    g: &Gemm,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    c: &mut WgpuBuffer,
) -> Result<()> {
    check::gemm(g, a.len, b.len, c.len)?;
    gemm_unchecked(be, "gemm", g, &a.buf, &b.buf, &c.buf)
}

/// `C = alpha·op(A)·op(B) + beta·C`, arguments already checked.
pub(crate) fn gemm_unchecked(
    be: &WgpuBackend,
    op: &'static str,
    g: &Gemm,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<()> {
    if g.batch == 0 || g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let (tiles_m, tiles_n) = (g.m.div_ceil(64), g.n.div_ceil(64));
    let groups = (tiles_m as u64)
        .checked_mul(tiles_n as u64)
        .and_then(|t| t.checked_mul(g.batch as u64))
        .ok_or(BrainError::SizeOverflow { op })?;
    // With one matrix the strides are never used (and may be anything).
    let stride = |s: usize| if g.batch == 1 { 0 } else { s };
    let params = Params::new()
        .u(op, g.m)?
        .u(op, g.n)?
        .u(op, g.k)?
        .u(op, tiles_n)?
        .u(op, tiles_m)?
        .u(op, groups as usize)?
        .u(op, stride(g.stride_a))?
        .u(op, stride(g.stride_b))?
        .u(op, stride(g.stride_c))?
        // beta = 0 overwrites C without reading it, as BLAS does.
        .u(op, usize::from(g.beta != 0.0))?
        .f(g.alpha)
        .f(g.beta);
    let kernel = match (g.trans_a, g.trans_b) {
        (false, false) => GEMM_NN,
        (false, true) => GEMM_NT,
        (true, false) => GEMM_TN,
        (true, true) => GEMM_TT,
    };
    be.gpu.dispatch(op, kernel, &params, &[a, b, c], groups)
}

/// `y[rows,out] = x[rows,in]·W[out,in]ᵀ + bias[out]`.
pub(crate) fn linear_forward(
    be: &WgpuBackend,
    x: &WgpuBuffer,
    w: &WgpuBuffer,
    b: Option<&WgpuBuffer>,
    y: &mut WgpuBuffer,
    rows: usize,
    in_f: usize,
    out_f: usize,
) -> Result<()> {
    const OP: &str = "linear_forward";
    check::linear(OP, x.len, w.len, b.map(|b| b.len), y.len, rows, in_f, out_f)?;
    let g = Gemm::new(rows, out_f, in_f).trans(false, true);
    gemm_unchecked(be, OP, &g, &x.buf, &w.buf, &y.buf)?;
    if let Some(b) = b {
        bias::add_unchecked(be, OP, &y.buf, &b.buf, rows, out_f, 1)?;
    }
    Ok(())
}

/// `dx = dy·W` (overwritten), `dW += dyᵀ·x`, `db += Σ_rows dy`.
pub(crate) fn linear_backward(
    be: &WgpuBackend,
    dy: &WgpuBuffer,
    x: &WgpuBuffer,
    w: &WgpuBuffer,
    dx: Option<&mut WgpuBuffer>,
    dw: Option<&mut WgpuBuffer>,
    db: Option<&mut WgpuBuffer>,
    rows: usize,
    in_f: usize,
    out_f: usize,
) -> Result<()> {
    const OP: &str = "linear_backward";
    check::linear(
        OP,
        x.len,
        w.len,
        db.as_ref().map(|b| b.len),
        dy.len,
        rows,
        in_f,
        out_f,
    )?;
    if let Some(dx) = &dx {
        same_len(OP, "dx", dx.len, x.len)?;
    }
    if let Some(dw) = &dw {
        same_len(OP, "dweight", dw.len, w.len)?;
    }
    if let Some(dx) = dx {
        // dx[rows,in] = dy[rows,out]·W[out,in] (overwritten)
        let g = Gemm::new(rows, in_f, out_f);
        gemm_unchecked(be, OP, &g, &dy.buf, &w.buf, &dx.buf)?;
    }
    if let Some(dw) = dw {
        // dW[out,in] += dyᵀ·x: dy is stored [rows,out] = k×m, hence trans_a.
        let g = Gemm::new(out_f, in_f, rows)
            .trans(true, false)
            .scale(1.0, 1.0);
        gemm_unchecked(be, OP, &g, &dy.buf, &x.buf, &dw.buf)?;
    }
    if let Some(db) = db {
        bias::backward_unchecked(be, OP, &dy.buf, &db.buf, rows, out_f, 1)?;
    }
    Ok(())
}
