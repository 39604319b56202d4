//! LayerNorm and GroupNorm (`kernels/norm.cu`).
//!
//! - Forward (both norms, one kernel): a segment of `T` threads per row of values that
//!   share statistics (a LayerNorm row, the `(C/G)·S` values of a GroupNorm `(n, g)`),
//!   `T` fitted to the row so that a thread holds about four items (float4 when the
//!   shapes and addresses allow) in registers; two-pass mean and variance from the
//!   registers, then `y`, so `x` is read from memory once.
//! - LayerNorm backward: one kernel computes `dx` row by row (a segment per band of
//!   consecutive rows, rows held in registers) and accumulates the band's `dγ`, `dβ`
//!   column partials in registers; a second kernel adds the column sums of the
//!   partials into `dγ`, `dβ`. No atomics: deterministic.
//! - GroupNorm backward: one block per `(n, g)` computes every channel's `Σ dy·x̂`,
//!   `Σ dy` (the parameter-gradient partials, per sample), folds them into the row's
//!   sums, then writes `dx`; the same column-sum kernel adds the partials over the
//!   batch into `dγ`, `dβ`.

use crate::device::{CudaBuffer, Device};
use crate::launch::{launch_kernel, u32_dim, u64_of, MAX_GRID};
use crate::module_cache::Family;
use brain_core::{BrainError, GroupNormShape, Result};
use cudarc::driver::LaunchConfig;

/// Threads of a row-kernel block when rows are short (several segments per block).
const ROW_BLOCK: u32 = 256;
/// Threads in flight the LayerNorm backward aims for (about one H100's worth): rows are
/// grouped into bands so that `bands · T` stays near this, which keeps the partials
/// scratch (`bands · 2 · cols`) small when there are many rows.
const TARGET_THREADS: usize = 1 << 17;
/// Items per thread the forward kernel aims for (the kernel keeps up to 4 in registers).
const FWD_ITEMS: usize = 4;
/// Items per thread the LayerNorm backward aims for (the kernel keeps up to 2).
const BWD_ITEMS: usize = 2;

/// An uninitialised device temporary of `len` f32 (`len ≥ 1`), freed in stream order
/// when dropped. Every kernel that gets one writes each element before it is read.
pub(crate) struct Scratch {
    _buf: CudaBuffer,
    addr: u64,
}

impl Scratch {
    pub(crate) fn new(dev: &Device, op: &'static str, len: usize) -> Result<Scratch> {
        let buf = dev.alloc_uninit(op, len.max(1))?;
        let addr = dev.ptr(&buf)?;
        Ok(Scratch { _buf: buf, addr })
    }

    /// The device address (valid while `self` lives; all use is on the one stream).
    pub(crate) fn ptr(&self, _dev: &Device) -> u64 {
        self.addr
    }
}

/// Whether float4 accesses are possible: `len` values per row a multiple of 4 and
/// every address 16-byte aligned.
fn vec4_ok(len: usize, ptrs: &[u64]) -> bool {
    len % 4 == 0 && ptrs.iter().all(|p| p % 16 == 0)
}

/// Threads per row segment: the power of 2 that gives each thread about `per_thread`
/// items of `items`, within [1, 1024] (short rows share a warp).
fn segment_threads(items: usize, per_thread: usize) -> u32 {
    items
        .div_ceil(per_thread)
        .clamp(1, 1024)
        .next_power_of_two() as u32
}

/// Block size and segments per block for row segments of `t` threads.
fn row_block(t: u32) -> (u32, u32) {
    let block = t.max(ROW_BLOCK);
    (block, block / t)
}

/// The forward kernel's view of a norm: `rows` rows of `len` values, channels
/// `(row % groups)·cpg + j / spatial`.
struct Rows {
    rows: usize,
    len: usize,
    spatial: usize,
    groups: usize,
    cpg: usize,
}

