//! cka kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn cka_grams_forward(
    _be: &WgpuBackend,
    _k: &WgpuBuffer,
    _l: &WgpuBuffer,
    _n: usize,
    _estimator: HsicEstimator,
    _out: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("cka_grams_forward"))
}

pub(crate) fn cka_grams_backward(
    _be: &WgpuBackend,
    _k: &WgpuBuffer,
    _l: &WgpuBuffer,
    _n: usize,
    _estimator: HsicEstimator,
    _scale: f64,
    _dk: Option<&mut WgpuBuffer>,
    _dl: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("cka_grams_backward"))
}
