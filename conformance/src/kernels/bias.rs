use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::Backend;
use proptest::prelude::*;

/// Bias add and bias gradient over `[outer, channels, inner]`.
pub fn bias<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "bias",
        24,
        ((dim(65), dim(130), dim(257)), any::<u64>()),
        |((outer, ch, inner), seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let mut r = Rng::new(seed);
            let y0 = representable::<B>(&r.vec(outer * ch * inner, -1.0, 1.0));
            let b = representable::<B>(&r.vec(ch, -1.0, 1.0));
            let db0 = representable::<B>(&r.vec(ch, -1.0, 1.0));
            let (mut yb, bb) = (up(be, &y0), up(be, &b));
            be.bias_add(&mut yb, &bb, outer, ch, inner).map_err(e)?;
            let mut y = y0.clone();
            or.bias_add(&mut y, &b, outer, ch, inner).map_err(e)?;
            check_close(
                "bias_add y",
                &down(be, &yb),
                &y,
                Tol::new(2.0 * u, u, "one rounded addition"),
            )?;

            let mut dbb = up(be, &db0);
            be.bias_backward(&up(be, &y0), &mut dbb, outer, ch, inner)
                .map_err(e)?;
            let mut db = db0.clone();
            or.bias_backward(&y0, &mut db, outer, ch, inner)
                .map_err(e)?;
            let n = (outer * inner + 1) as f64;
            let tol = Tol::new(4.0 * u * n, 4.0 * u, "a sum of outer·inner terms of size ≤ 1: naive summation errs by ~u·n in the worst observed case");
            check_close("bias_backward dbias", &down(be, &dbb), &db, tol)
        },
    );
}