fn forward(
    dev: &Device,
    r: &Rows,
    x: &CudaBuffer,
    gamma: &CudaBuffer,
    beta: &CudaBuffer,
    y: &mut CudaBuffer,
    mean: &mut CudaBuffer,
    rstd: &mut CudaBuffer,
    eps: f64,
) -> Result<()> {
    let (xp, gp, bp, yp) = (
        dev.ptr(x)?,
        dev.ptr(gamma)?,
        dev.ptr(beta)?,
        dev.ptr_mut(y)?,
    );
    let (mp, rp) = (dev.ptr_mut(mean)?, dev.ptr_mut(rstd)?);
    if r.rows == 0 {
        return Ok(());
    }
    if r.len == 0 {
        // No values (GroupNorm with zero channels): the statistics are 0/0, as the
        // reference computes them; y is empty.
        dev.fill(mean, f32::NAN)?;
        return dev.fill(rstd, f32::NAN);
    }
    let v4 = vec4_ok(r.len, &[xp, gp, bp, yp]) && (r.spatial == 1 || r.spatial % 4 == 0);
    let items = if v4 { r.len / 4 } else { r.len };
    let t = segment_threads(items, FWD_ITEMS);
    let (block, spb) = row_block(t);
    let groups = r.rows.div_ceil(spb as usize).clamp(1, MAX_GRID as usize) as u32;
    let cfg = LaunchConfig {
        grid_dim: (groups, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    };
    let name = if v4 {
        "norm_forward_v4_f32"
    } else {
        "norm_forward_f32"
    };
    let (rows, len, spatial, ngroups, cpg) = (
        u64_of(r.rows),
        u64_of(r.len),
        u64_of(r.spatial),
        u64_of(r.groups),
        u64_of(r.cpg),
    );
    let eps = eps as f32;
    launch_kernel!(dev, Family::Norm, name, cfg;
        xp, gp, bp, yp, mp, rp, rows, len, spatial, ngroups, cpg, t, eps)
}

/// `dgamma[c] += Σ_r part[r, c]`, `dbeta[c] += Σ_r part[r, C + c]` over `part[R, 2·C]`.
fn add_param_grads(
    dev: &Device,
    op: &'static str,
    part: u64,
    r: usize,
    c: usize,
    dgamma: &mut CudaBuffer,
    dbeta: &mut CudaBuffer,
) -> Result<()> {
    let (dg, db) = (dev.ptr_mut(dgamma)?, dev.ptr_mut(dbeta)?);
    if r == 0 || c == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig {
        grid_dim: (u32_dim(op, "2·channels / 32", (2 * c).div_ceil(32))?, 1, 1),
        block_dim: (32, 16, 1),
        shared_mem_bytes: 0,
    };
    let (r, c) = (u64_of(r), u64_of(c));
    launch_kernel!(dev, Family::Norm, "norm_param_grad_f32", cfg; part, dg, db, r, c)
}

/// LayerNorm over the last dim of `x[rows, cols]` (biased variance); saves `mean`, `rstd`.
pub(crate) fn layernorm_forward(
    dev: &Device,
    x: &CudaBuffer,
    gamma: &CudaBuffer,
    beta: &CudaBuffer,
    y: &mut CudaBuffer,
    mean: &mut CudaBuffer,
    rstd: &mut CudaBuffer,
    rows: usize,
    cols: usize,
    eps: f64,
) -> Result<()> {
    let r = Rows {
        rows,
        len: cols,
        spatial: 1,
        groups: 1,
        cpg: cols,
    };
    forward(dev, &r, x, gamma, beta, y, mean, rstd, eps)
}

/// `dx` overwritten; `dgamma += Σ dy·x̂`, `dbeta += Σ dy`.
pub(crate) fn layernorm_backward(
    dev: &Device,
    dy: &CudaBuffer,
    x: &CudaBuffer,
    gamma: &CudaBuffer,
    mean: &CudaBuffer,
    rstd: &CudaBuffer,
    dx: &mut CudaBuffer,
    dgamma: &mut CudaBuffer,
    dbeta: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "layernorm_backward";
    let (dyp, xp, gp, mp, rp) = (
        dev.ptr(dy)?,
        dev.ptr(x)?,
        dev.ptr(gamma)?,
        dev.ptr(mean)?,
        dev.ptr(rstd)?,
    );
    let dxp = dev.ptr_mut(dx)?;
    if rows == 0 || cols == 0 {
        return Ok(()); // no dx to write, nothing to add
    }
    let v4 = vec4_ok(cols, &[dyp, xp, gp, dxp]);
    let items = if v4 { cols / 4 } else { cols };
    let t = segment_threads(items, BWD_ITEMS);
    let (block, spb) = row_block(t);
    let max_bands = (TARGET_THREADS / t as usize).max(1);
    let rows_per_band = rows.div_ceil(max_bands);
    let bands = rows.div_ceil(rows_per_band);
    let part_len = bands
        .checked_mul(2 * cols)
        .ok_or(BrainError::SizeOverflow { op: OP })?;
    let part = Scratch::new(dev, OP, part_len)?;
    let pp = part.ptr(dev);
    let cfg = LaunchConfig {
        grid_dim: (u32_dim(OP, "bands", bands.div_ceil(spb as usize))?, 1, 1),
        block_dim: (block, 1, 1),
        shared_mem_bytes: 0,
    };
    let name = if v4 {
        "layernorm_backward_v4_f32"
    } else {
        "layernorm_backward_f32"
    };
    let (rows64, cols64, rpb) = (u64_of(rows), u64_of(cols), u64_of(rows_per_band));
    launch_kernel!(dev, Family::Norm, name, cfg;
        dyp, xp, gp, mp, rp, dxp, pp, rows64, cols64, t, rpb)?;
    add_param_grads(dev, OP, pp, bands, cols, dgamma, dbeta)
}

fn group_rows(s: &GroupNormShape) -> Rows {
    let cpg = s.channels / s.groups;
    Rows {
        rows: s.batch * s.groups,
        len: cpg * s.spatial,
        spatial: s.spatial,
        groups: s.groups,
        cpg,
    }
}

/// GroupNorm on `x[N, C, spatial]`; saves `mean[N·G]`, `rstd[N·G]`.
pub(crate) fn groupnorm_forward(
    dev: &Device,
    x: &CudaBuffer,
    gamma: &CudaBuffer,
    beta: &CudaBuffer,
    y: &mut CudaBuffer,
    mean: &mut CudaBuffer,
    rstd: &mut CudaBuffer,
    shape: &GroupNormShape,
    eps: f64,
) -> Result<()> {
    forward(dev, &group_rows(shape), x, gamma, beta, y, mean, rstd, eps)
}

/// `dx` overwritten; `dgamma`, `dbeta` accumulated.
pub(crate) fn groupnorm_backward(
    dev: &Device,
    dy: &CudaBuffer,
    x: &CudaBuffer,
    gamma: &CudaBuffer,
    mean: &CudaBuffer,
    rstd: &CudaBuffer,
    dx: &mut CudaBuffer,
    dgamma: &mut CudaBuffer,
    dbeta: &mut CudaBuffer,
    shape: &GroupNormShape,
) -> Result<()> {
    const OP: &str = "groupnorm_backward";
    let (dyp, xp, gp, mp, rp) = (
        dev.ptr(dy)?,
        dev.ptr(x)?,
        dev.ptr(gamma)?,
        dev.ptr(mean)?,
        dev.ptr(rstd)?,
    );
    let dxp = dev.ptr_mut(dx)?;
    let r = group_rows(shape);
    if r.rows == 0 || r.len == 0 {
        return Ok(()); // no dx to write, nothing to add
    }
    let v4 = vec4_ok(shape.spatial, &[dyp, xp, dxp]);
    let s_items = if v4 { shape.spatial / 4 } else { shape.spatial };
    // Threads per channel: the power of 2 ≥ the channel's items, at most a block.
    let cs = s_items.next_power_of_two().min(ROW_BLOCK as usize) as u32;
    // Per-sample channel sums [N, 2·C], every element written by the kernel.
    let part_len = (2 * shape.channels)
        .checked_mul(shape.batch)
        .ok_or(BrainError::SizeOverflow { op: OP })?;
    let part = Scratch::new(dev, OP, part_len)?;
    let pp = part.ptr(dev);
    let cfg = LaunchConfig {
        grid_dim: (r.rows.clamp(1, MAX_GRID as usize) as u32, 1, 1),
        block_dim: (ROW_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let name = if v4 {
        "groupnorm_backward_v4_f32"
    } else {
        "groupnorm_backward_f32"
    };
    let (rows, spatial, groups, cpg) = (
        u64_of(r.rows),
        u64_of(r.spatial),
        u64_of(r.groups),
        u64_of(r.cpg),
    );
    launch_kernel!(dev, Family::Norm, name, cfg;
        dyp, xp, gp, mp, rp, dxp, pp, rows, spatial, groups, cpg, cs)?;
    add_param_grads(dev, OP, pp, shape.batch, shape.channels, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_fit_the_rows() {
        assert_eq!(segment_threads(1, FWD_ITEMS), 1);
        assert_eq!(segment_threads(16, FWD_ITEMS), 4);
        assert_eq!(segment_threads(100, BWD_ITEMS), 64);
        assert_eq!(segment_threads(512, FWD_ITEMS), 128);
        assert_eq!(segment_threads(513, FWD_ITEMS), 256);
        assert_eq!(segment_threads(1 << 20, FWD_ITEMS), 1024);
        assert_eq!(row_block(4), (256, 64));
        assert_eq!(row_block(32), (256, 8));
        assert_eq!(row_block(512), (512, 1));
    }

    #[test]
    fn float4_needs_whole_items_and_alignment() {
        assert!(vec4_ok(8, &[0, 256]));
        assert!(!vec4_ok(6, &[0, 256]));
        assert!(!vec4_ok(8, &[0, 260]));
    }
}
