//! Fused multi-tensor AdamW (`kernels/adamw.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/adamw.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use crate::CudaBackend;
use brain_core::{AdamW, AdamWTensor, Result};

/// One AdamW step over all tensors; the global gradient norm (before clipping) into `grad_norm[0]` when given, on the device.
pub(crate) fn adamw_step(
    dev: &Device,
    cfg: &AdamW,
    tensors: &mut [AdamWTensor<'_, CudaBackend>],
    grad_norm: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("adamw_step"))
}
