//! MSE loss (`kernels/mse.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/mse.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::Result;

/// `loss[0] = mean((a − b)²)`.
pub(crate) fn mse_forward(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    loss: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("mse_forward"))
}

/// `da += scale·2(a − b)/N`, `db −= the same`.
pub(crate) fn mse_backward(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    scale: f64,
    da: Option<&mut CudaBuffer>,
    db: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("mse_backward"))
}
