//! Forward diffusion: z_t = √ᾱ_t·z₀ + √(1 − ᾱ_t)·ε (diffusers' `add_noise`).

use super::schedule::{NoiseSchedule, ScheduleArithmetic};
use crate::backend::Backend;
use crate::error::Result;
use alloc::vec::Vec;

/// (√ᾱ_t, √(1 − ᾱ_t)) in the schedule's arithmetic (diffusers: float32 tensors).
pub fn noise_coefficients(schedule: &NoiseSchedule, t: usize) -> Result<(f64, f64)> {
    let a = schedule.alpha_cumprod(t)?;
    Ok(match schedule.arithmetic() {
        ScheduleArithmetic::F64 => (libm::sqrt(a), libm::sqrt(1.0 - a)),
        ScheduleArithmetic::DiffusersF32 => {
            let a = a as f32;
            (
                f64::from(num_traits::Float::sqrt(a)),
                f64::from(num_traits::Float::sqrt(1.0 - a)),
            )
        }
    })
}

/// `out[b] = √ᾱ_{t_b}·x0[b] + √(1 − ᾱ_{t_b})·noise[b]` with one timestep per sample
/// (`timesteps.len()` samples splitting the buffers evenly).
pub fn add_noise<B: Backend>(
    be: &B,
    schedule: &NoiseSchedule,
    x0: &B::Buffer,
    noise: &B::Buffer,
    timesteps: &[usize],
    out: &mut B::Buffer,
) -> Result<()> {
    let mut sa = Vec::with_capacity(timesteps.len());
    let mut sb = Vec::with_capacity(timesteps.len());
    for &t in timesteps {
        let (a, b) = noise_coefficients(schedule, t)?;
        sa.push(a);
        sb.push(b);
    }
    be.add_noise(x0, noise, &sa, &sb, out)
}
