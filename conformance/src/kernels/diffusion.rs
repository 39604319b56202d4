//! Conformance of the `diffusion` kernels (scheduler_step, add_noise,
//! guidance_combine) against the f64 oracle. No gradient flows through them.

use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close_with, unit_roundoff, Tol};
use brain_core::{Backend, BrainError, PredictionType, SchedulerStep};
use proptest::prelude::*;

/// Why the scheduler-step tolerance is what it is.
pub const STEP_WHY: &str = "every term is formed with a few roundings (√ᾱ, √(1−ᾱ), one division, \
     coefficients rounded to the element type, or host-folded coefficients): the error is \
     ≤ c·u·Σ|terms| of the naive formula, whose magnitudes are computed per element";

/// Per-element magnitudes of the naive step formula, `(Σ|terms of prev|, |terms of x̂₀|)`:
/// any implementation that forms the terms with a bounded number of roundings errs by
/// a small multiple of u times these.
pub fn step_magnitudes(
    step: &SchedulerStep,
    m: &[f64],
    x: &[f64],
    noise: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>) {
    let at = step.alpha_prod_t;
    let (a, b) = (at.sqrt(), (1.0 - at).sqrt());
    let mut prev = Vec::with_capacity(m.len());
    let mut x0s = Vec::with_capacity(m.len());
    for i in 0..m.len() {
        let (mi, xi) = (m[i].abs(), x[i].abs());
        let (x0, eps) = match step.prediction {
            PredictionType::Epsilon => ((xi + b * mi) / a, mi),
            PredictionType::VPrediction => (a * xi + b * mi, a * mi + b * xi),
            PredictionType::Sample => (
                mi,
                if step.coef_eps != 0.0 {
                    (xi + a * mi) / b
                } else {
                    0.0
                },
            ),
        };
        let nz = match noise {
            Some(n) if step.coef_noise != 0.0 => step.coef_noise.abs() * n[i].abs(),
            _ => 0.0,
        };
        prev.push(
            step.coef_x0.abs() * x0 + step.coef_eps.abs() * eps + step.coef_sample.abs() * xi + nz,
        );
        x0s.push(x0);
    }
    (prev, x0s)
}

fn prediction(i: u8) -> PredictionType {
    match i % 3 {
        0 => PredictionType::Epsilon,
        1 => PredictionType::VPrediction,
        _ => PredictionType::Sample,
    }
}

fn expect<T: std::fmt::Debug>(
    what: &str,
    r: brain_core::Result<T>,
    shape: bool,
) -> Result<(), String> {
    match (r, shape) {
        (Err(BrainError::ShapeMismatch { .. }), true) => Ok(()),
        (Err(BrainError::InvalidArgument { .. }), false) => Ok(()),
        (other, _) => Err(format!(
            "{what}: expected {} error, got {other:?}",
            if shape {
                "a ShapeMismatch"
            } else {
                "an InvalidArgument"
            }
        )),
    }
}

/// Run one scheduler step on the backend and the oracle and compare.
fn check_step<B: Backend>(
    be: &B,
    step: &SchedulerStep,
    m: &[f64],
    x: &[f64],
    noise: Option<&[f64]>,
    want_x0: bool,
    what: &str,
) -> Result<(), String> {
    let e = |e: BrainError| e.to_string();
    let u = unit_roundoff::<B::Elem>();
    let or = Oracle::new();
    let n = m.len();
    let (mb, xb) = (up(be, m), up(be, x));
    let nb = noise.map(|v| up(be, v));
    let mut pb = be.alloc(n).map_err(e)?;
    let mut x0b = be.alloc(n).map_err(e)?;
    be.scheduler_step(
        step,
        &mb,
        &xb,
        nb.as_ref(),
        &mut pb,
        want_x0.then_some(&mut x0b),
    )
    .map_err(e)?;
    let (mut p, mut x0) = (vec![0.0; n], vec![0.0; n]);
    let (mv, xv, nv) = (m.to_vec(), x.to_vec(), noise.map(|v| v.to_vec()));
    or.scheduler_step(
        step,
        &mv,
        &xv,
        nv.as_ref(),
        &mut p,
        want_x0.then_some(&mut x0),
    )
    .map_err(e)?;
    let (sp, sx) = step_magnitudes(step, m, x, noise);
    check_close_with(&format!("{what} prev_sample"), &down(be, &pb), &p, |i| {
        Tol::new(16.0 * u * sp[i], 0.0, STEP_WHY)
    })?;
    if want_x0 {
        check_close_with(&format!("{what} pred_x0"), &down(be, &x0b), &x0, |i| {
            Tol::new(8.0 * u * sx[i], 0.0, STEP_WHY)
        })?;
    }
    Ok(())
}

