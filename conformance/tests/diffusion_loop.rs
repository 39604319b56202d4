//! The sampling loop and the scheduler helpers end to end, with toy analytic
//! denoisers: one that returns the exact ε for a known x₀ makes DDIM (η = 0) land on
//! x₀ exactly (up to rounding) when ᾱ_prev = 1 after the last step. (Runs on the
//! reference backend, f64 and f32: conformance has no dependency on backend-cpu.)

use brain_core::diffusion::{
    img2img_timesteps, noisy_start, sample, sample_and_decode, BetaConfig, DdimConfig,
    DdimScheduler, DdpmConfig, DdpmScheduler, Denoiser, LatentDecoder, Model, NoiseSchedule,
    NoiseSource, PairDenoiser, Sampler, ScheduleArithmetic, TimestepSpacing,
};
use brain_core::reference::ReferenceBackend;
use brain_core::{Backend, BrainError, Element, PredictionType, Result};
use conformance::finite_diff::data;

/// Returns ε = (x_t − √ᾱ_t·x₀)/√(1 − ᾱ_t) + bias: the exact noise (bias 0) for x₀.
struct ExactEps {
    x0: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    bias: f64,
    calls: usize,
}

impl ExactEps {
    fn new(x0: &[f64], s: &NoiseSchedule, bias: f64) -> Self {
        ExactEps {
            x0: x0.to_vec(),
            alphas_cumprod: s.alphas_cumprod().to_vec(),
            bias,
            calls: 0,
        }
    }
    fn eps(&self, x: &[f64], t: usize) -> Vec<f64> {
        let a = self.alphas_cumprod[t];
        x.iter()
            .zip(&self.x0)
            .map(|(x, x0)| (x - a.sqrt() * x0) / (1.0 - a).sqrt() + self.bias)
            .collect()
    }
}

fn down<B: Backend>(be: &B, b: &B::Buffer) -> Vec<f64> {
    be.download_vec(b)
        .unwrap()
        .into_iter()
        .map(|v| v.to_f64())
        .collect()
}
fn up<B: Backend>(be: &B, v: &[f64]) -> B::Buffer {
    be.upload(&v.iter().map(|&x| B::Elem::from_f64(x)).collect::<Vec<_>>())
        .unwrap()
}

impl<B: Backend> Denoiser<B> for ExactEps {
    fn predict(
        &mut self,
        be: &B,
        latents: &B::Buffer,
        t: usize,
        out: &mut B::Buffer,
    ) -> Result<()> {
        self.calls += 1;
        let e = self.eps(&down(be, latents), t);
        be.write(
            out,
            &e.iter().map(|&v| B::Elem::from_f64(v)).collect::<Vec<_>>(),
        )
    }
}

/// Both predictions at once: uncond = ε + a, cond = ε + a − a/g, so the guided
/// combination ε_u + g·(ε_c − ε_u) is the exact ε again.
struct Pair {
    inner: ExactEps,
    a: f64,
    g: f64,
}

impl<B: Backend> PairDenoiser<B> for Pair {
    fn predict_pair(
        &mut self,
        be: &B,
        latents: &B::Buffer,
        t: usize,
        uncond: &mut B::Buffer,
        cond: &mut B::Buffer,
    ) -> Result<()> {
        let e = self.inner.eps(&down(be, latents), t);
        let w = |v: Vec<f64>| v.into_iter().map(B::Elem::from_f64).collect::<Vec<_>>();
        be.write(uncond, &w(e.iter().map(|v| v + self.a).collect()))?;
        be.write(
            cond,
            &w(e.iter().map(|v| v + self.a - self.a / self.g).collect()),
        )
    }
}

struct Double;
impl<B: Backend> LatentDecoder<B> for Double {
    fn decode(&mut self, be: &B, latents: &B::Buffer, image_out: &mut B::Buffer) -> Result<()> {
        be.copy(latents, image_out)?;
        be.scale(image_out, 2.0)
    }
}

