//! DDPM (Ho et al. 2020) as diffusers' `DDPMScheduler` computes it.

use super::schedule::{BetaConfig, NoiseSchedule, ScheduleArithmetic};
use super::timesteps::{inference_timesteps, TimestepSpacing};
use crate::backend::Backend;
use crate::check::invalid;
use crate::element::Element;
use crate::error::Result;
use crate::ops::{PredictionType, SchedulerStep};
use alloc::format;
use alloc::vec::Vec;

const OP: &str = "ddpm_step";

/// diffusers' `variance_type` (the two fixed ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VarianceType {
    /// `fixed_small`: β̃_t = (1 − ᾱ_prev)/(1 − ᾱ_t)·β_t, clamped below at 1e-20.
    FixedSmall,
    /// `fixed_large`: β_t = 1 − ᾱ_t/ᾱ_prev.
    FixedLarge,
}

/// Every `DDPMScheduler` option this crate supports, explicit. Thresholding, the
/// learned variances and `fixed_small_log` are not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdpmConfig {
    /// The beta schedule.
    pub beta: BetaConfig,
    /// f64 formulas or diffusers' float32 tensors.
    pub arithmetic: ScheduleArithmetic,
    /// `prediction_type`.
    pub prediction_type: PredictionType,
    /// `variance_type`.
    pub variance_type: VarianceType,
    /// `clip_sample` with `clip_sample_range` (None = `clip_sample=False`; diffusers'
    /// DDPM default is `Some(1.0)`).
    pub clip_sample: Option<f64>,
    /// `steps_offset` (leading spacing only).
    pub steps_offset: usize,
    /// `timestep_spacing`.
    pub timestep_spacing: TimestepSpacing,
}

impl DdpmConfig {
    /// diffusers' `DDPMScheduler()` defaults: linear 0.0001..0.02 over 1000 steps,
    /// fixed_small, clip_sample to [−1, 1], epsilon, leading, steps_offset 0.
    pub const fn diffusers_default(arithmetic: ScheduleArithmetic) -> Self {
        DdpmConfig {
            beta: BetaConfig::ddpm_default(),
            arithmetic,
            prediction_type: PredictionType::Epsilon,
            variance_type: VarianceType::FixedSmall,
            clip_sample: Some(1.0),
            steps_offset: 0,
            timestep_spacing: TimestepSpacing::Leading,
        }
    }
}

/// A DDPM scheduler: schedule, timesteps and the host-side scalars of each step.
#[derive(Debug, Clone)]
pub struct DdpmScheduler {
    cfg: DdpmConfig,
    schedule: NoiseSchedule,
    num_inference_steps: Option<usize>,
    timesteps: Vec<usize>,
}

/// (coef_x0, coef_sample, std) of one DDPM step in `T`, diffusers' operation order.
fn ddpm_scalars<T: Element>(
    a_t: f64,
    a_prev: f64,
    variance_type: VarianceType,
    adds_noise: bool,
) -> (f64, f64, f64) {
    let one = T::one();
    let (at, ap) = (T::from_f64(a_t), T::from_f64(a_prev));
    let beta_prod_t = one - at;
    let beta_prod_t_prev = one - ap;
    let current_alpha_t = at / ap;
    let current_beta_t = one - current_alpha_t;
    let coef_x0 = (ap.sqrt() * current_beta_t) / beta_prod_t;
    let coef_sample = current_alpha_t.sqrt() * beta_prod_t_prev / beta_prod_t;
    let std = if !adds_noise {
        T::zero()
    } else {
        match variance_type {
            VarianceType::FixedSmall => {
                let v = (one - ap) / (one - at) * current_beta_t;
                let floor = T::from_f64(1e-20);
                (if v < floor { floor } else { v }).sqrt()
            }
            VarianceType::FixedLarge => current_beta_t.sqrt(),
        }
    };
    (coef_x0.to_f64(), coef_sample.to_f64(), std.to_f64())
}

