//! Scheduler kernels and arithmetic against diffusers (`schedulers.json`).
//!
//! diffusers computes in float32. An f32 backend is run with the schedulers in
//! [`ScheduleArithmetic::DiffusersF32`] (diffusers' float32 β and ᾱ reproduced bit for
//! bit, per-step scalars in f32) and compared with the plain float32 outputs; the
//! inputs were drawn in float32, so nothing is rounded on the way in, and both sides
//! err by a few float32 roundings per term: the tolerance is 16·u·Σ|terms| per
//! element (see [`step_magnitudes`]), which also covers diffusers' own cancellation
//! for prediction "sample" at t = 1 (ε̂ divides by √(1 − ᾱ₁) ≈ 0.04). An f64 backend
//! is run in [`ScheduleArithmetic::F64`] and compared with the `*_f64` outputs
//! (diffusers' code on float64 tensors) to 16·u·Σ|terms| (u = 2⁻⁵³: ~1e-14).
//!
//! The host-side parts (schedules, timestep lists, previous timesteps, img2img
//! starts) are backend-independent and checked exactly on every run, in both
//! arithmetics.

use crate::data::{down, up};
use crate::golden::{load, Case, SCHEDULERS_JSON};
use crate::kernels::diffusion::{step_magnitudes, STEP_WHY};
use crate::tolerance::{check_close, check_close_with, unit_roundoff, Tol};
use brain_core::diffusion::{
    img2img_timesteps, noise_coefficients, BetaConfig, BetaSchedule, DdimConfig, DdimScheduler,
    DdpmConfig, DdpmScheduler, NoiseSchedule, ScheduleArithmetic, TimestepSpacing, VarianceType,
};
use brain_core::{Backend, PredictionType};

fn s<'a>(c: &'a Case, k: &str) -> Result<&'a str, String> {
    c.params
        .get(k)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("param `{k}` missing"))
}
fn b(c: &Case, k: &str) -> Result<bool, String> {
    c.params
        .get(k)
        .and_then(|v| v.as_bool())
        .ok_or_else(|| format!("param `{k}` missing"))
}
fn f(c: &Case, k: &str) -> Result<f64, String> {
    c.f(k).ok_or_else(|| format!("param `{k}` missing"))
}

fn beta_config(c: &Case) -> Result<BetaConfig, String> {
    Ok(BetaConfig {
        num_train_timesteps: c.p("num_train_timesteps"),
        schedule: match s(c, "beta_schedule")? {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2,
            o => return Err(format!("unknown beta_schedule {o}")),
        },
        beta_start: f(c, "beta_start")?,
        beta_end: f(c, "beta_end")?,
    })
}

fn spacing(c: &Case) -> Result<TimestepSpacing, String> {
    Ok(match s(c, "timestep_spacing")? {
        "leading" => TimestepSpacing::Leading,
        "trailing" => TimestepSpacing::Trailing,
        "linspace" => TimestepSpacing::Linspace,
        o => return Err(format!("unknown timestep_spacing {o}")),
    })
}

fn prediction(c: &Case) -> Result<PredictionType, String> {
    Ok(match s(c, "prediction_type")? {
        "epsilon" => PredictionType::Epsilon,
        "v_prediction" => PredictionType::VPrediction,
        "sample" => PredictionType::Sample,
        o => return Err(format!("unknown prediction_type {o}")),
    })
}

fn clip(c: &Case) -> Result<Option<f64>, String> {
    Ok(if b(c, "clip_sample")? {
        Some(c.f("clip_sample_range").unwrap_or(1.0))
    } else {
        None
    })
}

fn exact_usize(what: &str, got: &[usize], want: &[f64]) -> Result<(), String> {
    let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    check_close(
        what,
        &got,
        want,
        Tol::exact("integer timesteps: diffusers' exact list"),
    )
}

/// Check `be` against every case of its kernels in the golden file.
pub fn check<B: Backend>(be: &B) {
    let file = load(SCHEDULERS_JSON);
    let u = unit_roundoff::<B::Elem>();
    let f32_like = u > 1e-10;
    let mut failures = Vec::new();
    for case in &file.cases {
        if let Err(msg) = run_case(be, case, u, f32_like) {
            failures.push(format!("{} ({}): {msg}", case.name, case.kernel));
        }
    }
    assert!(
        failures.is_empty(),
        "{} scheduler golden case(s) failed on {}:\n{}",
        failures.len(),
        be.name(),
        failures.join("\n")
    );
}

