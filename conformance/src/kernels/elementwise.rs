use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, check_close_with, unit_roundoff, Tol};
use brain_core::Backend;
use proptest::prelude::*;

/// add, scale, axpy, fill and copy.
pub fn elementwise<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let alpha = proptest::sample::select(vec![0.0, 1.0, -0.5, 3.25, 1e-3]);
    run(
        "elementwise",
        24,
        (dim(100_000), alpha, any::<u64>()),
        |(n, alpha, seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let mut r = Rng::new(seed);
            let a = representable::<B>(&r.vec(n, -1.0, 1.0));
            let b = representable::<B>(&r.vec(n, -1.0, 1.0));
            let alpha = representable::<B>(&[alpha])[0];
            let (ab, bb) = (up(be, &a), up(be, &b));
            let one_op = Tol::new(0.0, u, "one correctly rounded operation");

            let mut ob = be.alloc(n).map_err(e)?;
            be.add(&ab, &bb, &mut ob).map_err(e)?;
            let mut want = vec![0.0; n];
            or.add(&a, &b, &mut want).map_err(e)?;
            check_close("add", &down(be, &ob), &want, one_op)?;

            let mut sb = up(be, &a);
            be.scale(&mut sb, alpha).map_err(e)?;
            let mut want = a.clone();
            or.scale(&mut want, alpha).map_err(e)?;
            check_close("scale", &down(be, &sb), &want, one_op)?;

            let mut yb = up(be, &b);
            be.axpy(alpha, &ab, &mut yb).map_err(e)?;
            let mut want = b.clone();
            or.axpy(alpha, &a, &mut want).map_err(e)?;
            let tol = |i: usize| {
                Tol::new(
                    2.0 * u * ((alpha * a[i]).abs() + b[i].abs()),
                    0.0,
                    "a multiply and an add, or one fused multiply-add",
                )
            };
            check_close_with("axpy", &down(be, &yb), &want, tol)?;

            let mut cb = be.alloc(n).map_err(e)?;
            be.copy(&ab, &mut cb).map_err(e)?;
            check_close("copy", &down(be, &cb), &a, Tol::exact("a copy"))?;
            be.fill(&mut cb, alpha).map_err(e)?;
            check_close(
                "fill",
                &down(be, &cb),
                &vec![alpha; n],
                Tol::exact("a store"),
            )
        },
    );
}
