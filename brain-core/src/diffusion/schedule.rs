//! Beta schedules and ᾱ_t = Π_{s ≤ t} (1 − β_s), as diffusers builds them.
//!
//! Two arithmetics, chosen explicitly:
//! - [`ScheduleArithmetic::F64`]: the formulas in f64 (numpy's `linspace` and
//!   `cumprod`), the values diffusers' code would produce on float64 tensors.
//! - [`ScheduleArithmetic::DiffusersF32`]: diffusers' own float32 construction,
//!   reproduced bit for bit: `torch.linspace(start, end, n, dtype=float32)` (step
//!   `(end − start)/(n − 1)` in f32, element `i < n/2` = fma(step, i, start), the rest
//!   fma(−step, n − 1 − i, end), as the compiled CPU kernel does), squared in f32 for
//!   `scaled_linear`, the cosine betas computed in f64 then rounded to f32,
//!   `alphas = 1 − betas` in f32 and `torch.cumprod` (an f64 accumulator rounded to
//!   f32 at each output). Against diffusers 0.42.1 / torch 2.15 (the committed golden
//!   file) every β and ᾱ of the three schedules matches exactly. The per-step scalars
//!   (√ᾱ, 1 − ᾱ, …) are then computed in f32 too, as diffusers does.

use crate::check::invalid;
use crate::error::Result;
use alloc::format;
use alloc::vec::Vec;

/// diffusers' `beta_schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BetaSchedule {
    /// `linear`: β evenly spaced from `beta_start` to `beta_end`.
    Linear,
    /// `scaled_linear`: √β evenly spaced from √beta_start to √beta_end, then squared.
    ScaledLinear,
    /// `squaredcos_cap_v2`: β_i = min(1 − ᾱ((i+1)/n)/ᾱ(i/n), 0.999) with
    /// ᾱ(t) = cos²((t + 0.008)/1.008 · π/2). Ignores `beta_start` / `beta_end`.
    SquaredCosCapV2,
}

/// Which arithmetic builds the schedule and the per-step scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleArithmetic {
    /// Everything in f64.
    F64,
    /// diffusers' float32 tensors, reproduced exactly (see the module docs).
    DiffusersF32,
}

/// The beta schedule's parameters (diffusers' config fields of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaConfig {
    /// `num_train_timesteps`.
    pub num_train_timesteps: usize,
    /// `beta_schedule`.
    pub schedule: BetaSchedule,
    /// `beta_start`.
    pub beta_start: f64,
    /// `beta_end`.
    pub beta_end: f64,
}

impl BetaConfig {
    /// Stable Diffusion's (and Versatile Diffusion's): scaled_linear 0.00085..0.012, 1000 steps.
    pub const fn stable_diffusion() -> Self {
        BetaConfig {
            num_train_timesteps: 1000,
            schedule: BetaSchedule::ScaledLinear,
            beta_start: 0.00085,
            beta_end: 0.012,
        }
    }
    /// diffusers' default (DDPM paper): linear 0.0001..0.02, 1000 steps.
    pub const fn ddpm_default() -> Self {
        BetaConfig {
            num_train_timesteps: 1000,
            schedule: BetaSchedule::Linear,
            beta_start: 0.0001,
            beta_end: 0.02,
        }
    }
}

/// β_t and ᾱ_t for t = 0..num_train_timesteps (values of the chosen arithmetic,
/// held as f64; in `DiffusersF32` they are exactly representable in f32).
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    arithmetic: ScheduleArithmetic,
}

const OP: &str = "noise_schedule";

