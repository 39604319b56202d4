use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close_with, unit_roundoff, Tol};
use brain_core::{Activation, Backend};
use proptest::prelude::*;

/// Inputs in [−10, 10] with the edge values 0, ±tiny, ±6, ±10 up front.
pub(crate) fn activation_input(r: &mut Rng, n: usize) -> Vec<f64> {
    let special = [0.0, 1e-8, -1e-8, 6.0, -6.0, 10.0, -10.0, 0.5, -0.5];
    (0..n)
        .map(|i| {
            if i < special.len() {
                special[i]
            } else {
                r.uniform(-10.0, 10.0)
            }
        })
        .collect()
}

/// GELU (both forms) and SiLU forward and backward.
pub fn activations<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let acts = prop_oneof![
        Just(Activation::GeluErf),
        Just(Activation::GeluTanh),
        Just(Activation::Silu)
    ];
    run(
        "activations",
        24,
        (acts, dim(5000), any::<u64>()),
        |(act, n, seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let mut r = Rng::new(seed);
            let x = representable::<B>(&activation_input(&mut r, n));
            let dy = representable::<B>(&r.vec(n, -1.0, 1.0));
            let xb = up(be, &x);
            let mut yb = be.alloc(n).map_err(e)?;
            be.activation_forward(act, &xb, &mut yb).map_err(e)?;
            let mut y = vec![0.0; n];
            or.activation_forward(act, &x, &mut y).map_err(e)?;
            // erf/exp/tanh are accurate to a few ulps, but 1 + erf(x/√2) cancels for x ≪ 0,
            // leaving an absolute (not relative) error of a few u·|x|, exactly as in PyTorch.
            let tol = |i: usize| {
                Tol::new(
                    16.0 * u * (1.0 + x[i].abs()),
                    16.0 * u,
                    "libm-accurate transcendental, absolute error ~u·|x| where 1 + erf cancels",
                )
            };
            check_close_with("activation y", &down(be, &yb), &y, tol)?;

            let mut dxb = be.alloc(n).map_err(e)?;
            be.activation_backward(act, &xb, &up(be, &dy), &mut dxb)
                .map_err(e)?;
            let mut dx = vec![0.0; n];
            or.activation_backward(act, &x, &dy, &mut dx).map_err(e)?;
            let tol = |i: usize| {
                Tol::new(
                    32.0 * u * (1.0 + x[i].abs() * x[i].abs()),
                    16.0 * u,
                    "derivative has x·φ(x) and x³ terms: absolute error ~u·x²",
                )
            };
            check_close_with("activation dx", &down(be, &dxb), &dx, tol)
        },
    );
}
