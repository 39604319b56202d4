//! Sims token loss (`kernels/sims.cu`): one warp per (batch row, token ≥ 1) pair
//! gathers the pair's dot products and norms; the forward sums the squared profile
//! differences per block and finishes the mean with [`finish_sum`]; the backward
//! writes per-pair coefficients, then one pass over each side accumulates the gradient
//! of every token (token 0's as a fixed-order column sum over its row).

use super::mse::{finish_sum, MAX_PARTIALS};
use crate::device::{CudaBuffer, Device};
use crate::launch::{launch_kernel, u32_dim, u64_of};
use crate::module_cache::Family;
use brain_core::Result;
use cudarc::driver::LaunchConfig;

/// Warps (pairs in flight) per block of the pair kernels (`SIMS_PAIR_WARPS`).
const PAIR_WARPS: usize = 8;
/// Coefficients per pair written by `sims_coef_f32` (`SIMS_COEFS`).
const COEFS: usize = 8;
/// Most blocks along grid.y (CUDA's limit); the kernels stride over the rest.
const MAX_GRID_Y: usize = 65_535;

/// Blocks of a pair kernel over `pairs` pairs: a function of `pairs` alone, at most
/// [`MAX_PARTIALS`] (so the forward's partials fit one final block).
fn pair_blocks(pairs: usize) -> usize {
    pairs.div_ceil(PAIR_WARPS).clamp(1, MAX_PARTIALS)
}

fn pair_cfg(blocks: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: ((PAIR_WARPS * 32) as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `loss[0] = mean((s_A − s_B)²)`, `s_X[b, j] = cos(X[b,0], X[b,j])`.
pub(crate) fn sims_forward(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
    loss: &mut CudaBuffer,
) -> Result<()> {
    // batch ≥ 1, tokens ≥ 2, dim ≥ 1 (checked)
    let (pa, pb, out) = (dev.ptr(a)?, dev.ptr(b)?, dev.ptr_mut(loss)?);
    let pairs = batch * (tokens - 1);
    let blocks = pair_blocks(pairs);
    let partials = dev.alloc_zeros(blocks)?;
    let partial = dev.ptr(&partials)?;
    let (batch, tokens, dim) = (u64_of(batch), u64_of(tokens), u64_of(dim));
    launch_kernel!(dev, Family::Sims, "sims_pairs_f32", pair_cfg(blocks);
        pa, pb, partial, batch, tokens, dim)?;
    finish_sum(dev, &partials, blocks, pairs as f32, out)
}

/// `da`, `db` accumulated with the gradient of `scale·loss`.
pub(crate) fn sims_backward(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: f64,
    da: Option<&mut CudaBuffer>,
    db: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "sims_backward";
    let (pa, pb) = (dev.ptr(a)?, dev.ptr(b)?);
    let mut outs = Vec::with_capacity(2);
    if let Some(d) = da {
        outs.push((0u32, pa, dev.ptr_mut(d)?));
    }
    if let Some(d) = db {
        outs.push((1u32, pb, dev.ptr_mut(d)?));
    }
    if outs.is_empty() {
        return Ok(());
    }
    let pairs = batch * (tokens - 1);
    // ∂loss/∂s_A = 2·scale·(s_A − s_B)/pairs: the coefficient combined in f64.
    let coef = (scale * 2.0 / pairs as f64) as f32;
    let coefs = dev.alloc_zeros(pairs * COEFS)?;
    let pc = dev.ptr(&coefs)?;
    let (ub, ut, ud) = (u64_of(batch), u64_of(tokens), u64_of(dim));
    launch_kernel!(dev, Family::Sims, "sims_coef_f32", pair_cfg(pair_blocks(pairs));
        pa, pb, pc, ub, ut, ud, coef)?;

    // One block per (column tile, batch row): 32 threads across the tile (float4
    // columns when dim % 4 = 0 and the rows are aligned), 8 shares of the tokens.
    for (side, x, dx) in outs {
        let vec = dim % 4 == 0 && x % 16 == 0 && dx % 16 == 0;
        let (name, tile) = if vec {
            ("sims_grad_vec4_f32", 128)
        } else {
            ("sims_grad_f32", 32)
        };
        let cfg = LaunchConfig {
            grid_dim: (
                u32_dim(OP, "dim / tile", dim.div_ceil(tile))?,
                batch.clamp(1, MAX_GRID_Y) as u32,
                1,
            ),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        launch_kernel!(dev, Family::Sims, name, cfg; x, pc, dx, side, ub, ut, ud)?;
    }
    Ok(())
}
