//! Diffusion scheduler arithmetic (diffusers-compatible) and the sampling loop.
//!
//! Host-side scalars (schedules, timesteps, per-step coefficients) are computed here,
//! once per step; the element-wise work runs on a [`Backend`](crate::Backend) through
//! `scheduler_step`, `add_noise` and `guidance_combine`. Every diffusers option is
//! explicit in the configs; the arithmetic (f64 formulas, or diffusers' float32
//! tensors reproduced exactly) is a choice too, see [`schedule`].
//!
//! diffusers quirks kept on purpose: DDIM's previous timestep is `t − T // N` for
//! every spacing; DDPM's is the next entry of its list (−1 after the last); trailing
//! and linspace spacings ignore `steps_offset`; DDPM's small variance is clamped at
//! 1e-20 and adds no noise at t = 0; DDIM's ε̂ comes from the unclipped prediction
//! (`use_clipped_model_output=False`).

pub mod ddim;
pub mod ddpm;
pub mod guidance;
pub mod img2img;
pub mod noise;
pub mod sampler;
pub mod schedule;
pub mod timesteps;

pub use ddim::{DdimConfig, DdimScheduler};
pub use ddpm::{DdpmConfig, DdpmScheduler, VarianceType};
pub use guidance::classifier_free_guidance;
pub use img2img::{img2img_timesteps, noisy_start, Img2ImgStart};
pub use noise::{add_noise, noise_coefficients};
pub use sampler::{
    sample, sample_and_decode, Denoiser, LatentDecoder, Model, NoiseSource, PairDenoiser, Progress,
    Sampler,
};
pub use schedule::{BetaConfig, BetaSchedule, NoiseSchedule, ScheduleArithmetic};
pub use timesteps::{inference_timesteps, TimestepSpacing};