fn run_case<B: Backend>(be: &B, c: &Case, u: f64, f32_like: bool) -> Result<(), String> {
    let e = |e: brain_core::BrainError| e.to_string();
    let arith = if f32_like {
        ScheduleArithmetic::DiffusersF32
    } else {
        ScheduleArithmetic::F64
    };
    // output-name suffix of the golden values this backend is compared with
    let sfx = if f32_like { "" } else { "_f64" };
    // measured worst case on the committed file: 4.6·u·Σ|terms| (f32 CPU, f32 and f64
    // reference); 16 leaves a factor 3.5
    let (k_prev, k_x0) = (16.0, 16.0);
    match c.kernel.as_str() {
        "schedule" => {
            let cfg = beta_config(c)?;
            let s32 = NoiseSchedule::new(&cfg, ScheduleArithmetic::DiffusersF32).map_err(e)?;
            let why = "torch's float32 linspace / cumprod reproduced bit for bit";
            // The golden values are float32 numbers; serde_json (without its
            // `float_roundtrip` feature) may parse them 1 f64-ulp off, so compare after
            // rounding both sides to f32.
            let f32s = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| x as f32 as f64).collect() };
            check_close(
                "betas (f32)",
                s32.betas(),
                &f32s(c.t("betas")),
                Tol::exact(why),
            )?;
            check_close(
                "alphas_cumprod (f32)",
                s32.alphas_cumprod(),
                &f32s(c.t("alphas_cumprod")),
                Tol::exact(why),
            )?;
            let s64 = NoiseSchedule::new(&cfg, ScheduleArithmetic::F64).map_err(e)?;
            let u64_ = f64::EPSILON / 2.0;
            check_close(
                "betas_f64",
                s64.betas(),
                c.t("betas_f64"),
                Tol::new(
                    4.0 * u64_,
                    4.0 * u64_,
                    "f64 formulas; the cosine betas 1 − ᾱ(t₂)/ᾱ(t₁) take libm's cos (≤ 1 ulp \
                     from glibc's): an absolute error of a few u",
                ),
            )?;
            check_close(
                "alphas_cumprod_f64",
                s64.alphas_cumprod(),
                c.t("alphas_cumprod_f64"),
                Tol::new(
                    0.0,
                    1e3 * u64_,
                    "a product of ≤ 1000 factors, each within a few u",
                ),
            )
        }
        "timesteps" => {
            let (n, off) = (c.p("num_inference_steps"), c.p("steps_offset"));
            let cfg_ddim = DdimConfig {
                beta: BetaConfig {
                    num_train_timesteps: c.p("num_train_timesteps"),
                    ..BetaConfig::ddpm_default()
                },
                arithmetic: ScheduleArithmetic::F64,
                prediction_type: PredictionType::Epsilon,
                clip_sample: None,
                set_alpha_to_one: true,
                steps_offset: off,
                timestep_spacing: spacing(c)?,
            };
            let mut ddim = DdimScheduler::new(cfg_ddim).map_err(e)?;
            ddim.set_timesteps(n).map_err(e)?;
            exact_usize("timesteps (ddim)", ddim.timesteps(), c.t("timesteps"))?;
            let prev: Vec<f64> = ddim
                .timesteps()
                .iter()
                .map(|&t| ddim.previous_timestep(t).map(|p| p as f64))
                .collect::<Result<_, _>>()
                .map_err(e)?;
            check_close(
                "ddim_prev_timesteps",
                &prev,
                c.t("ddim_prev_timesteps"),
                Tol::exact("t − T // N"),
            )?;
            let mut ddpm = DdpmScheduler::new(DdpmConfig {
                beta: cfg_ddim.beta,
                arithmetic: ScheduleArithmetic::F64,
                prediction_type: PredictionType::Epsilon,
                variance_type: VarianceType::FixedSmall,
                clip_sample: Some(1.0),
                steps_offset: off,
                timestep_spacing: cfg_ddim.timestep_spacing,
            })
            .map_err(e)?;
            ddpm.set_timesteps(n).map_err(e)?;
            if b(c, "same_for_ddpm")? {
                exact_usize("timesteps (ddpm)", ddpm.timesteps(), c.t("timesteps"))?;
            }
            let prev: Vec<f64> = ddpm
                .timesteps()
                .iter()
                .map(|&t| {
                    ddpm.previous_timestep(t)
                        .map(|p| p.map_or(-1.0, |p| p as f64))
                })
                .collect::<Result<_, _>>()
                .map_err(e)?;
            check_close(
                "ddpm_prev_timesteps",
                &prev,
                c.t("ddpm_prev_timesteps"),
                Tol::exact("next entry of the list, −1 after the last"),
            )
        }
        "ddim_step" => {
            let mut sched = DdimScheduler::new(DdimConfig {
                beta: beta_config(c)?,
                arithmetic: arith,
                prediction_type: prediction(c)?,
                clip_sample: clip(c)?,
                set_alpha_to_one: b(c, "set_alpha_to_one")?,
                steps_offset: c.p("steps_offset"),
                timestep_spacing: spacing(c)?,
            })
            .map_err(e)?;
            sched.set_timesteps(c.p("num_inference_steps")).map_err(e)?;
            let t = c.p("timestep");
            if sched.timesteps()[c.p("timestep_index")] != t {
                return Err(format!("timestep_index does not give t = {t}"));
            }
            let prev_t = sched.previous_timestep(t).map_err(e)?;
            if prev_t != c.params["prev_timestep"].as_i64().unwrap_or(i64::MIN) {
                return Err(format!("previous timestep {prev_t}"));
            }
            let eta = f(c, "eta")?;
            let step = sched.step_params(t, eta).map_err(e)?;
            let (m, x) = (c.t("model_output"), c.t("sample"));
            let noise = (eta > 0.0).then(|| c.t("variance_noise"));
            let n = m.len();
            let (mb, xb) = (up(be, m), up(be, x));
            let nb = noise.map(|v| up(be, v));
            let (mut pb, mut x0b) = (be.alloc(n).map_err(e)?, be.alloc(n).map_err(e)?);
            sched
                .step(be, &mb, t, &xb, eta, nb.as_ref(), &mut pb, Some(&mut x0b))
                .map_err(e)?;
            compare_step(be, c, &step, m, x, noise, &pb, &x0b, sfx, u, k_prev, k_x0)
        }
        "ddpm_step" => {
            let mut sched = DdpmScheduler::new(DdpmConfig {
                beta: beta_config(c)?,
                arithmetic: arith,
                prediction_type: prediction(c)?,
                variance_type: match s(c, "variance_type")? {
                    "fixed_small" => VarianceType::FixedSmall,
                    "fixed_large" => VarianceType::FixedLarge,
                    o => return Err(format!("unknown variance_type {o}")),
                },
                clip_sample: clip(c)?,
                steps_offset: c.p("steps_offset"),
                timestep_spacing: spacing(c)?,
            })
            .map_err(e)?;
            sched.set_timesteps(c.p("num_inference_steps")).map_err(e)?;
            let t = c.p("timestep");
            let prev_t = sched
                .previous_timestep(t)
                .map_err(e)?
                .map_or(-1, |p| p as i64);
            if prev_t != c.params["prev_timestep"].as_i64().unwrap_or(i64::MIN) {
                return Err(format!("previous timestep {prev_t}"));
            }
            let step = sched.step_params(t).map_err(e)?;
            if (step.coef_noise != 0.0) != b(c, "adds_noise")? {
                return Err(format!(
                    "coef_noise {} disagrees with adds_noise",
                    step.coef_noise
                ));
            }
            let (m, x) = (c.t("model_output"), c.t("sample"));
            // at t = 0 nothing is drawn: pass no noise at all
            let noise = (step.coef_noise != 0.0).then(|| c.t("noise"));
            let n = m.len();
            let (mb, xb) = (up(be, m), up(be, x));
            let nb = noise.map(|v| up(be, v));
            let (mut pb, mut x0b) = (be.alloc(n).map_err(e)?, be.alloc(n).map_err(e)?);
            sched
                .step(be, &mb, t, &xb, nb.as_ref(), &mut pb, Some(&mut x0b))
                .map_err(e)?;
            compare_step(be, c, &step, m, x, noise, &pb, &x0b, sfx, u, k_prev, k_x0)
        }
        "add_noise" => {
            let sched = NoiseSchedule::new(&beta_config(c)?, arith).map_err(e)?;
            let ts: Vec<usize> = c.t("timesteps").iter().map(|&t| t as usize).collect();
            let (x0, nz) = (c.t("original"), c.t("noise"));
            let mut ob = be.alloc(x0.len()).map_err(e)?;
            brain_core::diffusion::add_noise(be, &sched, &up(be, x0), &up(be, nz), &ts, &mut ob)
                .map_err(e)?;
            let per = x0.len() / ts.len();
            let coefs: Vec<(f64, f64)> = ts
                .iter()
                .map(|&t| noise_coefficients(&sched, t))
                .collect::<Result<_, _>>()
                .map_err(e)?;
            check_close_with("noisy", &down(be, &ob), c.t(&format!("noisy{sfx}")), |i| {
                let (a, b) = coefs[i / per];
                Tol::new(
                    8.0 * u * (a * x0[i].abs() + b * nz[i].abs()),
                    0.0,
                    "√ᾱ and √(1−ᾱ) from the same ᾱ, two products and a sum on each side",
                )
            })
        }
        "img2img_start" => {
            let mut sched = DdimScheduler::new(DdimConfig {
                beta: BetaConfig::stable_diffusion(),
                arithmetic: arith,
                prediction_type: PredictionType::Epsilon,
                clip_sample: None,
                set_alpha_to_one: false,
                steps_offset: c.p("steps_offset"),
                timestep_spacing: spacing(c)?,
            })
            .map_err(e)?;
            let n = c.p("num_inference_steps");
            sched.set_timesteps(n).map_err(e)?;
            let start = img2img_timesteps(sched.timesteps(), n, f(c, "strength")?).map_err(e)?;
            exact_usize("timesteps", &start.timesteps, c.t("timesteps"))?;
            exact_usize("t_start", &[start.t_start], c.t("t_start"))?;
            exact_usize("num_steps", &[start.num_steps()], c.t("num_steps"))?;
            exact_usize(
                "init_timestep",
                &[start.init_timestep],
                &[c.p("init_timestep") as f64],
            )
        }
        "cfg" => {
            let (un, co) = (c.t("noise_uncond"), c.t("noise_cond"));
            let g = f(c, "guidance_scale")?;
            let mut ob = be.alloc(un.len()).map_err(e)?;
            brain_core::diffusion::classifier_free_guidance(
                be,
                &up(be, un),
                &up(be, co),
                g,
                &mut ob,
            )
            .map_err(e)?;
            check_close_with("noise_pred", &down(be, &ob), c.t("noise_pred"), |i| {
                Tol::new(
                    4.0 * u * (un[i].abs() + g.abs() * (co[i].abs() + un[i].abs())),
                    0.0,
                    "inputs exact in float32 (drawn in float32); one difference, one product, \
                     one sum, and g rounded",
                )
            })
        }
        other => Err(format!("unknown kernel `{other}` in schedulers.json")),
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_step<B: Backend>(
    be: &B,
    c: &Case,
    step: &brain_core::SchedulerStep,
    m: &[f64],
    x: &[f64],
    noise: Option<&[f64]>,
    pb: &B::Buffer,
    x0b: &B::Buffer,
    sfx: &str,
    u: f64,
    k_prev: f64,
    k_x0: f64,
) -> Result<(), String> {
    let (sp, sx) = step_magnitudes(step, m, x, noise);
    check_close_with(
        "prev_sample",
        &down(be, pb),
        c.t(&format!("prev_sample{sfx}")),
        |i| Tol::new(k_prev * u * sp[i], 0.0, STEP_WHY),
    )?;
    check_close_with(
        "pred_original_sample",
        &down(be, x0b),
        c.t(&format!("pred_original_sample{sfx}")),
        |i| Tol::new(k_x0 * u * sx[i], 0.0, STEP_WHY),
    )
}
