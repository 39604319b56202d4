//! Sobel and the Sobel loss on NCHW (`kernels/sobel.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/sobel.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{ImageShape, Result, SobelLossForm};

/// gx, gy and √(gx² + gy² + 1e-6), zero padding 1.
pub(crate) fn sobel_forward(
    dev: &Device,
    x: &CudaBuffer,
    shape: &ImageShape,
    gx: &mut CudaBuffer,
    gy: &mut CudaBuffer,
    magnitude: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("sobel_forward"))
}

/// `dx` (overwritten) from any of the output gradients.
pub(crate) fn sobel_backward(
    dev: &Device,
    x: &CudaBuffer,
    shape: &ImageShape,
    dgx: Option<&CudaBuffer>,
    dgy: Option<&CudaBuffer>,
    dmagnitude: Option<&CudaBuffer>,
    dx: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("sobel_backward"))
}

/// Fused Sobel loss between `pred` and `target`.
pub(crate) fn sobel_loss_forward(
    dev: &Device,
    pred: &CudaBuffer,
    target: &CudaBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    loss: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("sobel_loss_forward"))
}

/// `dpred`, `dtarget` accumulated with the gradient of `scale·loss`.
pub(crate) fn sobel_loss_backward(
    dev: &Device,
    pred: &CudaBuffer,
    target: &CudaBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    scale: f64,
    dpred: Option<&mut CudaBuffer>,
    dtarget: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("sobel_loss_backward"))
}
