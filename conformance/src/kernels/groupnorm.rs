use super::layernorm::{norm_scale, NORM_WHY};
use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::{Backend, GroupNormShape};
use proptest::prelude::*;

/// GroupNorm forward and backward on NCHW.
pub fn groupnorm<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let groups = proptest::sample::select(vec![1usize, 2, 3, 4, 8, 32]);
    let strategy = (
        (dim(5), groups, dim(9), dim(300)),
        any::<bool>(),
        any::<u64>(),
    );
    run(
        "groupnorm",
        24,
        strategy,
        |((batch, groups, cpg, spatial), offset, seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let s = GroupNormShape {
                batch,
                channels: groups * cpg,
                spatial,
                groups,
            };
            let n = batch * s.channels * spatial;
            let mut r = Rng::new(seed);
            let shift = if offset { 100.0 } else { 0.0 };
            let x = representable::<B>(&r.vec(n, -1.0 + shift, 1.0 + shift));
            let gamma = representable::<B>(&r.vec(s.channels, -1.0, 1.0));
            let beta = representable::<B>(&r.vec(s.channels, -1.0, 1.0));
            let dy = representable::<B>(&r.vec(n, -1.0, 1.0));
            let dg0 = representable::<B>(&r.vec(s.channels, -1.0, 1.0));
            let db0 = representable::<B>(&r.vec(s.channels, -1.0, 1.0));
            let eps = 1e-5;
            let ng = batch * groups;

            let (xb, gb, bb) = (up(be, &x), up(be, &gamma), up(be, &beta));
            let (mut yb, mut mb, mut rb) = (
                be.alloc(n).map_err(e)?,
                be.alloc(ng).map_err(e)?,
                be.alloc(ng).map_err(e)?,
            );
            be.groupnorm_forward(&xb, &gb, &bb, &mut yb, &mut mb, &mut rb, &s, eps)
                .map_err(e)?;
            let (mut y, mut m, mut rs) = (vec![0.0; n], vec![0.0; ng], vec![0.0; ng]);
            or.groupnorm_forward(&x, &gamma, &beta, &mut y, &mut m, &mut rs, &s, eps)
                .map_err(e)?;
            let rstd_max = rs.iter().cloned().fold(0.0, f64::max);
            let sc = norm_scale(u, cpg * spatial, shift * rstd_max, rstd_max);
            check_close(
                "groupnorm y",
                &down(be, &yb),
                &y,
                Tol::new(sc, 16.0 * u, NORM_WHY),
            )?;
            check_close(
                "groupnorm rstd",
                &down(be, &rb),
                &rs,
                Tol::new(0.0, sc, NORM_WHY),
            )?;

            let (mut dxb, mut dgb, mut dbb) = (be.alloc(n).map_err(e)?, up(be, &dg0), up(be, &db0));
            be.groupnorm_backward(
                &up(be, &dy),
                &xb,
                &gb,
                &mb,
                &rb,
                &mut dxb,
                &mut dgb,
                &mut dbb,
                &s,
            )
            .map_err(e)?;
            let (mut dx, mut dg, mut db) = (vec![0.0; n], dg0.clone(), db0.clone());
            or.groupnorm_backward(&dy, &x, &gamma, &m, &rs, &mut dx, &mut dg, &mut db, &s)
                .map_err(e)?;
            check_close(
                "groupnorm dx",
                &down(be, &dxb),
                &dx,
                Tol::new(sc * rstd_max.max(1.0), 16.0 * u, NORM_WHY),
            )?;
            let sr = sc * ((batch * spatial + 1) as f64).sqrt();
            check_close(
                "groupnorm dgamma",
                &down(be, &dgb),
                &dg,
                Tol::new(sr, 16.0 * u, NORM_WHY),
            )?;
            check_close(
                "groupnorm dbeta",
                &down(be, &dbb),
                &db,
                Tol::new(sr, 16.0 * u, NORM_WHY),
            )
        },
    );
}
