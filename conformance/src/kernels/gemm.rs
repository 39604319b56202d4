use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close_with, unit_roundoff, Tol};
use brain_core::{Backend, Gemm};
use proptest::prelude::*;

const WHY: &str = "a k-term dot product in precision u errs by about √k·u·Σ|aᵢbᵢ| for random signs; 8× covers the tail";

/// Tolerance from the magnitude `mag = |α|·|A|·|B| + |β|·|C|`, element-wise.
pub(crate) fn dot_tol<B: Backend>(k: usize, mag: &[f64]) -> impl Fn(usize) -> Tol + '_ {
    let u = unit_roundoff::<B::Elem>();
    move |i| Tol::new(8.0 * ((k + 1) as f64).sqrt() * u * mag[i], 4.0 * u, WHY)
}

/// Strided-batched GEMM, all transpose combinations, alpha/beta, padded and broadcast strides.
pub fn gemm<B: Backend>(be: &B) {
    let or = Oracle::new();
    let strategy = (
        (dim(130), dim(130), dim(300)),
        (any::<bool>(), any::<bool>()),
        (1usize..4, 0usize..3, any::<bool>()),
        prop_oneof![
            Just((1.0, 0.0)),
            Just((0.75, -0.5)),
            Just((-2.0, 1.0)),
            Just((0.0, 1.0))
        ],
        any::<u64>(),
    );
    run(
        "gemm",
        24,
        strategy,
        |((m, n, k), (ta, tb), (batch, pad, bcast_b), (alpha, beta), seed)| {
            let sa = m * k + pad;
            let sb = if bcast_b { 0 } else { k * n + pad };
            let sc = m * n + pad;
            let g = Gemm::new(m, n, k)
                .trans(ta, tb)
                .scale(alpha, beta)
                .batched(batch, sa, sb, sc);
            let mut r = Rng::new(seed);
            let a = representable::<B>(&r.vec(sa * batch, -1.0, 1.0));
            let b = representable::<B>(&r.vec((sb * (batch - 1) + k * n).max(k * n), -1.0, 1.0));
            let c0 = representable::<B>(&r.vec(sc * batch, -1.0, 1.0));

            let (ab, bb, mut cb) = (up(be, &a), up(be, &b), up(be, &c0));
            be.gemm(&g, &ab, &bb, &mut cb).map_err(|e| e.to_string())?;
            let got = down(be, &cb);

            let mut want = c0.clone();
            or.gemm(&g, &a, &b, &mut want).map_err(|e| e.to_string())?;
            let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
            let mut mag = abs(&c0);
            let ga = Gemm {
                alpha: alpha.abs(),
                beta: beta.abs(),
                ..g
            };
            or.gemm(&ga, &abs(&a), &abs(&b), &mut mag)
                .map_err(|e| e.to_string())?;
            check_close_with("gemm C", &got, &want, dot_tol::<B>(k, &mag))
        },
    );
}
