//! Row reductions (`kernels/reduce.cu`): one block per row, block size fitted to the
//! row (a multiple of 32, at most 256).

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::{Result, RowReduce};

/// `out[r] = reduce(x[r, :])` over `x[rows, cols]`, `cols ≥ 1`.
pub(crate) fn reduce_rows(
    dev: &Device,
    op: RowReduce,
    x: &CudaBuffer,
    out: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let (x, out) = (dev.ptr(x)?, dev.ptr_mut(out)?);
    if rows == 0 {
        return Ok(());
    }
    let name = match op {
        RowReduce::Sum => "reduce_rows_sum_f32",
        RowReduce::Mean => "reduce_rows_mean_f32",
        RowReduce::Max => "reduce_rows_max_f32",
        RowReduce::LogSumExp => "reduce_rows_logsumexp_f32",
        RowReduce::SumSquares => "reduce_rows_sum_squares_f32",
    };
    let threads = cols.clamp(32, 256).next_multiple_of(32) as u32;
    let cfg = launch::blocks(rows, threads);
    let (rows, cols) = (u64_of(rows), u64_of(cols));
    launch_kernel!(dev, Family::Reduce, name, cfg; x, out, rows, cols)
}
