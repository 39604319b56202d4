//! MSE loss (`kernels/mse.cu`), and [`finish_sum`]: the one-block final pass of the
//! deterministic two-level sums the losses end with (per-block partials, then a fixed
//! tree over them, the result written to the 1-element loss buffer on the device).

use crate::device::{CudaBuffer, Device};
use crate::launch::{launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::{BrainError, Result};
use cudarc::driver::LaunchConfig;

/// Threads per block of the partial-sum kernels (`MSE_THREADS` in mse.cu).
pub(crate) const THREADS: u32 = 256;

/// Most partial sums a first pass writes: one block of [`THREADS`] adds them in
/// ≤ 8 serial steps, then a tree.
pub(crate) const MAX_PARTIALS: usize = 2048;

/// Elements a block of the first pass covers at least (16 per thread), so small sums
/// use few blocks.
const MIN_PER_BLOCK: usize = THREADS as usize * 16;

/// Blocks of a first pass over `n` elements: a function of `n` alone (so the result's
/// bits do not depend on the device), at least 1, at most [`MAX_PARTIALS`].
pub(crate) fn partial_blocks(n: usize) -> usize {
    n.div_ceil(MIN_PER_BLOCK).clamp(1, MAX_PARTIALS)
}

/// `out[0] = (Σ partials[..count]) / div` in one block (`sum_partials_f32`);
/// `1 ≤ count ≤ MAX_PARTIALS`, `out` a device address of at least one f32.
pub(crate) fn finish_sum(
    dev: &Device,
    partials: &CudaBuffer,
    count: usize,
    div: f32,
    out: u64,
) -> Result<()> {
    if count == 0 || count > partials.len() {
        return Err(BrainError::Backend(format!(
            "cuda: finish_sum over {count} of {} partials (a bug in backend-cuda)",
            partials.len()
        )));
    }
    let partial = dev.ptr(partials)?;
    let count = count as u32; // ≤ partials.len(), which the callers keep ≤ MAX_PARTIALS
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    launch_kernel!(dev, Family::Mse, "sum_partials_f32", cfg; partial, count, div, out)
}

/// `loss[0] = mean((a − b)²)`: per-block partial sums, then [`finish_sum`].
pub(crate) fn mse_forward(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    loss: &mut CudaBuffer,
) -> Result<()> {
    let n = a.len(); // ≥ 1 (checked)
    let (pa, pb, out) = (dev.ptr(a)?, dev.ptr(b)?, dev.ptr_mut(loss)?);
    let blocks = partial_blocks(n);
    // Every block writes its partial: no zero fill needed.
    let partials = dev.alloc_uninit("mse_forward", blocks)?;
    let partial = dev.ptr(&partials)?;
    let cfg = LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let len = u64_of(n);
    launch_kernel!(dev, Family::Mse, "mse_partial_f32", cfg; pa, pb, partial, len)?;
    // The reference divides by N rounded to the element type.
    finish_sum(dev, &partials, blocks, n as f32, out)
}

/// `da += scale·2(a − b)/N`, `db −= the same` (each optional, accumulated).
pub(crate) fn mse_backward(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    scale: f64,
    da: Option<&mut CudaBuffer>,
    db: Option<&mut CudaBuffer>,
) -> Result<()> {
    let n = a.len();
    let (pa, pb) = (dev.ptr(a)?, dev.ptr(b)?);
    let pda = match da {
        Some(d) => dev.ptr_mut(d)?,
        None => 0,
    };
    let pdb = match db {
        Some(d) => dev.ptr_mut(d)?,
        None => 0,
    };
    if n == 0 || (pda == 0 && pdb == 0) {
        return Ok(());
    }
    // 2·scale/N combined in f64, rounded once.
    let coef = (scale * 2.0 / n as f64) as f32;
    let len = u64_of(n);
    let cfg = crate::launch::elementwise(n.div_ceil(4));
    launch_kernel!(dev, Family::Mse, "mse_backward_f32", cfg; pa, pb, pda, pdb, coef, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_blocks_fit_one_final_block() {
        assert_eq!(partial_blocks(1), 1);
        assert_eq!(partial_blocks(MIN_PER_BLOCK), 1);
        assert_eq!(partial_blocks(MIN_PER_BLOCK + 1), 2);
        assert_eq!(partial_blocks(usize::MAX), MAX_PARTIALS);
    }
}
