//! Activations (`kernels/activation.cu`): GELU (erf and tanh forms) and SiLU.
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{Activation, Result};

/// `y = f(x)`.
pub(crate) fn activation_forward(
    dev: &Device,
    act: Activation,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("activation_forward"))
}

/// `dx = dy·f'(x)`.
pub(crate) fn activation_backward(
    dev: &Device,
    act: Activation,
    x: &CudaBuffer,
    dy: &CudaBuffer,
    dx: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("activation_backward"))
}
