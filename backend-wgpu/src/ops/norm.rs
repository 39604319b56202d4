//! norm kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn layernorm_forward(
    _be: &WgpuBackend,
    _x: &WgpuBuffer,
    _gamma: &WgpuBuffer,
    _beta: &WgpuBuffer,
    _y: &mut WgpuBuffer,
    _mean: &mut WgpuBuffer,
    _rstd: &mut WgpuBuffer,
    _rows: usize,
    _cols: usize,
    _eps: f64,
) -> Result<()> {
    Err(not_yet("layernorm_forward"))
}

pub(crate) fn layernorm_backward(
    _be: &WgpuBackend,
    _dy: &WgpuBuffer,
    _x: &WgpuBuffer,
    _gamma: &WgpuBuffer,
    _mean: &WgpuBuffer,
    _rstd: &WgpuBuffer,
    _dx: &mut WgpuBuffer,
    _dgamma: &mut WgpuBuffer,
    _dbeta: &mut WgpuBuffer,
    _rows: usize,
    _cols: usize,
) -> Result<()> {
    Err(not_yet("layernorm_backward"))
}

pub(crate) fn groupnorm_forward(
    _be: &WgpuBackend,
    _x: &WgpuBuffer,
    _gamma: &WgpuBuffer,
    _beta: &WgpuBuffer,
    _y: &mut WgpuBuffer,
    _mean: &mut WgpuBuffer,
    _rstd: &mut WgpuBuffer,
    _shape: &GroupNormShape,
    _eps: f64,
) -> Result<()> {
    Err(not_yet("groupnorm_forward"))
}

pub(crate) fn groupnorm_backward(
    _be: &WgpuBackend,
    _dy: &WgpuBuffer,
    _x: &WgpuBuffer,
    _gamma: &WgpuBuffer,
    _mean: &WgpuBuffer,
    _rstd: &WgpuBuffer,
    _dx: &mut WgpuBuffer,
    _dgamma: &mut WgpuBuffer,
    _dbeta: &mut WgpuBuffer,
    _shape: &GroupNormShape,
) -> Result<()> {
    Err(not_yet("groupnorm_backward"))
}
