//! Row reductions (`kernels/reduce.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{Result, RowReduce};

/// `out[r] = reduce(x[r, :])` over `x[rows, cols]`.
pub(crate) fn reduce_rows(
    dev: &Device,
    op: RowReduce,
    x: &CudaBuffer,
    out: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    Err(not_yet("reduce_rows"))
}
