//! Conformance of the `mse` kernels against the f64 oracle.

use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, check_close_with, unit_roundoff, Tol};
use brain_core::{Backend, BrainError};
use proptest::prelude::*;

/// MSE forward and backward (gradients accumulate onto random values, either may be
/// absent), bad lengths, NaN propagation.
pub fn mse<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let e = |e: BrainError| e.to_string();
    run(
        "mse",
        24,
        ((dim(65), dim(4099)), 0usize..4, any::<u64>()),
        |((rows, cols), which, seed)| {
            let n = rows * cols;
            let mut r = Rng::new(seed);
            let a = representable::<B>(&r.vec(n, -2.0, 2.0));
            let b = representable::<B>(&r.vec(n, -2.0, 2.0));
            let da0 = representable::<B>(&r.vec(n, -1.0, 1.0));
            let db0 = representable::<B>(&r.vec(n, -1.0, 1.0));
            let scale = representable::<B>(&[r.uniform(-2.0, 2.0)])[0];
            let (ab, bb) = (up(be, &a), up(be, &b));

            let mut lb = be.alloc(1).map_err(e)?;
            be.mse_forward(&ab, &bb, &mut lb).map_err(e)?;
            let mut l = vec![0.0];
            or.mse_forward(&a, &b, &mut l).map_err(e)?;
            check_close(
                "mse loss",
                &down(be, &lb),
                &l,
                Tol::new(
                    0.0,
                    (n as f64 + 4.0) * u,
                    "a sum of N non-negative terms: recursive summation errs by ≤ (N−1)·u \
                     relative, plus the rounding of each difference and square",
                ),
            )?;

            let (use_a, use_b) = (which & 1 == 0, which & 2 == 0);
            let (mut dab, mut dbb) = (up(be, &da0), up(be, &db0));
            be.mse_backward(
                &ab,
                &bb,
                scale,
                use_a.then_some(&mut dab),
                use_b.then_some(&mut dbb),
            )
            .map_err(e)?;
            let (mut da, mut db) = (da0.clone(), db0.clone());
            or.mse_backward(
                &a,
                &b,
                scale,
                use_a.then_some(&mut da),
                use_b.then_some(&mut db),
            )
            .map_err(e)?;
            let c = 2.0 * scale.abs() / n as f64;
            let why = "c = 2·scale/N, a − b, their product and the accumulation: four roundings";
            let tol_a =
                |i: usize| Tol::new(4.0 * u * (c * (a[i] - b[i]).abs() + da0[i].abs()), 0.0, why);
            let tol_b =
                |i: usize| Tol::new(4.0 * u * (c * (a[i] - b[i]).abs() + db0[i].abs()), 0.0, why);
            check_close_with("mse da", &down(be, &dab), &da, tol_a)?;
            check_close_with("mse db", &down(be, &dbb), &db, tol_b)?;

            // Bad lengths and arguments are typed errors, checked before any write.
            let short = up(be, &a[..n - 1]);
            let err = |r: brain_core::Result<()>, what: &str| match r {
                Err(BrainError::ShapeMismatch { .. }) | Err(BrainError::InvalidArgument { .. }) => {
                    Ok(())
                }
                other => Err(format!("mse {what}: expected a typed error, got {other:?}")),
            };
            if n > 1 {
                err(be.mse_forward(&ab, &short, &mut lb), "short b")?;
                err(
                    be.mse_backward(&ab, &short, 1.0, None, None),
                    "short b (backward)",
                )?;
                let mut ds = up(be, &a[..n - 1]);
                err(
                    be.mse_backward(&ab, &bb, 1.0, Some(&mut ds), None),
                    "short da",
                )?;
            }
            let mut l2 = be.alloc(2).map_err(e)?;
            err(be.mse_forward(&ab, &bb, &mut l2), "loss of 2 elements")?;
            err(
                be.mse_backward(&ab, &bb, f64::NAN, Some(&mut dab), None),
                "NaN scale",
            )?;
            let empty = be.alloc(0).map_err(e)?;
            err(be.mse_forward(&empty, &empty, &mut lb), "empty input")?;

            // NaN propagates.
            let mut an = a.clone();
            an[(seed as usize) % n] = f64::NAN;
            be.mse_forward(&up(be, &an), &bb, &mut lb).map_err(e)?;
            if !down(be, &lb)[0].is_nan() {
                return Err("mse: a NaN input must give a NaN loss".into());
            }
            Ok(())
        },
    );
}
