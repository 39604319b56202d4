//! DDIM (Song et al. 2021) as diffusers' `DDIMScheduler` computes it.

use super::schedule::{BetaConfig, NoiseSchedule, ScheduleArithmetic};
use super::timesteps::{inference_timesteps, TimestepSpacing};
use crate::backend::Backend;
use crate::check::invalid;
use crate::element::Element;
use crate::error::Result;
use crate::ops::{PredictionType, SchedulerStep};
use alloc::format;
use alloc::vec::Vec;

const OP: &str = "ddim_step";

/// Every `DDIMScheduler` option this crate supports, explicit (no defaults guessed;
/// [`DdimConfig::versatile_diffusion`] is the one named preset). Thresholding and
/// `rescale_betas_zero_snr` are not supported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdimConfig {
    /// The beta schedule.
    pub beta: BetaConfig,
    /// f64 formulas or diffusers' float32 tensors.
    pub arithmetic: ScheduleArithmetic,
    /// `prediction_type`.
    pub prediction_type: PredictionType,
    /// `clip_sample` with `clip_sample_range` (None = `clip_sample=False`).
    pub clip_sample: Option<f64>,
    /// `set_alpha_to_one`: ᾱ_prev after the last step is 1 (true) or ᾱ_0 (false).
    pub set_alpha_to_one: bool,
    /// `steps_offset` (leading spacing only).
    pub steps_offset: usize,
    /// `timestep_spacing`.
    pub timestep_spacing: TimestepSpacing,
}

impl DdimConfig {
    /// Versatile Diffusion's DDIM: scaled_linear 0.00085..0.012 over 1000 steps,
    /// epsilon, clip_sample false, set_alpha_to_one false, steps_offset 1, leading.
    pub const fn versatile_diffusion(arithmetic: ScheduleArithmetic) -> Self {
        DdimConfig {
            beta: BetaConfig::stable_diffusion(),
            arithmetic,
            prediction_type: PredictionType::Epsilon,
            clip_sample: None,
            set_alpha_to_one: false,
            steps_offset: 1,
            timestep_spacing: TimestepSpacing::Leading,
        }
    }
}

/// A DDIM scheduler: the schedule, the inference timesteps and the host-side scalars
/// of each step; the element-wise update runs on a [`Backend`].
#[derive(Debug, Clone)]
pub struct DdimScheduler {
    cfg: DdimConfig,
    schedule: NoiseSchedule,
    final_alpha_cumprod: f64,
    num_inference_steps: Option<usize>,
    timesteps: Vec<usize>,
}

/// (coef_x0, coef_eps, std_dev) of one DDIM step in the element type `T`, with
/// diffusers' operation order.
fn ddim_scalars<T: Element>(a_t: f64, a_prev: f64, eta: f64) -> Result<(f64, f64, f64)> {
    let one = T::one();
    let (at, ap, eta_t) = (T::from_f64(a_t), T::from_f64(a_prev), T::from_f64(eta));
    let beta_prod_t = one - at;
    let beta_prod_t_prev = one - ap;
    let variance = (beta_prod_t_prev / beta_prod_t) * (one - at / ap);
    let std = eta_t * variance.sqrt();
    let mut dir = one - ap - std * std;
    if dir < T::zero() {
        if eta > 1.0 {
            return Err(invalid(
                OP,
                format!("eta {eta} > 1 makes 1 − ᾱ_prev − σ² negative"),
            ));
        }
        dir = T::zero(); // rounding only: the exact value is ≥ 0 for eta ≤ 1
    }
    Ok((ap.sqrt().to_f64(), dir.sqrt().to_f64(), std.to_f64()))
}

impl DdimScheduler {
    /// A scheduler for `cfg` (timesteps unset until [`set_timesteps`](Self::set_timesteps)).
    pub fn new(cfg: DdimConfig) -> Result<Self> {
        if let Some(r) = cfg.clip_sample {
            if !(r > 0.0) {
                return Err(invalid(
                    OP,
                    format!("clip_sample range {r} must be positive"),
                ));
            }
        }
        let schedule = NoiseSchedule::new(&cfg.beta, cfg.arithmetic)?;
        let final_alpha_cumprod = if cfg.set_alpha_to_one {
            1.0
        } else {
            schedule.alphas_cumprod()[0]
        };
        Ok(DdimScheduler {
            cfg,
            schedule,
            final_alpha_cumprod,
            num_inference_steps: None,
            timesteps: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DdimConfig {
        &self.cfg
    }
    /// The noise schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }
    /// ᾱ used after the last step (1 or ᾱ_0).
    pub fn final_alpha_cumprod(&self) -> f64 {
        self.final_alpha_cumprod
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

    /// The inference timesteps, descending (empty before `set_timesteps`).
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The number of inference steps set, if any.
    pub fn num_inference_steps(&self) -> Option<usize> {
        self.num_inference_steps
    }

    /// diffusers' previous timestep: `t − T // N` for every spacing (negative means
    /// "use the final ᾱ").
    pub fn previous_timestep(&self, t: usize) -> Result<i64> {
        let n = self
            .num_inference_steps
            .ok_or_else(|| invalid(OP, "set_timesteps must be called before stepping".into()))?;
        Ok(t as i64 - (self.schedule.num_train_timesteps() / n) as i64)
    }

    /// The host scalars of the step at `t` with DDIM's `eta` (σ_t = η·√variance):
    /// coef_x0 = √ᾱ_prev, coef_eps = √(1 − ᾱ_prev − σ²), coef_noise = σ when η > 0.
    pub fn step_params(&self, t: usize, eta: f64) -> Result<SchedulerStep> {
        if !(eta >= 0.0 && eta.is_finite()) {
            return Err(invalid(OP, format!("eta {eta} must be finite and ≥ 0")));
        }
        let prev = self.previous_timestep(t)?;
        let a_t = self.schedule.alpha_cumprod(t)?;
        let a_prev = if prev >= 0 {
            self.schedule.alpha_cumprod(prev as usize)?
        } else {
            self.final_alpha_cumprod
        };
        let (coef_x0, coef_eps, std) = match self.cfg.arithmetic {
            ScheduleArithmetic::F64 => ddim_scalars::<f64>(a_t, a_prev, eta)?,
            ScheduleArithmetic::DiffusersF32 => ddim_scalars::<f32>(a_t, a_prev, eta)?,
        };
        Ok(SchedulerStep {
            prediction: self.cfg.prediction_type,
            alpha_prod_t: a_t,
            clip_sample: self.cfg.clip_sample,
            coef_x0,
            coef_eps,
            coef_sample: 0.0,
            coef_noise: if eta > 0.0 { std } else { 0.0 },
        })
    }

    /// One DDIM step on the backend: `prev_sample` from `model_output` at `t`;
    /// `noise` (the variance noise) is required when `eta > 0` and ignored otherwise;
    /// `pred_x0` receives x̂₀ when given.
    #[allow(clippy::too_many_arguments)]
    pub fn step<B: Backend>(
        &self,
        be: &B,
        model_output: &B::Buffer,
        t: usize,
        sample: &B::Buffer,
        eta: f64,
        noise: Option<&B::Buffer>,
        prev_sample: &mut B::Buffer,
        pred_x0: Option<&mut B::Buffer>,
    ) -> Result<()> {
        let p = self.step_params(t, eta)?;
        be.scheduler_step(&p, model_output, sample, noise, prev_sample, pred_x0)
    }
}
