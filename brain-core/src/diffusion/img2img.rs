//! HAVIR's noise-controlled initialisation: start the reverse process part-way, as
//! diffusers' img2img pipeline does (`StableDiffusionImg2ImgPipeline.get_timesteps`).
//!
//! With N inference steps and strength s ∈ [0, 1]: init_timestep = min(⌊N·s⌋, N),
//! τ = t_start = max(N − init_timestep, 0), the start timestep is timesteps[τ] and the
//! loop runs over timesteps[τ..] (N − τ steps; none when ⌊N·s⌋ = 0). Example (SPEC):
//! N = 50, leading spacing, steps_offset 1, s = 0.75 → τ = 13, t = 721, 37 steps.

use super::noise::noise_coefficients;
use super::schedule::NoiseSchedule;
use crate::backend::Backend;
use crate::check::invalid;
use crate::error::Result;
use alloc::format;
use alloc::vec::Vec;

/// Where an img2img / HAVIR run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Img2ImgStart {
    /// min(⌊N·s⌋, N).
    pub init_timestep: usize,
    /// τ = max(N − init_timestep, 0), an index into the full timestep list.
    pub t_start: usize,
    /// The remaining timesteps, `timesteps[τ..]` (may be empty).
    pub timesteps: Vec<usize>,
}

impl Img2ImgStart {
    /// The first timestep (the noise level of the start), if any step remains.
    pub fn start_timestep(&self) -> Option<usize> {
        self.timesteps.first().copied()
    }
    /// Number of denoising steps left.
    pub fn num_steps(&self) -> usize {
        self.timesteps.len()
    }
}

/// The img2img start for a scheduler's full `timesteps` list (set with
/// `set_timesteps(num_inference_steps)`) and `strength` ∈ [0, 1] (diffusers rejects
/// anything else). ⌊N·s⌋ is Python's `int(N * s)` in f64.
pub fn img2img_timesteps(
    timesteps: &[usize],
    num_inference_steps: usize,
    strength: f64,
) -> Result<Img2ImgStart> {
    const OP: &str = "img2img_timesteps";
    if !(0.0..=1.0).contains(&strength) {
        return Err(invalid(
            OP,
            format!("strength {strength} must lie in [0, 1]"),
        ));
    }
    let n = num_inference_steps;
    let init_timestep = ((n as f64 * strength) as usize).min(n);
    let t_start = n.saturating_sub(init_timestep);
    let timesteps = timesteps.get(t_start..).unwrap_or(&[]).to_vec();
    Ok(Img2ImgStart {
        init_timestep,
        t_start,
        timesteps,
    })
}

/// z = √ᾱ_t·z' + √(1 − ᾱ_t)·ε at the start timestep `t` (every sample of the batch at
/// the same `t`; `out` as long as `z_prime`).
pub fn noisy_start<B: Backend>(
    be: &B,
    schedule: &NoiseSchedule,
    z_prime: &B::Buffer,
    noise: &B::Buffer,
    t: usize,
    out: &mut B::Buffer,
) -> Result<()> {
    let (a, b) = noise_coefficients(schedule, t)?;
    be.add_noise(z_prime, noise, &[a], &[b], out)
}
