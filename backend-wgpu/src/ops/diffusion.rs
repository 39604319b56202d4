//! diffusion kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn scheduler_step(
    _be: &WgpuBackend,
    _step: &SchedulerStep,
    _model_output: &WgpuBuffer,
    _sample: &WgpuBuffer,
    _noise: Option<&WgpuBuffer>,
    _prev_sample: &mut WgpuBuffer,
    _pred_x0: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("scheduler_step"))
}

pub(crate) fn add_noise(
    _be: &WgpuBackend,
    _x0: &WgpuBuffer,
    _noise: &WgpuBuffer,
    _sqrt_alpha_prod: &[f64],
    _sqrt_one_minus_alpha_prod: &[f64],
    _out: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("add_noise"))
}

pub(crate) fn guidance_combine(
    _be: &WgpuBackend,
    _uncond: &WgpuBuffer,
    _cond: &WgpuBuffer,
    _scale: f64,
    _out: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("guidance_combine"))
}
