//! The diffusion kernels have no backward pass; what central differences can check
//! here is the algebra: the f64 reference step is affine in the model output m and
//! the sample x, with slopes that follow from the prediction type (derived by hand
//! below, independently of the kernel's formulas). Also: the f64 reference against
//! diffusers' float64 golden values.

use brain_core::reference::ReferenceBackend;
use brain_core::{Backend, PredictionType, SchedulerStep};
use conformance::finite_diff::{check_grad, data, dot};

type R = ReferenceBackend<f64>;

fn ok(r: Result<(), String>) {
    if let Err(m) = r {
        panic!("{m}");
    }
}

/// ∂prev/∂m and ∂prev/∂x per element: x̂₀ = p·m + q·x (slope 0 where clamped),
/// ε̂ = r·m + s·x.
fn slopes(step: &SchedulerStep, x0: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let a = step.alpha_prod_t.sqrt();
    let b = (1.0 - step.alpha_prod_t).sqrt();
    let (p, q, r, s) = match step.prediction {
        PredictionType::Epsilon => (-b / a, 1.0 / a, 1.0, 0.0),
        PredictionType::VPrediction => (-b, a, a, b),
        PredictionType::Sample => (1.0, 0.0, -a / b, 1.0 / b),
    };
    x0.iter()
        .map(|&v| {
            let live = step.clip_sample.is_none_or(|c| v.abs() < c);
            let k = if live { step.coef_x0 } else { 0.0 };
            (
                k * p + step.coef_eps * r,
                k * q + step.coef_eps * s + step.coef_sample,
            )
        })
        .unzip()
}

#[test]
fn scheduler_step_slopes() {
    let be = R::new();
    let n = 23;
    for (i, pred) in [
        PredictionType::Epsilon,
        PredictionType::VPrediction,
        PredictionType::Sample,
    ]
    .into_iter()
    .enumerate()
    {
        for clip in [None, Some(1.0)] {
            let step = SchedulerStep {
                prediction: pred,
                alpha_prod_t: 0.37,
                clip_sample: clip,
                coef_x0: 0.8,
                coef_eps: -0.45,
                coef_sample: 0.25,
                coef_noise: 0.3,
            };
            let seed = 10 * i as u64;
            let (m, x, nz) = (
                data(seed + 1, n, -2.0, 2.0),
                data(seed + 2, n, -2.0, 2.0),
                data(seed + 3, n, -1.0, 1.0),
            );
            let mut x0 = vec![0.0; n];
            let mut prev = vec![0.0; n];
            be.scheduler_step(&step, &m, &x, Some(&nz), &mut prev, Some(&mut x0))
                .unwrap();
            // weight 0 on elements within 1e-3 of the clamp's kink (not differentiable)
            let mut w = data(seed + 4, n, -1.0, 1.0);
            if let Some(c) = step.clip_sample {
                for (w, v) in w.iter_mut().zip(&x0) {
                    if (v.abs() - c).abs() < 1e-3 {
                        *w = 0.0;
                    }
                }
            }
            let fwd = |m: &[f64], x: &[f64]| {
                let mut prev = vec![0.0; n];
                be.scheduler_step(&step, &m.to_vec(), &x.to_vec(), Some(&nz), &mut prev, None)
                    .unwrap();
                dot(&w, &prev)
            };
            let (dm, dx) = slopes(&step, &x0);
            let gm: Vec<f64> = dm.iter().zip(&w).map(|(d, w)| d * w).collect();
            let gx: Vec<f64> = dx.iter().zip(&w).map(|(d, w)| d * w).collect();
            ok(check_grad(
                &format!("{pred:?} {clip:?} d/dm"),
                &gm,
                &m,
                |t| fwd(t, &x),
            ));
            ok(check_grad(
                &format!("{pred:?} {clip:?} d/dx"),
                &gx,
                &x,
                |t| fwd(&m, t),
            ));
        }
    }
}

#[test]
fn add_noise_and_guidance_slopes() {
    let be = R::new();
    let (batch, per) = (3, 7);
    let n = batch * per;
    let (x0, nz, w) = (
        data(1, n, -1.0, 1.0),
        data(2, n, -1.0, 1.0),
        data(3, n, -1.0, 1.0),
    );
    let (sa, sb) = ([0.9, 0.5, 0.1], [0.2, 0.7, 0.99]);
    let fwd = |x0: &[f64], nz: &[f64]| {
        let mut o = vec![0.0; n];
        be.add_noise(&x0.to_vec(), &nz.to_vec(), &sa, &sb, &mut o)
            .unwrap();
        dot(&w, &o)
    };
    let gx: Vec<f64> = (0..n).map(|i| w[i] * sa[i / per]).collect();
    let gn: Vec<f64> = (0..n).map(|i| w[i] * sb[i / per]).collect();
    ok(check_grad("add_noise d/dx0", &gx, &x0, |t| fwd(t, &nz)));
    ok(check_grad("add_noise d/dnoise", &gn, &nz, |t| fwd(&x0, t)));

    let g = 7.5;
    let fwd = |u: &[f64], c: &[f64]| {
        let mut o = vec![0.0; n];
        be.guidance_combine(&u.to_vec(), &c.to_vec(), g, &mut o)
            .unwrap();
        dot(&w, &o)
    };
    let gu: Vec<f64> = w.iter().map(|w| w * (1.0 - g)).collect();
    let gc: Vec<f64> = w.iter().map(|w| w * g).collect();
    ok(check_grad("guidance d/duncond", &gu, &x0, |t| fwd(t, &nz)));
    ok(check_grad("guidance d/dcond", &gc, &nz, |t| fwd(&x0, t)));
}

#[test]
fn reference_f64_matches_diffusers_f64_golden() {
    conformance::golden_schedulers::check(&R::new());
}