impl DdpmScheduler {
    /// A scheduler for `cfg`; until [`set_timesteps`](Self::set_timesteps) the
    /// timesteps are every training timestep, descending, and prev(t) = t − 1.
    pub fn new(cfg: DdpmConfig) -> Result<Self> {
        if let Some(r) = cfg.clip_sample {
            if !(r > 0.0) {
                return Err(invalid(
                    OP,
                    format!("clip_sample range {r} must be positive"),
                ));
            }
        }
        let schedule = NoiseSchedule::new(&cfg.beta, cfg.arithmetic)?;
        let timesteps = (0..schedule.num_train_timesteps()).rev().collect();
        Ok(DdpmScheduler {
            cfg,
            schedule,
            num_inference_steps: None,
            timesteps,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DdpmConfig {
        &self.cfg
    }
    /// The noise schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// Build the `n`-step timestep list (diffusers' `set_timesteps(n)`).
    pub fn set_timesteps(&mut self, n: usize) -> Result<()> {
        self.timesteps = inference_timesteps(
            self.schedule.num_train_timesteps(),
            n,
            self.cfg.timestep_spacing,
            self.cfg.steps_offset,
        )?;
        self.num_inference_steps = Some(n);
        Ok(())
    }

    /// The timesteps, descending.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The number of inference steps set, if any.
    pub fn num_inference_steps(&self) -> Option<usize> {
        self.num_inference_steps
    }

    /// diffusers' `previous_timestep`: after `set_timesteps`, the next entry of the
    /// list (`None` = −1 after the last; an error for a `t` not in the list); before,
    /// `t − 1`.
    pub fn previous_timestep(&self, t: usize) -> Result<Option<usize>> {
        if self.num_inference_steps.is_none() {
            return Ok(t.checked_sub(1));
        }
        let i = self.timesteps.iter().position(|&s| s == t).ok_or_else(|| {
            invalid(
                OP,
                format!("timestep {t} is not in the inference timesteps"),
            )
        })?;
        Ok(self.timesteps.get(i + 1).copied())
    }

    /// The host scalars of the step at `t`: coef_x0 = √ᾱ_prev·β_t/(1 − ᾱ_t),
    /// coef_sample = √α_t·(1 − ᾱ_prev)/(1 − ᾱ_t) with α_t = ᾱ_t/ᾱ_prev, β_t = 1 − α_t,
    /// coef_noise = the standard deviation of the variance type when t > 0, else 0.
    pub fn step_params(&self, t: usize) -> Result<SchedulerStep> {
        let a_t = self.schedule.alpha_cumprod(t)?;
        let a_prev = match self.previous_timestep(t)? {
            Some(p) => self.schedule.alpha_cumprod(p)?,
            None => 1.0,
        };
        let (coef_x0, coef_sample, std) = match self.cfg.arithmetic {
            ScheduleArithmetic::F64 => {
                ddpm_scalars::<f64>(a_t, a_prev, self.cfg.variance_type, t > 0)
            }
            ScheduleArithmetic::DiffusersF32 => {
                ddpm_scalars::<f32>(a_t, a_prev, self.cfg.variance_type, t > 0)
            }
        };
        Ok(SchedulerStep {
            prediction: self.cfg.prediction_type,
            alpha_prod_t: a_t,
            clip_sample: self.cfg.clip_sample,
            coef_x0,
            coef_eps: 0.0,
            coef_sample,
            coef_noise: std,
        })
    }

    /// One DDPM step on the backend; `noise` (standard normal) is required when
    /// t > 0 and ignored at t = 0; `pred_x0` receives x̂₀ when given.
    #[allow(clippy::too_many_arguments)]
    pub fn step<B: Backend>(
        &self,
        be: &B,
        model_output: &B::Buffer,
        t: usize,
        sample: &B::Buffer,
        noise: Option<&B::Buffer>,
        prev_sample: &mut B::Buffer,
        pred_x0: Option<&mut B::Buffer>,
    ) -> Result<()> {
        let p = self.step_params(t)?;
        be.scheduler_step(&p, model_output, sample, noise, prev_sample, pred_x0)
    }
}
