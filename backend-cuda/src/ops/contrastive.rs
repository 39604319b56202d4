//! Row L2 normalisation and the contrastive kernels (`kernels/contrastive.cu`).
//!
//! - Row sums (norms, x·dy, the squared norms of the Gram pass) are deterministic
//!   two-level sums: one block per chunk of a row (the chunking a function of the
//!   shape alone, enough chunks to fill the device when rows are few), then one warp
//!   per row over its chunks.
//! - The `n×n` loss kernels gather per-index statistics (max-subtracted log-sum-exps of
//!   rows and columns) in one block per index, then work per element; the loss ends
//!   with [`finish_sum`] (no host round trip).
//! - The Gram matrices `P·Tᵀ`, `T·Tᵀ` and the input gradients are cuBLAS GEMMs
//!   ([`gemm_ptrs`], the latter accumulating with beta = 1), plus a diagonal-scaling
//!   kernel for `d_p·P` (and InfoNCE's diagonal `w_tt·T`).

use super::gemm::gemm_ptrs;
use super::mse::finish_sum;
use crate::device::{CudaBuffer, Device};
use crate::launch::{launch_kernel, u32_dim, u64_of, MAX_GRID};
use crate::module_cache::Family;
use brain_core::{BrainError, ContrastiveLoss, Gemm, Result};
use cudarc::driver::LaunchConfig;

/// Words per index of the statistics of `contrastive_stats_f32` (`CT_STATS`).
const STATS: usize = 8;
/// Most blocks along grid.y (CUDA's limit); the kernels stride over the rest.
const MAX_GRID_Y: usize = 65_535;
/// Threads per block of the row-sum kernels.
const ROW_THREADS: u32 = 256;
/// Row-sum chunks: at least this long (when a row is split to fill the device) ...
const MIN_CHUNK: usize = 2048;
/// ... and at most this long (so a thread's serial share stays short).
const MAX_CHUNK: usize = 16384;
/// About how many blocks the row-sum pass aims at when rows are few.
const TARGET_BLOCKS: usize = 1024;

fn size_overflow(op: &'static str) -> BrainError {
    BrainError::SizeOverflow { op }
}

/// Whether the device address `p` is 16-byte aligned (float4 access).
fn aligned16(p: u64) -> bool {
    p % 16 == 0
}

