//! Bias over `[outer, channels, inner]` (`kernels/bias.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::Result;

/// `y[o,c,i] += bias[c]`.
pub(crate) fn bias_add(
    dev: &Device,
    y: &mut CudaBuffer,
    bias: &CudaBuffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    Err(not_yet("bias_add"))
}

/// `dbias[c] += Σ_{o,i} dy[o,c,i]`.
pub(crate) fn bias_backward(
    dev: &Device,
    dy: &CudaBuffer,
    dbias: &mut CudaBuffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    Err(not_yet("bias_backward"))
}
