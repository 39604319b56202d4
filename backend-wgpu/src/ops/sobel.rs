//! sobel kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn sobel_forward(
    _be: &WgpuBackend,
    _x: &WgpuBuffer,
    _shape: &ImageShape,
    _gx: &mut WgpuBuffer,
    _gy: &mut WgpuBuffer,
    _magnitude: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("sobel_forward"))
}

pub(crate) fn sobel_backward(
    _be: &WgpuBackend,
    _x: &WgpuBuffer,
    _shape: &ImageShape,
    _dgx: Option<&WgpuBuffer>,
    _dgy: Option<&WgpuBuffer>,
    _dmagnitude: Option<&WgpuBuffer>,
    _dx: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("sobel_backward"))
}

pub(crate) fn sobel_loss_forward(
    _be: &WgpuBackend,
    _pred: &WgpuBuffer,
    _target: &WgpuBuffer,
    _shape: &ImageShape,
    _form: SobelLossForm,
    _loss: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("sobel_loss_forward"))
}

pub(crate) fn sobel_loss_backward(
    _be: &WgpuBackend,
    _pred: &WgpuBuffer,
    _target: &WgpuBuffer,
    _shape: &ImageShape,
    _form: SobelLossForm,
    _scale: f64,
    _dpred: Option<&mut WgpuBuffer>,
    _dtarget: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("sobel_loss_backward"))
}
