use super::gemm::dot_tol;
use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::check_close_with;
use brain_core::Backend;
use proptest::prelude::*;

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// Linear forward and backward; parameter gradients accumulate onto what is there.
pub fn linear<B: Backend>(be: &B) {
    let or = Oracle::new();
    let strategy = ((dim(65), dim(300), dim(130)), any::<bool>(), any::<u64>());
    run(
        "linear",
        24,
        strategy,
        |((rows, inf, outf), has_bias, seed)| {
            let mut r = Rng::new(seed);
            let x = representable::<B>(&r.vec(rows * inf, -1.0, 1.0));
            let w = representable::<B>(&r.vec(outf * inf, -1.0, 1.0));
            let b = representable::<B>(&r.vec(outf, -1.0, 1.0));
            let dy = representable::<B>(&r.vec(rows * outf, -1.0, 1.0));
            let dw0 = representable::<B>(&r.vec(outf * inf, -1.0, 1.0));
            let db0 = representable::<B>(&r.vec(outf, -1.0, 1.0));
            let e = |e: brain_core::BrainError| e.to_string();

            // forward
            let (xb, wb, bb) = (up(be, &x), up(be, &w), up(be, &b));
            let mut yb = be.alloc(rows * outf).map_err(e)?;
            be.linear_forward(&xb, &wb, has_bias.then_some(&bb), &mut yb, rows, inf, outf)
                .map_err(e)?;
            let mut y = vec![0.0; rows * outf];
            or.linear_forward(&x, &w, has_bias.then_some(&b), &mut y, rows, inf, outf)
                .map_err(e)?;
            let mut mag = vec![0.0; rows * outf];
            or.linear_forward(
                &abs(&x),
                &abs(&w),
                has_bias.then_some(&abs(&b)),
                &mut mag,
                rows,
                inf,
                outf,
            )
            .map_err(e)?;
            check_close_with("linear y", &down(be, &yb), &y, dot_tol::<B>(inf, &mag))?;

            // backward
            let dyb = up(be, &dy);
            let (mut dxb, mut dwb, mut dbb) =
                (be.alloc(rows * inf).map_err(e)?, up(be, &dw0), up(be, &db0));
            be.linear_backward(
                &dyb,
                &xb,
                &wb,
                Some(&mut dxb),
                Some(&mut dwb),
                has_bias.then_some(&mut dbb),
                rows,
                inf,
                outf,
            )
            .map_err(e)?;
            let (mut dx, mut dw, mut db) = (vec![0.0; rows * inf], dw0.clone(), db0.clone());
            or.linear_backward(
                &dy,
                &x,
                &w,
                Some(&mut dx),
                Some(&mut dw),
                has_bias.then_some(&mut db),
                rows,
                inf,
                outf,
            )
            .map_err(e)?;
            let (mut mdx, mut mdw, mut mdb) = (vec![0.0; rows * inf], abs(&dw0), abs(&db0));
            or.linear_backward(
                &abs(&dy),
                &abs(&x),
                &abs(&w),
                Some(&mut mdx),
                Some(&mut mdw),
                Some(&mut mdb),
                rows,
                inf,
                outf,
            )
            .map_err(e)?;
            check_close_with("linear dx", &down(be, &dxb), &dx, dot_tol::<B>(outf, &mdx))?;
            check_close_with(
                "linear dweight",
                &down(be, &dwb),
                &dw,
                dot_tol::<B>(rows, &mdw),
            )?;
            let db_want = if has_bias { db } else { db0 };
            check_close_with(
                "linear dbias",
                &down(be, &dbb),
                &db_want,
                dot_tol::<B>(rows, &mdb),
            )
        },
    );
}
