//! upsample kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn upsample_forward(
    _be: &WgpuBackend,
    _mode: UpsampleMode,
    _shape: &UpsampleShape,
    _x: &WgpuBuffer,
    _y: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("upsample_forward"))
}

pub(crate) fn upsample_backward(
    _be: &WgpuBackend,
    _mode: UpsampleMode,
    _shape: &UpsampleShape,
    _dy: &WgpuBuffer,
    _dx: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("upsample_backward"))
}
