//! Sims token loss (`kernels/sims.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/sims.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::Result;

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
    Err(not_yet("sims_forward"))
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
    Err(not_yet("sims_backward"))
}
