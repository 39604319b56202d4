use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::{Backend, Dropout};
use proptest::prelude::*;

/// Dropout forward and backward: the mask (which elements are zero) must be the
/// reference's exactly, since it comes from the integer Philox stream.
pub fn dropout<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let p = proptest::sample::select(vec![0.0, 0.1, 0.5, 0.9, 0.999]);
    run(
        "dropout",
        24,
        (dim(5000), p, any::<u64>(), any::<u64>()),
        |(n, p, seed, offset)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let d = Dropout { p, seed, offset };
            let mut r = Rng::new(seed ^ offset);
            // strictly nonzero inputs so a zero output means "dropped"
            let x = representable::<B>(&r.vec(n, 0.5, 2.0));
            let mut yb = be.alloc(n).map_err(e)?;
            be.dropout_forward(&d, &up(be, &x), &mut yb).map_err(e)?;
            let mut y = vec![0.0; n];
            or.dropout_forward(&d, &x, &mut y).map_err(e)?;
            let got = down(be, &yb);
            if let Some(i) = (0..n).find(|&i| (got[i] == 0.0) != (y[i] == 0.0)) {
                return Err(format!(
                    "dropout mask differs at element {i} (p {p}, seed {seed}, offset {offset})"
                ));
            }
            let tol = Tol::new(0.0, 4.0 * u, "one multiply by the rounded 1/(1−p)");
            check_close("dropout y", &got, &y, tol)?;
            let mut dxb = be.alloc(n).map_err(e)?;
            be.dropout_backward(&d, &up(be, &x), &mut dxb).map_err(e)?;
            check_close("dropout dx", &down(be, &dxb), &y, tol)
        },
    );
}
