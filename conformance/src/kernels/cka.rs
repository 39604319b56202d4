//! Conformance of the `cka` kernels against the f64 oracle.

use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::{Backend, BrainError, HsicEstimator};
use proptest::prelude::*;

/// `X·Xᵀ` of x[n, p] in f64.
pub(crate) fn gram(x: &[f64], n: usize, p: usize) -> Vec<f64> {
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            g[i * n + j] = (0..p).map(|c| x[i * p + c] * x[j * p + c]).sum();
        }
    }
    g
}

fn frob(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

const CKA_WHY: &str = "each HSIC sums n² products of Gram entries (and centring sums of n): \
    rounding grows like √(n²)·u = n·u times the Frobenius scale ‖K‖‖L‖/norm, and \
    1 − CKA and the gradients amplify it by the conditioning HSIC scale / HSIC value";

/// Tolerances of [out (4), dk, dl] for Grams k, l with oracle statistics `st`.
fn cka_tols(
    u: f64,
    k: &[f64],
    l: &[f64],
    n: usize,
    est: HsicEstimator,
    st: &[f64],
    scale: f64,
) -> ([Tol; 4], Tol, Tol) {
    let nf = n as f64;
    let norm = match est {
        HsicEstimator::Biased => (nf - 1.0) * (nf - 1.0),
        HsicEstimator::Unbiased => nf * (nf - 3.0),
    };
    let t = 16.0 * nf * u;
    // Error scales of the three HSIC values (the unbiased terms are each ≲ 4‖K‖‖L‖).
    let (fk, fl) = (frob(k), frob(l));
    let sab = 4.0 * fk * fl / norm;
    let saa = 4.0 * fk * fk / norm;
    let sbb = 4.0 * fl * fl / norm;
    let (hab, haa, hbb) = (st[1], st[2], st[3]);
    let alpha = 1.0 / (haa * hbb).sqrt();
    let cka = hab * alpha;
    // Relative error level of α, β, γ and CKA.
    let kappa = t * (sab * alpha + saa / haa.abs() + sbb / hbb.abs());
    let out = [
        Tol::new(kappa * (1.0 + cka.abs()), 0.0, CKA_WHY),
        Tol::new(t * sab, 0.0, CKA_WHY),
        Tol::new(t * saa, 0.0, CKA_WHY),
        Tol::new(t * sbb, 0.0, CKA_WHY),
    ];
    // Gradient terms: |scale|/norm·(α·|L̃ terms| + |β|·|K̃ terms|), each ≲ 8·max.
    let (km, lm) = (max_abs(k), max_abs(l));
    let beta = 0.5 * cka.abs() / haa.abs() + 0.5 * alpha / haa.abs() * sab;
    let gamma = 0.5 * cka.abs() / hbb.abs() + 0.5 * alpha / hbb.abs() * sab;
    let gk = scale.abs() / norm * 8.0 * (alpha * lm + 2.0 * beta * km);
    let gl = scale.abs() / norm * 8.0 * (alpha * km + 2.0 * gamma * lm);
    let level = kappa + t;
    (
        out,
        Tol::new(level * gk, 0.0, CKA_WHY),
        Tol::new(level * gl, 0.0, CKA_WHY),
    )
}

/// CKA on Gram matrices of random (correlated, sometimes offset) batches, both
/// estimators; gradients overwrite whatever the buffers held; bad input; NaN.
pub fn cka<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let e = |e: BrainError| e.to_string();
    run(
        "cka",
        24,
        (
            // n = 300 now and then: a 90 000-entry Gram takes the parallel paths
            (
                prop_oneof![6 => dim(65), 1 => Just(300usize)],
                dim(130),
                dim(65),
            ),
            any::<bool>(),
            0usize..4,
            any::<u64>(),
        ),
        |((n, p, q), unbiased, which, seed)| {
            let est = if unbiased {
                HsicEstimator::Unbiased
            } else {
                HsicEstimator::Biased
            };
            let min_n = if unbiased { 4 } else { 2 };
            let mut r = Rng::new(seed);
            let offset = if seed % 3 == 0 { 1.5 } else { 0.0 };
            let a: Vec<f64> = r.vec(n * p, -1.0, 1.0).iter().map(|v| v + offset).collect();
            let mix = r.vec(p * q, -1.0, 1.0);
            let noise = r.vec(n * q, -1.0, 1.0);
            let mut b = vec![0.0; n * q];
            for i in 0..n {
                for j in 0..q {
                    let s: f64 = (0..p).map(|c| a[i * p + c] * mix[c * q + j]).sum();
                    b[i * q + j] = 0.7 * s / (p as f64).sqrt() + 0.5 * noise[i * q + j];
                }
            }
            let k = representable::<B>(&gram(&a, n, p));
            let l = representable::<B>(&gram(&b, n, q));
            let (kb, lb) = (up(be, &k), up(be, &l));
            let mut outb = be.alloc(4).map_err(e)?;

            if n < min_n {
                return match be.cka_grams_forward(&kb, &lb, n, est, &mut outb) {
                    Err(BrainError::InvalidArgument { .. }) => Ok(()),
                    other => Err(format!(
                        "cka with n = {n} ({est:?}): expected InvalidArgument, got {other:?}"
                    )),
                };
            }
            be.cka_grams_forward(&kb, &lb, n, est, &mut outb)
                .map_err(e)?;
            let mut out = vec![0.0; 4];
            or.cka_grams_forward(&k, &l, n, est, &mut out).map_err(e)?;
            let scale = representable::<B>(&[r.uniform(-2.0, 2.0)])[0];
            let (tout, tk, tl) = cka_tols(u, &k, &l, n, est, &out, scale);
            let got = down(be, &outb);
            for (i, name) in [
                "cka 1 − CKA",
                "cka HSIC(K,L)",
                "cka HSIC(K,K)",
                "cka HSIC(L,L)",
            ]
            .iter()
            .enumerate()
            {
                check_close(name, &got[i..i + 1], &out[i..i + 1], tout[i])?;
            }
            // A 1-element `out` receives the loss alone, the same value.
            let mut loss_only = be.alloc(1).map_err(e)?;
            be.cka_grams_forward(&kb, &lb, n, est, &mut loss_only)
                .map_err(e)?;
            let l1 = down(be, &loss_only);
            if l1[0] != got[0] {
                return Err(format!(
                    "cka: 1-element out gave {} but out[0] of 4 is {}",
                    l1[0], got[0]
                ));
            }

            // Backward overwrites: pre-fill with garbage.
            let (use_k, use_l) = (which & 1 == 0, which & 2 == 0);
            let junk = r.vec(n * n, -9.0, 9.0);
            let (mut dkb, mut dlb) = (up(be, &junk), up(be, &junk));
            be.cka_grams_backward(
                &kb,
                &lb,
                n,
                est,
                scale,
                use_k.then_some(&mut dkb),
                use_l.then_some(&mut dlb),
            )
            .map_err(e)?;
            let (mut dk, mut dl) = (junk.clone(), junk.clone());
            or.cka_grams_backward(
                &k,
                &l,
                n,
                est,
                scale,
                use_k.then_some(&mut dk),
                use_l.then_some(&mut dl),
            )
            .map_err(e)?;
            check_close("cka dk", &down(be, &dkb), &dk, tk)?;
            check_close("cka dl", &down(be, &dlb), &dl, tl)?;

            // Bad lengths and arguments.
            let typed = |r: brain_core::Result<()>, what: &str| match r {
                Err(BrainError::ShapeMismatch { .. }) | Err(BrainError::InvalidArgument { .. }) => {
                    Ok(())
                }
                other => Err(format!("cka {what}: expected a typed error, got {other:?}")),
            };
            let short = up(be, &k[..n * n - 1]);
            typed(
                be.cka_grams_forward(&short, &lb, n, est, &mut outb),
                "short k",
            )?;
            typed(
                be.cka_grams_forward(&kb, &short, n, est, &mut outb),
                "short l",
            )?;
            let mut out3 = be.alloc(3).map_err(e)?;
            typed(
                be.cka_grams_forward(&kb, &lb, n, est, &mut out3),
                "out of 3",
            )?;
            let mut dshort = up(be, &k[..n * n - 1]);
            typed(
                be.cka_grams_backward(&kb, &lb, n, est, 1.0, Some(&mut dshort), None),
                "short dk",
            )?;
            typed(
                be.cka_grams_backward(&kb, &lb, n, est, f64::INFINITY, Some(&mut dkb), None),
                "infinite scale",
            )?;

            // NaN in K reaches the loss and every gradient entry.
            let mut kn = k.clone();
            kn[(seed as usize) % (n * n)] = f64::NAN;
            let knb = up(be, &kn);
            be.cka_grams_forward(&knb, &lb, n, est, &mut outb)
                .map_err(e)?;
            let mut on = vec![0.0; 4];
            or.cka_grams_forward(&kn, &l, n, est, &mut on).map_err(e)?;
            check_close(
                "cka out (NaN K)",
                &down(be, &outb)[..3],
                &on[..3],
                Tol::exact("NaN"),
            )?;
            be.cka_grams_backward(&knb, &lb, n, est, 1.0, Some(&mut dkb), Some(&mut dlb))
                .map_err(e)?;
            if !down(be, &dkb)
                .iter()
                .chain(&down(be, &dlb))
                .all(|v| v.is_nan())
            {
                return Err("cka: a NaN Gram entry must make every gradient entry NaN".into());
            }
            Ok(())
        },
    );
}
