//! sims kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn sims_forward(
    _be: &WgpuBackend,
    _a: &WgpuBuffer,
    _b: &WgpuBuffer,
    _batch: usize,
    _tokens: usize,
    _dim: usize,
    _loss: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("sims_forward"))
}

pub(crate) fn sims_backward(
    _be: &WgpuBackend,
    _a: &WgpuBuffer,
    _b: &WgpuBuffer,
    _batch: usize,
    _tokens: usize,
    _dim: usize,
    _scale: f64,
    _da: Option<&mut WgpuBuffer>,
    _db: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("sims_backward"))
}
