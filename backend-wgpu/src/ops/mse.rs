//! mse kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn mse_forward(
    _be: &WgpuBackend,
    _a: &WgpuBuffer,
    _b: &WgpuBuffer,
    _loss: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("mse_forward"))
}

pub(crate) fn mse_backward(
    _be: &WgpuBackend,
    _a: &WgpuBuffer,
    _b: &WgpuBuffer,
    _scale: f64,
    _da: Option<&mut WgpuBuffer>,
    _db: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("mse_backward"))
}
