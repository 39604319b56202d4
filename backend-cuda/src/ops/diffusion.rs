//! Diffusion scheduler kernels (`kernels/diffusion.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/diffusion.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{Result, SchedulerStep};

/// One fused DDPM/DDIM update; `pred_x0` receives x̂₀ when given.
pub(crate) fn scheduler_step(
    dev: &Device,
    step: &SchedulerStep,
    model_output: &CudaBuffer,
    sample: &CudaBuffer,
    noise: Option<&CudaBuffer>,
    prev_sample: &mut CudaBuffer,
    pred_x0: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("scheduler_step"))
}

/// `out[b] = sqrt_alpha_prod[b]·x0[b] + sqrt_one_minus_alpha_prod[b]·noise[b]` per sample.
pub(crate) fn add_noise(
    dev: &Device,
    x0: &CudaBuffer,
    noise: &CudaBuffer,
    sqrt_alpha_prod: &[f64],
    sqrt_one_minus_alpha_prod: &[f64],
    out: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("add_noise"))
}

/// `out = uncond + scale·(cond − uncond)`.
pub(crate) fn guidance_combine(
    dev: &Device,
    uncond: &CudaBuffer,
    cond: &CudaBuffer,
    scale: f64,
    out: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("guidance_combine"))
}
