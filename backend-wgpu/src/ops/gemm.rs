//! The tiled GEMM (64×64 tiles through workgroup memory, 4×4 per invocation) and the
//! Linear layer built on it; operands larger than one storage binding are split into
//! blocks that each bind ranges that fit.

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
///
/// Operands larger than one storage binding are handled by splitting the product into
/// blocks whose operands' ranges each fit one (see [`plan`]), each dispatched with its
/// ranges bound: one dispatch, binding the whole buffers, when everything fits.
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
    let whole = Block {
        b: (0, g.batch),
        m: (0, g.m),
        n: (0, g.n),
        k: (0, g.k),
    };
    let bufs = [a, b, c];
    let fits = |i: usize, (lo, hi): (u64, u64)| be.gpu.window(bufs[i], lo, hi).is_some();
    let mut blocks = Vec::new();
    plan(op, g, whole, &fits, &mut blocks)?;
    for blk in blocks {
        dispatch_block(be, op, g, &blk, bufs)?;
    }
    Ok(())
}

/// Matrices `b`, rows `m` and columns `n` of C, and the range `k` of the inner
/// dimension, of a strided-batched product (half-open ranges).
#[derive(Clone, Copy, Debug)]
struct Block {
    b: (usize, usize),
    m: (usize, usize),
    n: (usize, usize),
    k: (usize, usize),
}

fn extent(r: (usize, usize)) -> usize {
    r.1 - r.0
}

/// Element ranges `[lo, hi)` of A, B and C that `blk` reads or writes (from its first
/// element to its last, gaps included); A and B are empty when the k range is.
fn ranges(g: &Gemm, blk: &Block) -> [(u64, u64); 3] {
    let u = |v: usize| v as u64;
    let (m, n, k) = (u(g.m), u(g.n), u(g.k));
    let stride = |s: usize| if g.batch == 1 { 0 } else { u(s) };
    let (sa, sb, sc) = (stride(g.stride_a), stride(g.stride_b), stride(g.stride_c));
    let (b0, b1) = (u(blk.b.0), u(blk.b.1) - 1);
    let (m0, m1) = (u(blk.m.0), u(blk.m.1));
    let (n0, n1) = (u(blk.n.0), u(blk.n.1));
    let (k0, k1) = (u(blk.k.0), u(blk.k.1));
    let c = (sc * b0 + m0 * n + n0, sc * b1 + (m1 - 1) * n + n1);
    if k1 == k0 {
        return [(0, 0), (0, 0), c];
    }
    // op(A)[i, l] is A[l·m + i] when A is stored transposed, else A[i·k + l].
    let a = if g.trans_a {
        (sa * b0 + k0 * m + m0, sa * b1 + (k1 - 1) * m + m1)
    } else {
        (sa * b0 + m0 * k + k0, sa * b1 + (m1 - 1) * k + k1)
    };
    // op(B)[l, j] is B[j·k + l] when B is stored transposed, else B[l·n + j].
    let b = if g.trans_b {
        (sb * b0 + n0 * k + k0, sb * b1 + (n1 - 1) * k + k1)
    } else {
        (sb * b0 + k0 * n + n0, sb * b1 + (k1 - 1) * n + n1)
    };
    [a, b, c]
}