/// numpy's `linspace(start, stop, n)` in f64: `i·step + start`, last = stop.
fn linspace_f64(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return alloc::vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

/// torch's CPU `linspace(start, end, n, dtype=float32)`.
fn linspace_torch_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (s, e) = (start as f32, end as f32);
    if n == 1 {
        return alloc::vec![s];
    }
    let step = (e - s) / (n - 1) as f32;
    let half = n / 2;
    (0..n)
        .map(|i| {
            if i < half {
                libm::fmaf(step, i as f32, s)
            } else {
                libm::fmaf(-step, (n - 1 - i) as f32, e)
            }
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar(n, max_beta=0.999, "cosine")`, in f64.
fn cosine_betas(n: usize) -> Vec<f64> {
    let abar = |t: f64| {
        let c = libm::cos((t + 0.008) / 1.008 * core::f64::consts::PI / 2.0);
        c * c
    };
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            let b = 1.0 - abar(t2) / abar(t1);
            if b < 0.999 {
                b
            } else {
                0.999
            }
        })
        .collect()
}

impl NoiseSchedule {
    /// Build the schedule of `cfg` in the given arithmetic.
    pub fn new(cfg: &BetaConfig, arithmetic: ScheduleArithmetic) -> Result<Self> {
        let n = cfg.num_train_timesteps;
        if n == 0 {
            return Err(invalid(OP, "num_train_timesteps must be at least 1".into()));
        }
        if cfg.schedule != BetaSchedule::SquaredCosCapV2 {
            let ok = |b: f64| (0.0..1.0).contains(&b);
            if !ok(cfg.beta_start) || !ok(cfg.beta_end) {
                return Err(invalid(
                    OP,
                    format!(
                        "beta_start {} and beta_end {} must lie in [0, 1)",
                        cfg.beta_start, cfg.beta_end
                    ),
                ));
            }
        }
        let betas: Vec<f64> = match (arithmetic, cfg.schedule) {
            (ScheduleArithmetic::F64, BetaSchedule::Linear) => {
                linspace_f64(cfg.beta_start, cfg.beta_end, n)
            }
            (ScheduleArithmetic::F64, BetaSchedule::ScaledLinear) => {
                linspace_f64(libm::sqrt(cfg.beta_start), libm::sqrt(cfg.beta_end), n)
                    .into_iter()
                    .map(|r| r * r)
                    .collect()
            }
            (ScheduleArithmetic::F64, BetaSchedule::SquaredCosCapV2) => cosine_betas(n),
            (ScheduleArithmetic::DiffusersF32, BetaSchedule::Linear) => {
                linspace_torch_f32(cfg.beta_start, cfg.beta_end, n)
                    .into_iter()
                    .map(f64::from)
                    .collect()
            }
            (ScheduleArithmetic::DiffusersF32, BetaSchedule::ScaledLinear) => {
                linspace_torch_f32(libm::sqrt(cfg.beta_start), libm::sqrt(cfg.beta_end), n)
                    .into_iter()
                    .map(|r| f64::from(r * r))
                    .collect()
            }
            (ScheduleArithmetic::DiffusersF32, BetaSchedule::SquaredCosCapV2) => cosine_betas(n)
                .into_iter()
                .map(|b| f64::from(b as f32))
                .collect(),
        };
        Self::from_betas(betas, arithmetic)
    }

    /// A schedule from explicit betas (each in [0, 1)); ᾱ is their running product of
    /// (1 − β) in the given arithmetic (in `DiffusersF32` the betas are rounded to f32
    /// first).
    pub fn from_betas(betas: Vec<f64>, arithmetic: ScheduleArithmetic) -> Result<Self> {
        if betas.is_empty() {
            return Err(invalid(OP, "at least one beta is needed".into()));
        }
        if let Some((i, b)) = betas
            .iter()
            .enumerate()
            .find(|(_, b)| !(0.0..1.0).contains(*b))
        {
            return Err(invalid(OP, format!("beta[{i}] = {b} must lie in [0, 1)")));
        }
        let mut betas = betas;
        let mut alphas_cumprod = Vec::with_capacity(betas.len());
        match arithmetic {
            ScheduleArithmetic::F64 => {
                let mut acc = 1.0f64;
                for &b in &betas {
                    acc *= 1.0 - b;
                    alphas_cumprod.push(acc);
                }
            }
            ScheduleArithmetic::DiffusersF32 => {
                // torch.cumprod on CPU accumulates float32 in double (acc_type)
                let mut acc = 1.0f64;
                for b in betas.iter_mut() {
                    let b32 = *b as f32;
                    *b = f64::from(b32);
                    acc *= f64::from(1.0f32 - b32);
                    alphas_cumprod.push(f64::from(acc as f32));
                }
            }
        }
        if let Some(t) = alphas_cumprod.iter().position(|&a| !(a > 0.0)) {
            return Err(invalid(
                OP,
                format!("alphas_cumprod[{t}] underflows to 0: the schedule is unusable"),
            ));
        }
        Ok(NoiseSchedule {
            betas,
            alphas_cumprod,
            arithmetic,
        })
    }

    /// β_t.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }
    /// ᾱ_t.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }
    /// Number of training timesteps.
    pub fn num_train_timesteps(&self) -> usize {
        self.betas.len()
    }
    /// The arithmetic the schedule (and the schedulers on it) use.
    pub fn arithmetic(&self) -> ScheduleArithmetic {
        self.arithmetic
    }
    /// ᾱ_t, or an error when `t` is out of range.
    pub fn alpha_cumprod(&self, t: usize) -> Result<f64> {
        self.alphas_cumprod.get(t).copied().ok_or_else(|| {
            invalid(
                OP,
                format!(
                    "timestep {t} is out of range for {} training timesteps",
                    self.betas.len()
                ),
            )
        })
    }
}
