//! random kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn dropout_forward(
    _be: &WgpuBackend,
    _d: &Dropout,
    _x: &WgpuBuffer,
    _y: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("dropout_forward"))
}

pub(crate) fn dropout_backward(
    _be: &WgpuBackend,
    _d: &Dropout,
    _dy: &WgpuBuffer,
    _dx: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("dropout_backward"))
}

pub(crate) fn fill_uniform(
    _be: &WgpuBackend,
    _out: &mut WgpuBuffer,
    _seed: u64,
    _offset: u64,
) -> Result<()> {
    Err(not_yet("fill_uniform"))
}

pub(crate) fn fill_normal(
    _be: &WgpuBackend,
    _out: &mut WgpuBuffer,
    _seed: u64,
    _offset: u64,
    _mean: f64,
    _std: f64,
) -> Result<()> {
    Err(not_yet("fill_normal"))
}

pub(crate) fn philox_bits(
    _be: &WgpuBackend,
    _out: &mut WgpuBuffer,
    _seed: u64,
    _offset: u64,
) -> Result<()> {
    Err(not_yet("philox_bits"))
}