/// Split `blk` until the ranges of A, B and C of every block fit one binding each
/// (`fits(operand, range)`), appending the blocks in an order that keeps the k
/// blocks of each C block in increasing k (the first one applies beta, the others
/// accumulate). Halving, in this order of preference: the batch; else, for the first
/// operand that does not fit, the dimension that strides its storage (the rows of
/// the matrix as stored: m of A, or k when A is stored transposed; n of B, or k when
/// B is not transposed; m of C), or when that is down to one, the other one.
fn plan(
    op: &'static str,
    g: &Gemm,
    blk: Block,
    fits: &dyn Fn(usize, (u64, u64)) -> bool,
    out: &mut Vec<Block>,
) -> Result<()> {
    let r = ranges(g, &blk);
    let Some(bad) = (0..3).find(|&i| !fits(i, r[i])) else {
        out.push(blk);
        return Ok(());
    };
    #[derive(Clone, Copy)]
    enum Dim {
        B,
        M,
        N,
        K,
    }
    let (outer, inner) = match bad {
        0 if g.trans_a => (Dim::K, Dim::M),
        0 => (Dim::M, Dim::K),
        1 if g.trans_b => (Dim::N, Dim::K),
        1 => (Dim::K, Dim::N),
        _ => (Dim::M, Dim::N),
    };
    let range = |d: Dim| match d {
        Dim::B => blk.b,
        Dim::M => blk.m,
        Dim::N => blk.n,
        Dim::K => blk.k,
    };
    let dim = [Dim::B, outer, inner]
        .into_iter()
        .find(|&d| extent(range(d)) > 1)
        .ok_or_else(|| {
            BrainError::Unsupported(format!(
                "wgpu: {op}: cannot split a GEMM operand into ranges that fit the \
                 adapter's storage binding limit"
            ))
        })?;
    // Split on whole tiles (64 rows or columns, 16 of k) while there are several.
    let granule = match dim {
        Dim::M | Dim::N => 64,
        Dim::K => 16,
        Dim::B => 1,
    };
    let (lo, hi) = range(dim);
    let half = (hi - lo) / 2;
    let mid = lo
        + if half >= granule {
            half / granule * granule
        } else {
            half
        };
    let (mut first, mut second) = (blk, blk);
    match dim {
        Dim::B => (first.b.1, second.b.0) = (mid, mid),
        Dim::M => (first.m.1, second.m.0) = (mid, mid),
        Dim::N => (first.n.1, second.n.0) = (mid, mid),
        Dim::K => (first.k.1, second.k.0) = (mid, mid),
    }
    plan(op, g, first, fits, out)?;
    plan(op, g, second, fits, out)
}

/// One dispatch of the tiled kernel over `blk`, binding the ranges it touches.
fn dispatch_block(
    be: &WgpuBackend,
    op: &'static str,
    g: &Gemm,
    blk: &Block,
    bufs: [&wgpu::Buffer; 3],
) -> Result<()> {
    let (m, n, k, batch) = (extent(blk.m), extent(blk.n), extent(blk.k), extent(blk.b));
    let (tiles_m, tiles_n) = (m.div_ceil(64), n.div_ceil(64));
    let groups = (tiles_m as u64)
        .checked_mul(tiles_n as u64)
        .and_then(|t| t.checked_mul(batch as u64))
        .ok_or(BrainError::SizeOverflow { op })?;
    let ranges = ranges(g, blk);
    let mut slices = Vec::with_capacity(3);
    let mut offsets = [0usize; 3];
    for (i, (&buf, (lo, hi))) in bufs.iter().zip(ranges).enumerate() {
        let (slice, start) = be.gpu.window(buf, lo, hi).ok_or_else(|| {
            BrainError::Backend(format!("wgpu: {op}: a planned GEMM block does not fit"))
        })?;
        slices.push(slice);
        // Offsets within the binding (nothing of A or B is read when k is empty).
        if hi > lo {
            offsets[i] =
                usize::try_from(lo - start).map_err(|_| BrainError::SizeOverflow { op })?;
        }
    }
    // With one matrix the strides are never used (and may be anything).
    let stride = |s: usize| if g.batch == 1 { 0 } else { s };
    // The first k block applies beta (beta = 0 overwrites C without reading it, as
    // BLAS does); the later ones add to what it wrote.
    let (beta, use_beta) = match blk.k.0 {
        0 => (g.beta, g.beta != 0.0),
        _ => (1.0, true),
    };
    let params = Params::new()
        .u(op, m)?
        .u(op, n)?
        .u(op, k)?
        .u(op, tiles_n)?
        .u(op, tiles_m)?
        .u(op, groups as usize)?
        .u(op, stride(g.stride_a))?
        .u(op, stride(g.stride_b))?
        .u(op, stride(g.stride_c))?
        .u(op, usize::from(use_beta))?
        .f(g.alpha)
        .f(beta)
        .u(op, if g.trans_a { g.m } else { g.k })?
        .u(op, if g.trans_b { g.k } else { g.n })?
        .u(op, g.n)?
        .u(op, offsets[0])?
        .u(op, offsets[1])?
        .u(op, offsets[2])?;
    let kernel = match (g.trans_a, g.trans_b) {
        (false, false) => GEMM_NN,
        (false, true) => GEMM_NT,
        (true, false) => GEMM_TN,
        (true, true) => GEMM_TT,
    };
    be.gpu.dispatch_slices(op, kernel, &params, &slices, groups)
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
