//! Nearest and bilinear upsampling (`kernels/upsample.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/upsample.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{Result, UpsampleMode, UpsampleShape};

/// `[N,C,H,W] → [N,C,H·k,W·k]`.
pub(crate) fn upsample_forward(
    dev: &Device,
    mode: UpsampleMode,
    shape: &UpsampleShape,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("upsample_forward"))
}

/// `dx` (overwritten) from `dy`.
pub(crate) fn upsample_backward(
    dev: &Device,
    mode: UpsampleMode,
    shape: &UpsampleShape,
    dy: &CudaBuffer,
    dx: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("upsample_backward"))
}
