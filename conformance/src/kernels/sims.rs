//! Conformance of the `sims` kernels against the f64 oracle.

use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, check_close_with, unit_roundoff, Tol};
use brain_core::reference::sims::{sims_profile, SIMS_EPS};
use brain_core::{Backend, BrainError};
use proptest::prelude::*;

const SIMS_WHY: &str = "each cosine is a dot product and two norms over `dim` terms: error \
    ~16·√(dim+1)·u (|cos| ≤ 1), carried into (s_A − s_B)² and into each gradient term \
    (bounded per element by the magnitudes of its terms; token 0 sums tokens − 1 of them)";

/// Per-element error bound of the gradient of x [batch, tokens, dim] given the cosine
/// error `ds`, ∂loss/∂s coefficient `c`, the oracle profiles and the values `init` the
/// gradient accumulates onto: the terms' own errors, plus the rounding of the
/// accumulation (token 0 adds tokens − 1 terms in turn, the others one).
#[allow(clippy::too_many_arguments)]
fn grad_bound(
    x: &[f64],
    s: &[f64],
    diff: &[f64],
    c: f64,
    ds: f64,
    u: f64,
    batch: usize,
    tokens: usize,
    dim: usize,
    init: &[f64],
) -> Vec<f64> {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt().max(SIMS_EPS);
    let mut bound = vec![0.0; x.len()];
    let mut mag = vec![0.0; x.len()];
    for b in 0..batch {
        let o0 = b * tokens * dim;
        let m0 = norm(&x[o0..o0 + dim]);
        for j in 1..tokens {
            let oj = (b * tokens + j) * dim;
            let mj = norm(&x[oj..oj + dim]);
            let p = b * (tokens - 1) + j - 1;
            // |g| and its error: g = c·(s_A − s_B)
            let (g, dg) = (c * diff[p].abs(), c * 2.0 * ds);
            let w = dg + g * (ds + 8.0 * u);
            let sp = s[p].abs() + ds;
            for k in 0..dim {
                let (x0, xj) = (x[o0 + k].abs(), x[oj + k].abs());
                bound[oj + k] += w * (x0 / (m0 * mj) + sp * xj / (mj * mj));
                bound[o0 + k] += w * (xj / (m0 * mj) + sp * x0 / (m0 * m0));
                mag[oj + k] += g * (x0 / (m0 * mj) + sp * xj / (mj * mj));
                mag[o0 + k] += g * (xj / (m0 * mj) + sp * x0 / (m0 * m0));
            }
        }
    }
    for (i, bnd) in bound.iter_mut().enumerate() {
        let adds = if (i / dim) % tokens == 0 {
            tokens + 2
        } else {
            4
        };
        *bnd = 4.0 * *bnd + adds as f64 * u * (init[i].abs() + mag[i]);
    }
    bound
}

