//! LayerNorm and GroupNorm (`kernels/norm.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/norm.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{GroupNormShape, Result};

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
    Err(not_yet("layernorm_forward"))
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
    Err(not_yet("layernorm_backward"))
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
    Err(not_yet("groupnorm_forward"))
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
    Err(not_yet("groupnorm_backward"))
}