/// A 2-D grid over `[rows, units]`: grid.x covers the units (columns, or float4s of
/// them) with a block fitted to them, grid.y strides over the rows.
fn grid_2d(op: &'static str, rows: usize, units: usize) -> Result<LaunchConfig> {
    let threads = units.clamp(32, 256).next_multiple_of(32);
    Ok(LaunchConfig {
        grid_dim: (
            u32_dim(op, "columns / block", units.div_ceil(threads).max(1))?,
            rows.clamp(1, MAX_GRID_Y) as u32,
            1,
        ),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// One block per index `0..n` (grid-stride past [`MAX_GRID`]), the block fitted to `n`.
fn per_index(n: usize) -> LaunchConfig {
    let threads = n.clamp(32, 256).next_multiple_of(32) as u32;
    LaunchConfig {
        grid_dim: (n.clamp(1, MAX_GRID as usize) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// How a row sum over `rows × cols` (both ≥ 1) is split: `(chunks, chunk_len)` with
/// `chunk_len` a multiple of 4 (float4 chunks), at most [`MAX_CHUNK`] long, and every
/// chunk non-empty; when rows are few, more chunks (down to [`MIN_CHUNK`] long) so that
/// about [`TARGET_BLOCKS`] blocks share the work. A function of the shape alone.
fn row_chunks(rows: usize, cols: usize) -> (usize, usize) {
    let fill = TARGET_BLOCKS.div_ceil(rows.max(1));
    let chunks = cols
        .div_ceil(MAX_CHUNK)
        .max(cols.div_ceil(MIN_CHUNK).min(fill))
        .max(1);
    let chunk_len = cols.div_ceil(chunks).next_multiple_of(4).max(4);
    (cols.div_ceil(chunk_len).max(1), chunk_len)
}

/// `out[r] = Σ_k a[r,k]·b[r,k]` (`b = None`: Σ a², read once) over `rows × cols`, its
/// square root when `sqrt`; `out` a device address of `rows` f32. Deterministic.
fn row_dots(
    dev: &Device,
    op: &'static str,
    a: u64,
    b: Option<u64>,
    rows: usize,
    cols: usize,
    sqrt: bool,
    out: u64,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(()); // callers write the empty sums themselves
    }
    let (chunks, chunk_len) = row_chunks(rows, cols);
    let groups = rows.checked_mul(chunks).ok_or(size_overflow(op))?;
    let cfg = LaunchConfig {
        grid_dim: (groups.clamp(1, MAX_GRID as usize) as u32, 1, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let do_sqrt = u32::from(sqrt);
    let (urows, ucols, uchunks, ulen) = (
        u64_of(rows),
        u64_of(cols),
        u64_of(chunks),
        u64_of(chunk_len),
    );
    let part_buf;
    let target = if chunks == 1 {
        out
    } else {
        part_buf = dev.alloc_zeros(groups)?;
        dev.ptr(&part_buf)?
    };
    match b {
        None => launch_kernel!(dev, Family::Contrastive, "row_sumsq_partial_f32", cfg;
            a, target, urows, ucols, uchunks, ulen, do_sqrt)?,
        Some(b) => launch_kernel!(dev, Family::Contrastive, "row_dot_partial_f32", cfg;
            a, b, target, urows, ucols, uchunks, ulen, do_sqrt)?,
    }
    if chunks > 1 {
        let warps = 8usize;
        let cfg = LaunchConfig {
            grid_dim: (
                rows.div_ceil(warps).clamp(1, MAX_GRID as usize) as u32,
                1,
                1,
            ),
            block_dim: ((warps * 32) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        launch_kernel!(dev, Family::Contrastive, "row_dot_finish_f32", cfg;
            target, out, urows, uchunks, do_sqrt)?;
    }
    Ok(())
}

/// The columns of a `[rows, cols]` element-wise kernel as float4 units when every row
/// of every buffer starts 16-byte aligned, else as single columns: (vec flag, units).
fn units(cols: usize, ptrs: &[u64]) -> (u32, usize) {
    if cols % 4 == 0 && ptrs.iter().all(|&p| aligned16(p)) {
        (1, cols / 4)
    } else {
        (0, cols)
    }
}

/// `y = x / max(‖x‖, 1e-12)` per row; saves `norms`.
pub(crate) fn l2_normalize_rows_forward(
    dev: &Device,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
    norms: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "l2_normalize_rows_forward";
    let (px, py, pn) = (dev.ptr(x)?, dev.ptr_mut(y)?, dev.ptr_mut(norms)?);
    if rows == 0 {
        return Ok(());
    }
    if cols == 0 {
        // ‖empty row‖ = 0; y is empty.
        return dev.fill(norms, 0.0);
    }
    row_dots(dev, OP, px, None, rows, cols, true, pn)?;
    let (vec, u) = units(cols, &[px, py]);
    let cfg = grid_2d(OP, rows, u)?;
    let (urows, ucols) = (u64_of(rows), u64_of(cols));
    launch_kernel!(dev, Family::Contrastive, "l2_forward_apply_f32", cfg;
        px, pn, py, urows, ucols, vec)
}

/// `dx` (overwritten) through the row normalisation.
pub(crate) fn l2_normalize_rows_backward(
    dev: &Device,
    dy: &CudaBuffer,
    x: &CudaBuffer,
    norms: &CudaBuffer,
    dx: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "l2_normalize_rows_backward";
    let (pdy, px, pn, pdx) = (dev.ptr(dy)?, dev.ptr(x)?, dev.ptr(norms)?, dev.ptr_mut(dx)?);
    if rows == 0 || cols == 0 {
        return Ok(()); // dx is empty
    }
    let xdy = dev.alloc_zeros(rows)?;
    let pxdy = dev.ptr(&xdy)?;
    row_dots(dev, OP, px, Some(pdy), rows, cols, false, pxdy)?;
    let (vec, u) = units(cols, &[pdy, px, pdx]);
    let cfg = grid_2d(OP, rows, u)?;
    let (urows, ucols) = (u64_of(rows), u64_of(cols));
    launch_kernel!(dev, Family::Contrastive, "l2_backward_apply_f32", cfg;
        pdy, px, pn, pxdy, pdx, urows, ucols, vec)
}

/// Whether the SoftCLIP target-target logits take part, and their address (0 if not).
fn tt_ptr(dev: &Device, kind: ContrastiveLoss, tt: Option<&CudaBuffer>) -> Result<(u32, u64)> {
    match (kind, tt) {
        (ContrastiveLoss::SoftClip, Some(tt)) => Ok((1, dev.ptr(tt)?)),
        _ => Ok((0, 0)),
    }
}

/// SoftCLIP / InfoNCE loss from `n×n` logits.
pub(crate) fn contrastive_forward(
    dev: &Device,
    kind: ContrastiveLoss,
    logits_pt: &CudaBuffer,
    logits_tt: Option<&CudaBuffer>,
    n: usize,
    loss: &mut CudaBuffer,
) -> Result<()> {
    // n ≥ 1 (checked)
    let pt = dev.ptr(logits_pt)?;
    let (soft, tt) = tt_ptr(dev, kind, logits_tt)?;
    let out = dev.ptr_mut(loss)?;
    let part = dev.alloc_zeros(n)?;
    let ppart = dev.ptr(&part)?;
    let un = u64_of(n);
    launch_kernel!(dev, Family::Contrastive, "contrastive_loss_rows_f32", per_index(n);
        pt, tt, ppart, un, soft)?;
    // loss = Σ_i part[i] / (2n)
    finish_sum(dev, &part, n, (2.0 * n as f64) as f32, out)
}

/// Gradients of `scale·loss` w.r.t. the logits (overwritten).
pub(crate) fn contrastive_backward(
    dev: &Device,
    kind: ContrastiveLoss,
    logits_pt: &CudaBuffer,
    logits_tt: Option<&CudaBuffer>,
    n: usize,
    scale: f64,
    dlogits_pt: &mut CudaBuffer,
    dlogits_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "contrastive_backward";
    let pt = dev.ptr(logits_pt)?;
    let (soft, tt) = tt_ptr(dev, kind, logits_tt)?;
    let dpt = dev.ptr_mut(dlogits_pt)?;
    let stats = dev.alloc_zeros(n.checked_mul(STATS).ok_or(size_overflow(OP))?)?;
    let pstats = dev.ptr(&stats)?;
    let un = u64_of(n);
    launch_kernel!(dev, Family::Contrastive, "contrastive_stats_f32", per_index(n);
        pt, tt, pstats, un, soft)?;
    // scale/(2n) combined in f64, rounded once.
    let c = (scale / (2.0 * n as f64)) as f32;
    let cfg = grid_2d(OP, n, n)?;
    launch_kernel!(dev, Family::Contrastive, "contrastive_grad_pt_f32", cfg;
        pt, tt, pstats, dpt, un, soft, c)?;
    if let Some(dtt) = dlogits_tt {
        if soft == 1 {
            let pdtt = dev.ptr_mut(dtt)?;
            launch_kernel!(dev, Family::Contrastive, "contrastive_grad_tt_f32", cfg;
                pt, tt, pstats, pdtt, un, c)?;
        } else {
            // InfoNCE's labels do not depend on C_tt.
            dev.fill(dtt, 0.0)?;
        }
    }
    Ok(())
}

/// Logits of row-normalised inputs from the raw Gram matrices.
pub(crate) fn clip_logits_forward(
    dev: &Device,
    kind: ContrastiveLoss,
    g_pt: &CudaBuffer,
    g_tt: Option<&CudaBuffer>,
    p_sq: &CudaBuffer,
    t_sq: &CudaBuffer,
    n: usize,
    temperature: f64,
    logits_pt: &mut CudaBuffer,
    logits_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "clip_logits_forward";
    let _ = kind; // g_tt / logits_tt are given exactly for SoftCLIP (checked)
    let (pg, pp, pts) = (dev.ptr(g_pt)?, dev.ptr(p_sq)?, dev.ptr(t_sq)?);
    let pout = dev.ptr_mut(logits_pt)?;
    let tau = temperature as f32;
    let un = u64_of(n);
    let cfg = grid_2d(OP, n, n)?;
    launch_kernel!(dev, Family::Contrastive, "clip_logits_f32", cfg;
        pg, pp, pts, pout, un, tau)?;
    if let (Some(g), Some(out)) = (g_tt, logits_tt) {
        let (pg, pout) = (dev.ptr(g)?, dev.ptr_mut(out)?);
        launch_kernel!(dev, Family::Contrastive, "clip_logits_f32", cfg;
            pg, pts, pts, pout, un, tau)?;
    }
    Ok(())
}

/// Backward through `clip_logits_forward` as `n×n` coefficients (overwritten).
pub(crate) fn clip_logits_backward(
    dev: &Device,
    kind: ContrastiveLoss,
    logits_pt: &CudaBuffer,
    logits_tt: Option<&CudaBuffer>,
    dlogits_pt: &CudaBuffer,
    dlogits_tt: Option<&CudaBuffer>,
    p_sq: &CudaBuffer,
    t_sq: &CudaBuffer,
    n: usize,
    temperature: f64,
    w_pt: &mut CudaBuffer,
    d_p: Option<&mut CudaBuffer>,
    w_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "clip_logits_backward";
    let _ = kind; // the C_tt terms are present exactly when both tt buffers are given
    let (pc, pdc) = (dev.ptr(logits_pt)?, dev.ptr(dlogits_pt)?);
    let (pp, pts) = (dev.ptr(p_sq)?, dev.ptr(t_sq)?);
    let pw = dev.ptr_mut(w_pt)?;
    let tau = temperature as f32;
    let un = u64_of(n);
    // w_pt[i,j] = dC_ij·r_i·s_j/τ: the logits' formula applied to dC_pt.
    let cfg = grid_2d(OP, n, n)?;
    launch_kernel!(dev, Family::Contrastive, "clip_logits_f32", cfg;
        pdc, pp, pts, pw, un, tau)?;
    if let Some(d_p) = d_p {
        let pd = dev.ptr_mut(d_p)?;
        launch_kernel!(dev, Family::Contrastive, "clip_dp_rows_f32", per_index(n);
            pc, pdc, pp, pd, un)?;
    }
    if let Some(w_tt) = w_tt {
        // The C_tt terms need both the logits and their gradient (as the reference).
        let (tt, pctt, pe) = match (logits_tt, dlogits_tt) {
            (Some(ctt), Some(e)) => (1u32, dev.ptr(ctt)?, dev.ptr(e)?),
            _ => (0u32, 0u64, 0u64),
        };
        let pw = dev.ptr_mut(w_tt)?;
        launch_kernel!(dev, Family::Contrastive, "clip_wtt_rows_f32", per_index(n);
            pc, pdc, pctt, pe, pts, pw, un, tau, tt)?;
    }
    Ok(())
}

/// Squared row norms and Gram matrices of the raw inputs (overwritten).
pub(crate) fn clip_grams_forward(
    dev: &Device,
    kind: ContrastiveLoss,
    preds: &CudaBuffer,
    targets: &CudaBuffer,
    n: usize,
    d: usize,
    p_sq: &mut CudaBuffer,
    t_sq: &mut CudaBuffer,
    g_pt: &mut CudaBuffer,
    g_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "clip_grams_forward";
    let _ = kind; // g_tt is given exactly for SoftCLIP (checked)
    let (pp, pt) = (dev.ptr(preds)?, dev.ptr(targets)?);
    let (pps, pts) = (dev.ptr_mut(p_sq)?, dev.ptr_mut(t_sq)?);
    if n == 0 {
        return Ok(());
    }
    if d == 0 {
        dev.fill(p_sq, 0.0)?;
        dev.fill(t_sq, 0.0)?;
    } else {
        row_dots(dev, OP, pp, None, n, d, false, pps)?;
        row_dots(dev, OP, pt, None, n, d, false, pts)?;
    }
    // g[n, n] = X[n, d]·T[n, d]ᵀ (d = 0: zeros, the GEMM's β·C pass)
    let gram = Gemm::new(n, n, d).trans(false, true);
    let pg = dev.ptr_mut(g_pt)?;
    gemm_ptrs(dev, &gram, pp, pt, pg)?;
    if let Some(g) = g_tt {
        let pg = dev.ptr_mut(g)?;
        gemm_ptrs(dev, &gram, pt, pt, pg)?;
    }
    Ok(())
}

/// `dpreds += w_pt·T + d_p·P`, `dtargets += w_ptᵀ·P + w_tt·T` (accumulated).
pub(crate) fn clip_inputs_backward(
    dev: &Device,
    kind: ContrastiveLoss,
    w_pt: &CudaBuffer,
    d_p: &CudaBuffer,
    w_tt: &CudaBuffer,
    preds: &CudaBuffer,
    targets: &CudaBuffer,
    n: usize,
    d: usize,
    dpreds: Option<&mut CudaBuffer>,
    dtargets: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "clip_inputs_backward";
    let (pw, pdp, pwtt) = (dev.ptr(w_pt)?, dev.ptr(d_p)?, dev.ptr(w_tt)?);
    let (pp, pt) = (dev.ptr(preds)?, dev.ptr(targets)?);
    if n == 0 || d == 0 {
        return Ok(()); // nothing to add
    }
    // [n, d] += op(W)[n, n]·X[n, d]
    let acc = |trans: bool| Gemm::new(n, d, n).trans(trans, false).scale(1.0, 1.0);
    let (un, ud) = (u64_of(n), u64_of(d));
    let diag = |dmat: u64, x: u64, out: u64| -> Result<()> {
        let (vec, u) = units(d, &[x, out]);
        let cfg = grid_2d(OP, n, u)?;
        launch_kernel!(dev, Family::Contrastive, "diag_axpy_f32", cfg;
            dmat, x, out, un, ud, vec)
    };
    if let Some(dp) = dpreds {
        // dP += W·T + diag(d_p)·P
        let out = dev.ptr_mut(dp)?;
        gemm_ptrs(dev, &acc(false), pw, pt, out)?;
        diag(pdp, pp, out)?;
    }
    if let Some(dt) = dtargets {
        // dT += Wᵀ·P + W_tt·T (InfoNCE: W_tt diagonal)
        let out = dev.ptr_mut(dt)?;
        gemm_ptrs(dev, &acc(true), pw, pp, out)?;
        if kind == ContrastiveLoss::SoftClip {
            gemm_ptrs(dev, &acc(false), pwtt, pt, out)?;
        } else {
            diag(pwtt, pt, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_chunks_cover_each_row_once() {
        for rows in [1, 2, 3, 31, 32, 1000, 5000] {
            for cols in [
                1,
                3,
                4,
                5,
                768,
                2047,
                2048,
                4099,
                16384,
                16385,
                197_376,
                1 << 22,
            ] {
                let (chunks, len) = row_chunks(rows, cols);
                assert!(
                    chunks >= 1 && len % 4 == 0 && len <= MAX_CHUNK,
                    "{rows}x{cols}"
                );
                assert!(chunks * len >= cols, "{rows}x{cols}: not covered");
                assert!((chunks - 1) * len < cols, "{rows}x{cols}: an empty chunk");
            }
        }
        // few long rows are split to fill the device; many short rows are not
        assert!(row_chunks(32, 197_376).0 >= 32);
        assert_eq!(row_chunks(4096, 768).0, 1);
    }

    #[test]
    fn grids_respect_cuda_limits() {
        let cfg = grid_2d("t", 1 << 20, 3).expect("grid");
        assert_eq!(cfg.grid_dim.1, 65_535);
        assert_eq!(cfg.block_dim.0 % 32, 0);
        let cfg = per_index(1 << 20);
        assert_eq!(cfg.grid_dim.0, MAX_GRID);
        assert_eq!(per_index(5).block_dim.0, 32);
    }
}
