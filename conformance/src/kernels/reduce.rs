use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::{Backend, RowReduce};
use proptest::prelude::*;

/// Row reductions (sum, mean, max, logsumexp), including long rows.
pub fn reduce_rows<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let ops = prop_oneof![
        Just(RowReduce::Sum),
        Just(RowReduce::Mean),
        Just(RowReduce::Max),
        Just(RowReduce::LogSumExp),
        Just(RowReduce::SumSquares)
    ];
    run(
        "reduce_rows",
        32,
        (ops, dim(33), dim(16411), any::<u64>()),
        |(op, rows, cols, seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let mut r = Rng::new(seed);
            let scale = if op == RowReduce::LogSumExp {
                30.0
            } else {
                1.0
            };
            let x = representable::<B>(&r.vec(rows * cols, -scale, scale));
            let mut ob = be.alloc(rows).map_err(e)?;
            be.reduce_rows(op, &up(be, &x), &mut ob, rows, cols)
                .map_err(e)?;
            let mut want = vec![0.0; rows];
            or.reduce_rows(op, &x, &mut want, rows, cols).map_err(e)?;
            let n = cols as f64;
            let tol = match op {
                // Sequential summation of n zero-mean terms errs with std ≈ u·rms·n/√2.
                RowReduce::Sum => Tol::new(
                    4.0 * u * n * 0.58,
                    4.0 * u,
                    "summation of n uniform(−1,1) terms: error std ≈ u·0.58·n/√2",
                ),
                RowReduce::Mean => {
                    Tol::new(4.0 * u * 0.58, 4.0 * u, "the sum's error divided by n")
                }
                RowReduce::Max => Tol::exact("max is exact"),
                // Non-negative terms x² ≤ 1 (mean 1/3): no cancellation, relative error
                // of a sequential sum ≤ n·u, typically ~√n·u.
                RowReduce::SumSquares => Tol::new(
                    4.0 * u * n.sqrt() * (n / 3.0),
                    4.0 * u * n.sqrt(),
                    "sum of n non-negative squares: relative error ~u·√n",
                ),
                RowReduce::LogSumExp => Tol::new(
                    8.0 * u * (n + 1.0).sqrt(),
                    8.0 * u,
                    "log of a sum of n positive terms: relative error ~u·√n becomes absolute",
                ),
            };
            check_close("reduce_rows", &down(be, &ob), &want, tol)
        },
    );
}
