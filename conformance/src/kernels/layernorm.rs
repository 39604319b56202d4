use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::Backend;
use proptest::prelude::*;

pub(crate) const NORM_WHY: &str =
    "statistics are sums over L values: mean and variance err by ~u·√L relative, \
     and an offset |mean| adds u·|mean|·√L before the subtraction (amplified by rstd)";

/// Error scale of a normalisation over `len` values whose rows have `offset·rstd` ≤ `shift`.
pub(crate) fn norm_scale(u: f64, len: usize, shift: f64, rstd_max: f64) -> f64 {
    16.0 * u * ((len + 1) as f64).sqrt() * (1.0 + shift) * rstd_max.max(1.0)
}

/// LayerNorm forward and backward, including rows offset by 100 (a two-pass or
/// Welford variance is needed there; E[x²] − E[x]² loses every digit).
pub fn layernorm<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "layernorm",
        24,
        ((dim(65), dim(4099)), any::<bool>(), any::<u64>()),
        |((rows, cols), offset, seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let mut r = Rng::new(seed);
            let shift = if offset { 100.0 } else { 0.0 };
            let x = representable::<B>(&r.vec(rows * cols, -1.0 + shift, 1.0 + shift));
            let gamma = representable::<B>(&r.vec(cols, -1.0, 1.0));
            let beta = representable::<B>(&r.vec(cols, -1.0, 1.0));
            let dy = representable::<B>(&r.vec(rows * cols, -1.0, 1.0));
            let dg0 = representable::<B>(&r.vec(cols, -1.0, 1.0));
            let db0 = representable::<B>(&r.vec(cols, -1.0, 1.0));
            let eps = 1e-5;

            let (xb, gb, bb) = (up(be, &x), up(be, &gamma), up(be, &beta));
            let (mut yb, mut mb, mut rb) = (
                be.alloc(rows * cols).map_err(e)?,
                be.alloc(rows).map_err(e)?,
                be.alloc(rows).map_err(e)?,
            );
            be.layernorm_forward(&xb, &gb, &bb, &mut yb, &mut mb, &mut rb, rows, cols, eps)
                .map_err(e)?;
            let (mut y, mut m, mut rs) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
            or.layernorm_forward(&x, &gamma, &beta, &mut y, &mut m, &mut rs, rows, cols, eps)
                .map_err(e)?;

            let rstd_max = rs.iter().cloned().fold(0.0, f64::max);
            let s = norm_scale(u, cols, shift * rstd_max, rstd_max);
            check_close(
                "layernorm y",
                &down(be, &yb),
                &y,
                Tol::new(s, 16.0 * u, NORM_WHY),
            )?;
            check_close(
                "layernorm mean",
                &down(be, &mb),
                &m,
                Tol::new(s * (1.0 + shift) / rstd_max.max(1.0), 16.0 * u, NORM_WHY),
            )?;
            check_close(
                "layernorm rstd",
                &down(be, &rb),
                &rs,
                Tol::new(0.0, s, NORM_WHY),
            )?;

            // backward from the backend's own saved statistics, as a training step would
            let dyb = up(be, &dy);
            let (mut dxb, mut dgb, mut dbb) = (
                be.alloc(rows * cols).map_err(e)?,
                up(be, &dg0),
                up(be, &db0),
            );
            be.layernorm_backward(
                &dyb, &xb, &gb, &mb, &rb, &mut dxb, &mut dgb, &mut dbb, rows, cols,
            )
            .map_err(e)?;
            let (mut dx, mut dg, mut db) = (vec![0.0; rows * cols], dg0.clone(), db0.clone());
            or.layernorm_backward(
                &dy, &x, &gamma, &m, &rs, &mut dx, &mut dg, &mut db, rows, cols,
            )
            .map_err(e)?;
            check_close(
                "layernorm dx",
                &down(be, &dxb),
                &dx,
                Tol::new(s * rstd_max.max(1.0), 16.0 * u, NORM_WHY),
            )?;
            let sr = s * ((rows + 1) as f64).sqrt();
            check_close(
                "layernorm dgamma",
                &down(be, &dgb),
                &dg,
                Tol::new(sr, 16.0 * u, NORM_WHY),
            )?;
            check_close(
                "layernorm dbeta",
                &down(be, &dbb),
                &db,
                Tol::new(sr, 16.0 * u, NORM_WHY),
            )
        },
    );
}
