//! The denoising loop, written once against [`Backend`]: a user-supplied denoiser
//! (the UNet lives outside this crate), optional classifier-free guidance, a DDIM or
//! DDPM scheduler, and Philox noise for the stochastic steps.

use super::ddim::DdimScheduler;
use super::ddpm::DdpmScheduler;
use crate::backend::Backend;
use crate::check::invalid;
use crate::error::Result;
use alloc::format;

/// A noise (or x₀ / v) predictor; conditioning is the implementor's state.
pub trait Denoiser<B: Backend> {
    /// Write the model output for `latents` at timestep `t` into `out` (same length).
    fn predict(&mut self, be: &B, latents: &B::Buffer, t: usize, out: &mut B::Buffer)
        -> Result<()>;
}

/// A predictor that produces the unconditional and conditional outputs together
/// (e.g. one batched UNet call on `[uncond; cond]`).
pub trait PairDenoiser<B: Backend> {
    /// Write both predictions for `latents` at `t`.
    fn predict_pair(
        &mut self,
        be: &B,
        latents: &B::Buffer,
        t: usize,
        uncond: &mut B::Buffer,
        cond: &mut B::Buffer,
    ) -> Result<()>;
}

/// Latents to image (the VAE decoder lives outside this crate).
pub trait LatentDecoder<B: Backend> {
    /// Decode `latents` into `image_out`.
    fn decode(&mut self, be: &B, latents: &B::Buffer, image_out: &mut B::Buffer) -> Result<()>;
}

/// What predicts the model output at each step.
pub enum Model<'a, B: Backend> {
    /// One denoiser, no guidance.
    Plain(&'a mut dyn Denoiser<B>),
    /// Classifier-free guidance from two denoiser calls per step:
    /// ε = ε_u + scale·(ε_c − ε_u).
    Guided {
        /// Unconditional predictor.
        uncond: &'a mut dyn Denoiser<B>,
        /// Conditional predictor.
        cond: &'a mut dyn Denoiser<B>,
        /// Guidance scale g.
        scale: f64,
    },
    /// Classifier-free guidance from one call returning both predictions.
    GuidedPair {
        /// The pair predictor.
        model: &'a mut dyn PairDenoiser<B>,
        /// Guidance scale g.
        scale: f64,
    },
}

/// Which update the loop applies.
#[derive(Debug, Clone, Copy)]
pub enum Sampler<'a> {
    /// DDIM with its η (η > 0 draws noise every step).
    Ddim {
        /// The scheduler, with `set_timesteps` called.
        scheduler: &'a DdimScheduler,
        /// η.
        eta: f64,
    },
    /// DDPM (noise at every t > 0).
    Ddpm(&'a DdpmScheduler),
}

/// Philox standard normals for the stochastic steps: step `k` of the loop draws the
/// stream `(seed, offset + k)`, so runs are reproducible on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoiseSource {
    /// Philox key.
    pub seed: u64,
    /// Stream offset of the first step.
    pub offset: u64,
}

/// Progress callback: `(steps done, total steps)`, called after each step.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Run the reverse process over `timesteps` (the scheduler's list, or the tail that
/// [`img2img_timesteps`](super::img2img::img2img_timesteps) returns), updating
/// `latents` in place. Work buffers are allocated once, before the first step.
/// `noise` is required when a step is stochastic (DDIM η > 0, DDPM t > 0).
pub fn sample<B: Backend>(
    be: &B,
    sampler: Sampler<'_>,
    timesteps: &[usize],
    latents: &mut B::Buffer,
    mut model: Model<'_, B>,
    noise: Option<NoiseSource>,
    mut progress: Option<Progress<'_>>,
) -> Result<()> {
    const OP: &str = "sample";
    let n = be.len(latents);
    let total = timesteps.len();
    let stochastic = match sampler {
        Sampler::Ddim { eta, .. } => eta > 0.0 && total > 0,
        Sampler::Ddpm(_) => timesteps.iter().any(|&t| t > 0),
    };
    if stochastic && noise.is_none() {
        return Err(invalid(
            OP,
            "this run draws noise (DDIM eta > 0 or DDPM t > 0): a NoiseSource is required".into(),
        ));
    }
    let mut eps = be.alloc(n)?;
    let mut prev = be.alloc(n)?;
    let mut pair = match model {
        Model::Plain(_) => None,
        _ => Some((be.alloc(n)?, be.alloc(n)?)),
    };
    let mut noise_buf = if stochastic { Some(be.alloc(n)?) } else { None };

    for (k, &t) in timesteps.iter().enumerate() {
        match (&mut model, &mut pair) {
            (Model::Plain(d), _) => d.predict(be, latents, t, &mut eps)?,
            (
                Model::Guided {
                    uncond,
                    cond,
                    scale,
                },
                Some((u, c)),
            ) => {
                uncond.predict(be, latents, t, u)?;
                cond.predict(be, latents, t, c)?;
                be.guidance_combine(u, c, *scale, &mut eps)?;
            }
            (Model::GuidedPair { model, scale }, Some((u, c))) => {
                model.predict_pair(be, latents, t, u, c)?;
                be.guidance_combine(u, c, *scale, &mut eps)?;
            }
            _ => {
                return Err(invalid(
                    OP,
                    format!("internal: guidance buffers missing at step {k}"),
                ))
            }
        }
        let params = match sampler {
            Sampler::Ddim { scheduler, eta } => scheduler.step_params(t, eta)?,
            Sampler::Ddpm(s) => s.step_params(t)?,
        };
        let nz = match (&mut noise_buf, noise) {
            (Some(buf), Some(src)) if params.coef_noise != 0.0 => {
                be.fill_normal(buf, src.seed, src.offset.wrapping_add(k as u64), 0.0, 1.0)?;
                Some(&*buf)
            }
            _ => None,
        };
        be.scheduler_step(&params, &eps, latents, nz, &mut prev, None)?;
        core::mem::swap(latents, &mut prev);
        if let Some(cb) = progress.as_mut() {
            cb(k + 1, total);
        }
    }
    Ok(())
}

/// [`sample`], then `decoder` turns the final latents into `image_out` (HAVIR's last
/// step: the VAE decoder the caller supplies).
#[allow(clippy::too_many_arguments)]
pub fn sample_and_decode<B: Backend>(
    be: &B,
    sampler: Sampler<'_>,
    timesteps: &[usize],
    latents: &mut B::Buffer,
    model: Model<'_, B>,
    noise: Option<NoiseSource>,
    progress: Option<Progress<'_>>,
    decoder: &mut dyn LatentDecoder<B>,
    image_out: &mut B::Buffer,
) -> Result<()> {
    sample(be, sampler, timesteps, latents, model, noise, progress)?;
    decoder.decode(be, latents, image_out)
}