/// scheduler_step (all prediction types, with and without clipping, noise and x̂₀
/// output), add_noise (per-sample coefficients), guidance_combine; bad arguments;
/// NaN propagation; noise unread when its coefficient is 0; one size above the CPU
/// backend's parallel threshold.
pub fn diffusion<B: Backend>(be: &B) {
    let u = unit_roundoff::<B::Elem>();
    let e = |e: BrainError| e.to_string();
    let or = Oracle::new();

    // ---------------------------------------------------------- scheduler_step
    run(
        "scheduler_step",
        24,
        (
            dim(4099),
            (0u8..3, any::<bool>(), any::<bool>(), any::<bool>()),
            any::<u64>(),
        ),
        |(n, (pred, clip, with_noise, want_x0), seed)| {
            let mut r = Rng::new(seed);
            let step = SchedulerStep {
                prediction: prediction(pred),
                // ᾱ representable so the backend and the oracle see the same one
                alpha_prod_t: representable::<B>(&[r.uniform(0.003, 0.9995)])[0],
                clip_sample: clip.then(|| r.uniform(0.5, 2.0)),
                coef_x0: r.uniform(-1.5, 1.5),
                coef_eps: if r.uniform(0.0, 1.0) < 0.25 {
                    0.0
                } else {
                    r.uniform(-1.5, 1.5)
                },
                coef_sample: if r.uniform(0.0, 1.0) < 0.25 {
                    0.0
                } else {
                    r.uniform(-1.5, 1.5)
                },
                coef_noise: if with_noise { r.uniform(0.0, 1.0) } else { 0.0 },
            };
            let m = representable::<B>(&r.vec(n, -3.0, 3.0));
            let x = representable::<B>(&r.vec(n, -3.0, 3.0));
            let nz = representable::<B>(&r.vec(n, -3.0, 3.0));
            check_step(
                be,
                &step,
                &m,
                &x,
                with_noise.then_some(&nz[..]),
                want_x0,
                "scheduler_step",
            )
        },
    );

    // one size above the CPU backend's parallel threshold (2^18), with every output
    {
        let n = (1 << 18) + 4099;
        let mut r = Rng::new(7);
        let m = representable::<B>(&r.vec(n, -3.0, 3.0));
        let x = representable::<B>(&r.vec(n, -3.0, 3.0));
        let nz = representable::<B>(&r.vec(n, -3.0, 3.0));
        for (pred, clip) in [(0u8, None), (2, Some(1.0))] {
            let step = SchedulerStep {
                prediction: prediction(pred),
                alpha_prod_t: representable::<B>(&[0.3])[0],
                clip_sample: clip,
                coef_x0: 0.7,
                coef_eps: 0.4,
                coef_sample: -0.2,
                coef_noise: 0.1,
            };
            if let Err(m) = check_step(be, &step, &m, &x, Some(&nz), true, "large step") {
                panic!("{m}");
            }
        }
    }

    // NaN in the model output or the sample propagates (every coefficient non-zero);
    // a noise buffer full of NaN is not read when coef_noise = 0.
    for pred in 0u8..3 {
        for clip in [None, Some(1.0)] {
            let n = 37;
            let mut r = Rng::new(11 + pred as u64);
            let mut m = representable::<B>(&r.vec(n, -2.0, 2.0));
            let mut x = representable::<B>(&r.vec(n, -2.0, 2.0));
            m[3] = f64::NAN;
            x[20] = f64::NAN;
            let step = SchedulerStep {
                prediction: prediction(pred),
                alpha_prod_t: representable::<B>(&[0.6])[0],
                clip_sample: clip,
                coef_x0: 0.8,
                coef_eps: 0.5,
                coef_sample: 0.3,
                coef_noise: 0.0,
            };
            let nan_noise = vec![f64::NAN; n];
            if let Err(msg) = check_step(be, &step, &m, &x, Some(&nan_noise), true, "NaN") {
                panic!("{msg}");
            }
            let (mb, xb) = (up(be, &m), up(be, &x));
            let mut pb = be.alloc(n).expect("alloc");
            be.scheduler_step(&step, &mb, &xb, Some(&up(be, &nan_noise)), &mut pb, None)
                .expect("step");
            let p = down(be, &pb);
            for (i, v) in p.iter().enumerate() {
                let nan_in = i == 3 || i == 20;
                assert_eq!(
                    v.is_nan(),
                    nan_in,
                    "scheduler_step NaN ({pred}, {clip:?}): element {i} = {v}; NaN must \
                     propagate from its own inputs only (unused noise is not read)"
                );
            }
        }
    }

    // bad arguments
    let check_errors = || -> Result<(), String> {
        let buf = |n: usize| be.alloc(n).expect("alloc");
        let ok = SchedulerStep {
            prediction: PredictionType::Epsilon,
            alpha_prod_t: 0.5,
            clip_sample: None,
            coef_x0: 1.0,
            coef_eps: 0.5,
            coef_sample: 0.0,
            coef_noise: 0.3,
        };
        let (m, x, nz) = (buf(10), buf(10), buf(10));
        let mut p = buf(10);
        expect(
            "coef_noise ≠ 0 without noise",
            be.scheduler_step(&ok, &m, &x, None, &mut p, None),
            false,
        )?;
        expect(
            "short sample",
            be.scheduler_step(&ok, &m, &buf(9), Some(&nz), &mut p, None),
            true,
        )?;
        expect(
            "short noise",
            be.scheduler_step(&ok, &m, &x, Some(&buf(9)), &mut p, None),
            true,
        )?;
        expect(
            "long prev",
            be.scheduler_step(&ok, &m, &x, Some(&nz), &mut buf(11), None),
            true,
        )?;
        expect(
            "short pred_x0",
            be.scheduler_step(&ok, &m, &x, Some(&nz), &mut p, Some(&mut buf(9))),
            true,
        )?;
        for (what, bad) in [
            (
                "alpha_prod_t 0",
                SchedulerStep {
                    alpha_prod_t: 0.0,
                    ..ok
                },
            ),
            (
                "alpha_prod_t > 1",
                SchedulerStep {
                    alpha_prod_t: 1.5,
                    ..ok
                },
            ),
            (
                "alpha_prod_t NaN",
                SchedulerStep {
                    alpha_prod_t: f64::NAN,
                    ..ok
                },
            ),
            (
                "clip range 0",
                SchedulerStep {
                    clip_sample: Some(0.0),
                    ..ok
                },
            ),
            (
                "coef NaN",
                SchedulerStep {
                    coef_x0: f64::NAN,
                    ..ok
                },
            ),
            (
                "coef Inf",
                SchedulerStep {
                    coef_eps: f64::INFINITY,
                    ..ok
                },
            ),
            (
                "sample prediction at alpha_prod_t 1",
                SchedulerStep {
                    prediction: PredictionType::Sample,
                    alpha_prod_t: 1.0,
                    ..ok
                },
            ),
        ] {
            expect(
                what,
                be.scheduler_step(&bad, &m, &x, Some(&nz), &mut p, None),
                false,
            )?;
        }
        let mut o = buf(10);
        expect(
            "add_noise batch 3 does not divide 10",
            be.add_noise(&m, &nz, &[0.5; 3], &[0.5; 3], &mut o),
            false,
        )?;
        expect(
            "add_noise batch 0",
            be.add_noise(&m, &nz, &[], &[], &mut o),
            false,
        )?;
        expect(
            "add_noise coefficient lists differ",
            be.add_noise(&m, &nz, &[0.5; 2], &[0.5; 5], &mut o),
            true,
        )?;
        expect(
            "add_noise short noise",
            be.add_noise(&m, &buf(9), &[0.5], &[0.5], &mut o),
            true,
        )?;
        expect(
            "add_noise NaN coefficient",
            be.add_noise(&m, &nz, &[f64::NAN], &[0.5], &mut o),
            false,
        )?;
        expect(
            "guidance short cond",
            be.guidance_combine(&m, &buf(9), 7.5, &mut o),
            true,
        )?;
        expect(
            "guidance short out",
            be.guidance_combine(&m, &x, 7.5, &mut buf(9)),
            true,
        )?;
        expect(
            "guidance NaN scale",
            be.guidance_combine(&m, &x, f64::NAN, &mut o),
            false,
        )
    };
    if let Err(m) = check_errors() {
        panic!("diffusion errors: {m}");
    }

    // ---------------------------------------------------------- add_noise
    let add_noise_case = |batch: usize, per: usize, seed: u64| -> Result<(), String> {
        let n = batch * per;
        let mut r = Rng::new(seed);
        let x0 = representable::<B>(&r.vec(n, -3.0, 3.0));
        let nz = representable::<B>(&r.vec(n, -3.0, 3.0));
        let sa: Vec<f64> = (0..batch).map(|_| r.uniform(0.0, 1.0)).collect();
        let sb: Vec<f64> = sa.iter().map(|a| (1.0 - a * a).sqrt()).collect();
        let mut ob = be.alloc(n).map_err(e)?;
        be.add_noise(&up(be, &x0), &up(be, &nz), &sa, &sb, &mut ob)
            .map_err(e)?;
        let mut o = vec![0.0; n];
        or.add_noise(&x0, &nz, &sa, &sb, &mut o).map_err(e)?;
        check_close_with("add_noise", &down(be, &ob), &o, |i| {
            let b = i / per;
            Tol::new(
                4.0 * u * (sa[b] * x0[i].abs() + sb[b] * nz[i].abs()),
                0.0,
                "two coefficients rounded to the element type, two products, one sum",
            )
        })
    };
    run(
        "add_noise",
        20,
        (dim(7), dim(4099), any::<u64>()),
        |(batch, per, seed)| add_noise_case(batch, per, seed),
    );
    if let Err(m) = add_noise_case(3, (1 << 17) + 5, 3) {
        panic!("large add_noise: {m}");
    }

    // ---------------------------------------------------------- guidance_combine
    let guidance_case = |n: usize, seed: u64, nan: bool| -> Result<(), String> {
        let mut r = Rng::new(seed);
        let mut un = representable::<B>(&r.vec(n, -3.0, 3.0));
        let co = representable::<B>(&r.vec(n, -3.0, 3.0));
        if nan {
            un[n / 2] = f64::NAN;
        }
        let g = r.uniform(-2.0, 10.0);
        let mut ob = be.alloc(n).map_err(e)?;
        be.guidance_combine(&up(be, &un), &up(be, &co), g, &mut ob)
            .map_err(e)?;
        let mut o = vec![0.0; n];
        or.guidance_combine(&un, &co, g, &mut o).map_err(e)?;
        check_close_with("guidance_combine", &down(be, &ob), &o, |i| {
            Tol::new(
                4.0 * u * (un[i].abs() + g.abs() * (co[i].abs() + un[i].abs())),
                0.0,
                "scale rounded, one difference, one product, one sum",
            )
        })
    };
    run(
        "guidance_combine",
        20,
        (dim(4099), any::<u64>(), any::<bool>()),
        |(n, seed, nan)| guidance_case(n, seed, nan),
    );
    if let Err(m) = guidance_case((1 << 18) + 3, 5, true) {
        panic!("large guidance_combine: {m}");
    }
}