/// Sims forward and backward on [batch, tokens, dim] (tokens ≥ 2), with zero tokens
/// (clamped norms) in some cases; gradients accumulate onto random values, either may
/// be absent; bad input; NaN propagation.
pub fn sims<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let e = |e: BrainError| e.to_string();
    run(
        "sims",
        20,
        (
            (dim(17), dim(65), dim(1021)),
            any::<bool>(),
            0usize..4,
            any::<u64>(),
        ),
        |((batch, tokens, dim), zeros, which, seed)| {
            let tokens = tokens.max(2);
            let n = batch * tokens * dim;
            let mut r = Rng::new(seed);
            let mut a = representable::<B>(&r.vec(n, -1.0, 1.0));
            let b: Vec<f64> = a
                .iter()
                .zip(r.vec(n, -1.0, 1.0))
                .map(|(x, y)| 0.6 * x + 0.8 * y)
                .collect();
            let mut b = representable::<B>(&b);
            if zeros {
                // a zero token 0 in A's first row, a zero token j in B's last row
                a[..dim].iter_mut().for_each(|v| *v = 0.0);
                let o = ((batch - 1) * tokens + tokens - 1) * dim;
                b[o..o + dim].iter_mut().for_each(|v| *v = 0.0);
            }
            let da0 = representable::<B>(&r.vec(n, -1.0, 1.0));
            let db0 = representable::<B>(&r.vec(n, -1.0, 1.0));
            let scale = representable::<B>(&[r.uniform(-2.0, 2.0)])[0];
            let (ab, bb) = (up(be, &a), up(be, &b));

            let pairs = batch * (tokens - 1);
            let ds = 16.0 * ((dim + 1) as f64).sqrt() * u;
            let mut lb = be.alloc(1).map_err(e)?;
            be.sims_forward(&ab, &bb, batch, tokens, dim, &mut lb)
                .map_err(e)?;
            let mut l = vec![0.0];
            or.sims_forward(&a, &b, batch, tokens, dim, &mut l)
                .map_err(e)?;
            let sa = sims_profile(&a, batch, tokens, dim);
            let sb = sims_profile(&b, batch, tokens, dim);
            let diff: Vec<f64> = sa.iter().zip(&sb).map(|(x, y)| x - y).collect();
            let mean_abs = diff.iter().map(|d| d.abs()).sum::<f64>() / pairs as f64;
            check_close(
                "sims loss",
                &down(be, &lb),
                &l,
                Tol::new(
                    4.0 * ds * (mean_abs + ds),
                    16.0 * ((pairs + 1) as f64).sqrt() * u,
                    SIMS_WHY,
                ),
            )?;

            let (use_a, use_b) = (which & 1 == 0, which & 2 == 0);
            let (mut dab, mut dbb) = (up(be, &da0), up(be, &db0));
            be.sims_backward(
                &ab,
                &bb,
                batch,
                tokens,
                dim,
                scale,
                use_a.then_some(&mut dab),
                use_b.then_some(&mut dbb),
            )
            .map_err(e)?;
            let (mut da, mut db) = (da0.clone(), db0.clone());
            or.sims_backward(
                &a,
                &b,
                batch,
                tokens,
                dim,
                scale,
                use_a.then_some(&mut da),
                use_b.then_some(&mut db),
            )
            .map_err(e)?;
            let c = 2.0 * scale.abs() / pairs as f64;
            let ba = grad_bound(&a, &sa, &diff, c, ds, u, batch, tokens, dim, &da0);
            let bbd = grad_bound(&b, &sb, &diff, c, ds, u, batch, tokens, dim, &db0);
            check_close_with("sims da", &down(be, &dab), &da, |i| {
                Tol::new(ba[i], 0.0, SIMS_WHY)
            })?;
            check_close_with("sims db", &down(be, &dbb), &db, |i| {
                Tol::new(bbd[i], 0.0, SIMS_WHY)
            })?;

            // Bad lengths and arguments.
            let typed = |r: brain_core::Result<()>, what: &str| match r {
                Err(BrainError::ShapeMismatch { .. }) | Err(BrainError::InvalidArgument { .. }) => {
                    Ok(())
                }
                other => Err(format!(
                    "sims {what}: expected a typed error, got {other:?}"
                )),
            };
            let short = up(be, &a[..n - 1]);
            typed(
                be.sims_forward(&short, &bb, batch, tokens, dim, &mut lb),
                "short a",
            )?;
            typed(
                be.sims_forward(&ab, &short, batch, tokens, dim, &mut lb),
                "short b",
            )?;
            typed(
                be.sims_forward(&ab, &bb, batch * tokens, 1, dim, &mut lb),
                "one token",
            )?;
            let mut dshort = up(be, &a[..n - 1]);
            typed(
                be.sims_backward(&ab, &bb, batch, tokens, dim, 1.0, None, Some(&mut dshort)),
                "short db",
            )?;
            typed(
                be.sims_backward(&ab, &bb, batch, tokens, dim, f64::NAN, Some(&mut dab), None),
                "NaN scale",
            )?;

            // NaN propagates to the loss and to the gradient of its batch row.
            let mut an = a.clone();
            let bad = (seed as usize) % n;
            an[bad] = f64::NAN;
            let anb = up(be, &an);
            be.sims_forward(&anb, &bb, batch, tokens, dim, &mut lb)
                .map_err(e)?;
            if !down(be, &lb)[0].is_nan() {
                return Err("sims: a NaN input must give a NaN loss".into());
            }
            let mut dan = be.alloc(n).map_err(e)?;
            be.sims_backward(&anb, &bb, batch, tokens, dim, 1.0, Some(&mut dan), None)
                .map_err(e)?;
            let row = bad / (tokens * dim);
            if !down(be, &dan)[row * tokens * dim..(row * tokens + 1) * dim]
                .iter()
                .all(|v| v.is_nan())
            {
                return Err("sims: a NaN input must reach token 0's gradient of its row".into());
            }
            Ok(())
        },
    );
}