fn ddim_cfg(set_alpha_to_one: bool, arithmetic: ScheduleArithmetic) -> DdimConfig {
    DdimConfig {
        set_alpha_to_one,
        ..DdimConfig::versatile_diffusion(arithmetic)
    }
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn spec_example_strength_075_starts_at_721_with_37_steps() {
    let mut s =
        DdimScheduler::new(DdimConfig::versatile_diffusion(ScheduleArithmetic::F64)).unwrap();
    assert_eq!(s.config().clip_sample, None);
    assert!(!s.config().set_alpha_to_one);
    assert_eq!(s.config().steps_offset, 1);
    assert_eq!(s.config().beta.beta_start, 0.00085);
    assert_eq!(s.config().beta.beta_end, 0.012);
    s.set_timesteps(50).unwrap();
    assert_eq!((s.timesteps()[0], s.timesteps()[49]), (981, 1));
    let start = img2img_timesteps(s.timesteps(), 50, 0.75).unwrap();
    assert_eq!(start.start_timestep(), Some(721));
    assert_eq!(start.num_steps(), 37);
    assert_eq!(start.t_start, 13);
    // strength 1 runs every step; a tiny strength runs none
    assert_eq!(
        img2img_timesteps(s.timesteps(), 50, 1.0)
            .unwrap()
            .num_steps(),
        50
    );
    assert_eq!(
        img2img_timesteps(s.timesteps(), 50, 0.01)
            .unwrap()
            .num_steps(),
        0
    );
    assert!(img2img_timesteps(s.timesteps(), 50, 1.5).is_err());
}

fn ddim_recovers_x0<B: Backend>(be: &B, arithmetic: ScheduleArithmetic, tol: f64) {
    let n = 2 * 4 * 5 * 3;
    let x0 = data(1, n, -1.0, 1.0);
    let z = data(2, n, -2.0, 2.0);
    let mut s = DdimScheduler::new(ddim_cfg(true, arithmetic)).unwrap();
    s.set_timesteps(50).unwrap();
    let mut latents = up(be, &z);
    let mut den = ExactEps::new(&x0, s.schedule(), 0.0);
    let mut seen = Vec::new();
    let mut progress = |k: usize, total: usize| seen.push((k, total));
    let mut img = be.alloc(n).unwrap();
    sample_and_decode(
        be,
        Sampler::Ddim {
            scheduler: &s,
            eta: 0.0,
        },
        s.timesteps(),
        &mut latents,
        Model::Plain(&mut den),
        None,
        Some(&mut progress),
        &mut Double,
        &mut img,
    )
    .unwrap();
    assert_eq!(den.calls, 50);
    assert_eq!(seen.len(), 50);
    assert_eq!(seen[49], (50, 50));
    let got = down(be, &latents);
    let err = max_err(&got, &x0);
    assert!(
        err < tol,
        "{}: DDIM η = 0 with the exact ε ends {err:e} from x₀",
        be.name()
    );

    assert!(
        max_err(
            &down(be, &img),
            &got.iter().map(|v| 2.0 * v).collect::<Vec<_>>()
        ) < 1e-6
    );
}

#[test]
fn ddim_eta0_chain_recovers_x0() {
    // f64: rounding only; f32: 50 steps of a few u each on O(1) values
    ddim_recovers_x0(
        &ReferenceBackend::<f64>::new(),
        ScheduleArithmetic::F64,
        1e-12,
    );
    ddim_recovers_x0(
        &ReferenceBackend::<f32>::new(),
        ScheduleArithmetic::DiffusersF32,
        1e-4,
    );
}

#[test]
fn img2img_start_then_guided_ddim_recovers_x0() {
    let be = ReferenceBackend::<f64>::new();
    let n = 60;
    let x0 = data(3, n, -1.0, 1.0);
    let eps = data(4, n, -2.0, 2.0);
    let mut s = DdimScheduler::new(ddim_cfg(true, ScheduleArithmetic::F64)).unwrap();
    s.set_timesteps(50).unwrap();
    let start = img2img_timesteps(s.timesteps(), 50, 0.75).unwrap();
    let t = start.start_timestep().unwrap();
    let mut latents = be.alloc(n).unwrap();
    noisy_start(&be, s.schedule(), &x0, &eps, t, &mut latents).unwrap();
    let a = s.schedule().alphas_cumprod()[t];
    let want: Vec<f64> = x0
        .iter()
        .zip(&eps)
        .map(|(x, e)| a.sqrt() * x + (1.0 - a).sqrt() * e)
        .collect();
    assert!(max_err(&latents, &want) < 1e-15);

    // two denoiser calls per step
    let g = 7.5;
    let mut uncond = ExactEps::new(&x0, s.schedule(), 0.3);
    let mut cond = ExactEps::new(&x0, s.schedule(), 0.3 - 0.3 / g);
    let mut l1 = latents.clone();
    sample(
        &be,
        Sampler::Ddim {
            scheduler: &s,
            eta: 0.0,
        },
        &start.timesteps,
        &mut l1,
        Model::Guided {
            uncond: &mut uncond,
            cond: &mut cond,
            scale: g,
        },
        None,
        None,
    )
    .unwrap();
    assert_eq!((uncond.calls, cond.calls), (37, 37));
    assert!(max_err(&l1, &x0) < 1e-11, "guided: {:e}", max_err(&l1, &x0));

    // one pair call per step
    let mut pair = Pair {
        inner: ExactEps::new(&x0, s.schedule(), 0.0),
        a: -0.4,
        g,
    };
    let mut l2 = latents.clone();
    sample(
        &be,
        Sampler::Ddim {
            scheduler: &s,
            eta: 0.0,
        },
        &start.timesteps,
        &mut l2,
        Model::GuidedPair {
            model: &mut pair,
            scale: g,
        },
        None,
        None,
    )
    .unwrap();
    assert!(max_err(&l2, &x0) < 1e-11, "pair: {:e}", max_err(&l2, &x0));
}

#[test]
fn stochastic_steps_need_noise_and_are_reproducible() {
    let be = ReferenceBackend::<f32>::new();
    let n = 40;
    let x0 = data(5, n, -1.0, 1.0);
    let z = data(6, n, -2.0, 2.0);

    let mut ddpm = DdpmScheduler::new(DdpmConfig {
        beta: BetaConfig::stable_diffusion(),
        arithmetic: ScheduleArithmetic::DiffusersF32,
        prediction_type: PredictionType::Epsilon,
        variance_type: brain_core::diffusion::VarianceType::FixedSmall,
        clip_sample: None,
        steps_offset: 1,
        timestep_spacing: TimestepSpacing::Leading,
    })
    .unwrap();
    ddpm.set_timesteps(25).unwrap();
    let run = |src: Option<NoiseSource>| -> std::result::Result<Vec<f64>, BrainError> {
        let mut den = ExactEps::new(&x0, ddpm.schedule(), 0.0);
        let mut l = up(&be, &z);
        sample(
            &be,
            Sampler::Ddpm(&ddpm),
            ddpm.timesteps(),
            &mut l,
            Model::Plain(&mut den),
            src,
            None,
        )?;
        Ok(down(&be, &l))
    };
    assert!(matches!(run(None), Err(BrainError::InvalidArgument { .. })));
    let a = run(Some(NoiseSource { seed: 1, offset: 0 })).unwrap();
    let b = run(Some(NoiseSource { seed: 1, offset: 0 })).unwrap();
    let c = run(Some(NoiseSource { seed: 2, offset: 0 })).unwrap();
    assert_eq!(a, b, "same seed, same result");
    assert_ne!(a, c, "another seed, other noise");
    // with the exact ε, DDPM's posterior mean is the ε-trajectory; the added noise is
    // O(σ) per step, so the end stays near x₀ but not on it
    assert!(a.iter().all(|v| v.is_finite()));

    let mut ddim = DdimScheduler::new(ddim_cfg(false, ScheduleArithmetic::DiffusersF32)).unwrap();
    ddim.set_timesteps(10).unwrap();
    let mut den = ExactEps::new(&x0, ddim.schedule(), 0.0);
    let mut l = up(&be, &z);
    let r = sample(
        &be,
        Sampler::Ddim {
            scheduler: &ddim,
            eta: 0.5,
        },
        ddim.timesteps(),
        &mut l,
        Model::Plain(&mut den),
        None,
        None,
    );
    assert!(matches!(r, Err(BrainError::InvalidArgument { .. })));
    let src = Some(NoiseSource {
        seed: 9,
        offset: 100,
    });
    sample(
        &be,
        Sampler::Ddim {
            scheduler: &ddim,
            eta: 0.5,
        },
        ddim.timesteps(),
        &mut l,
        Model::Plain(&mut den),
        src,
        None,
    )
    .unwrap();
    assert!(down(&be, &l).iter().all(|v| v.is_finite()));
}

#[test]
fn scheduler_errors_are_typed() {
    let s = DdimScheduler::new(DdimConfig::versatile_diffusion(ScheduleArithmetic::F64)).unwrap();
    // stepping before set_timesteps
    assert!(s.step_params(981, 0.0).is_err());
    let mut s = s;
    assert!(s.set_timesteps(0).is_err());
    assert!(s.set_timesteps(1001).is_err());
    // leading + steps_offset 1 + N = 1000 gives t = 1000: out of range
    assert!(s.set_timesteps(1000).is_err());
    s.set_timesteps(50).unwrap();
    assert!(s.step_params(1000, 0.0).is_err());
    assert!(s.step_params(981, -1.0).is_err());
    assert!(s.step_params(981, f64::NAN).is_err());
    let mut p = DdpmScheduler::new(DdpmConfig::diffusers_default(ScheduleArithmetic::F64)).unwrap();
    // before set_timesteps prev(t) = t − 1
    assert_eq!(p.previous_timestep(10).unwrap(), Some(9));
    assert_eq!(p.previous_timestep(0).unwrap(), None);
    p.set_timesteps(10).unwrap();
    assert!(p.step_params(7).is_err(), "t not in the list");
    assert!(NoiseSchedule::new(
        &BetaConfig {
            beta_end: 1.5,
            ..BetaConfig::ddpm_default()
        },
        ScheduleArithmetic::F64
    )
    .is_err());
    assert!(DdimScheduler::new(DdimConfig {
        clip_sample: Some(-1.0),
        ..DdimConfig::versatile_diffusion(ScheduleArithmetic::F64)
    })
    .is_err());
}
