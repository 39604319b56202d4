//! The f64 reference's similarity-loss gradients (MSE, CKA on Grams, Sims, and the
//! CkaLoss / MultiGranularityLoss composites) against central differences of their
//! forward passes, and the f64 reference against the PyTorch golden values.

use brain_core::loss::cka::CkaLoss;
use brain_core::loss::multi_granularity::MultiGranularityLoss;
use brain_core::reference::ReferenceBackend;
use brain_core::{Backend, HsicEstimator};
use conformance::finite_diff::{check_grad, data, dot};

type R = ReferenceBackend<f64>;

fn ok(r: Result<(), String>) {
    if let Err(m) = r {
        panic!("{m}");
    }
}

const ESTIMATORS: [HsicEstimator; 2] = [HsicEstimator::Biased, HsicEstimator::Unbiased];

#[test]
fn mse_gradients() {
    let be = R::new();
    let (a, b) = (data(1, 35, -2.0, 2.0), data(2, 35, -2.0, 2.0));
    let (da0, db0) = (data(3, 35, -1.0, 1.0), data(4, 35, -1.0, 1.0));
    let scale = 0.7;
    let (mut da, mut db) = (da0.clone(), db0.clone());
    be.mse_backward(&a, &b, scale, Some(&mut da), Some(&mut db))
        .unwrap();
    // accumulated: subtract the starting values
    let da: Vec<f64> = da.iter().zip(&da0).map(|(x, y)| x - y).collect();
    let db: Vec<f64> = db.iter().zip(&db0).map(|(x, y)| x - y).collect();
    let f = |a: &[f64], b: &[f64]| {
        let mut l = vec![0.0];
        be.mse_forward(&a.to_vec(), &b.to_vec(), &mut l).unwrap();
        scale * l[0]
    };
    ok(check_grad("mse da", &da, &a, |t| f(t, &b)));
    ok(check_grad("mse db", &db, &b, |t| f(&a, t)));
}

/// `X·Xᵀ` of x[n, p].
fn gram(x: &[f64], n: usize, p: usize) -> Vec<f64> {
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            g[i * n + j] = (0..p).map(|c| x[i * p + c] * x[j * p + c]).sum();
        }
    }
    g
}

#[test]
fn cka_gram_gradients() {
    // Through A and B: K = AAᵀ, L = BBᵀ, so dA = dK·A checks the symmetrised G + Gᵀ.
    let be = R::new();
    let (n, p, q) = (6, 5, 4);
    let a: Vec<f64> = data(5, n * p, -1.0, 1.0).iter().map(|v| v + 0.5).collect();
    let b = data(6, n * q, -1.0, 1.0);
    for est in ESTIMATORS {
        let scale = -1.3;
        let (k, l) = (gram(&a, n, p), gram(&b, n, q));
        let (mut dk, mut dl) = (vec![5.0; n * n], vec![5.0; n * n]);
        be.cka_grams_backward(&k, &l, n, est, scale, Some(&mut dk), Some(&mut dl))
            .unwrap();
        let mut da = vec![0.0; n * p];
        let mut db = vec![0.0; n * q];
        for i in 0..n {
            for c in 0..p {
                da[i * p + c] = (0..n).map(|j| dk[i * n + j] * a[j * p + c]).sum();
            }
            for c in 0..q {
                db[i * q + c] = (0..n).map(|j| dl[i * n + j] * b[j * q + c]).sum();
            }
        }
        let f = |a: &[f64], b: &[f64]| {
            let mut out = vec![0.0; 4];
            be.cka_grams_forward(&gram(a, n, p), &gram(b, n, q), n, est, &mut out)
                .unwrap();
            scale * out[0]
        };
        ok(check_grad(&format!("cka dA ({est:?})"), &da, &a, |t| {
            f(t, &b)
        }));
        ok(check_grad(&format!("cka dB ({est:?})"), &db, &b, |t| {
            f(&a, t)
        }));
    }
}

#[test]
fn cka_gram_gradients_general_matrices() {
    // K, L as general (non-symmetric) matrices, every entry independent: perturbing
    // K[i,j] alone gives G[i,j]; the kernel returns G + Gᵀ, so compare the
    // symmetrised numeric gradient. Diagonal shifts keep the HSICs positive.
    let be = R::new();
    let n = 5;
    let mut k = data(7, n * n, -1.0, 1.0);
    let mut l = data(8, n * n, -1.0, 1.0);
    for i in 0..n {
        k[i * n + i] += 4.0;
        l[i * n + i] += 4.0;
    }
    for i in 0..n {
        for j in 0..n {
            l[i * n + j] += 0.5 * k[j * n + i];
        }
    }
    for est in ESTIMATORS {
        let (mut dk, mut dl) = (vec![0.0; n * n], vec![0.0; n * n]);
        be.cka_grams_backward(&k, &l, n, est, 1.0, Some(&mut dk), Some(&mut dl))
            .unwrap();
        let f = |k: &[f64], l: &[f64]| {
            let mut out = vec![0.0; 4];
            be.cka_grams_forward(&k.to_vec(), &l.to_vec(), n, est, &mut out)
                .unwrap();
            out[0]
        };
        let gk = conformance::finite_diff::numeric_grad(&k, |t| f(t, &l));
        let gl = conformance::finite_diff::numeric_grad(&l, |t| f(&k, t));
        let sym =
            |g: &[f64]| -> Vec<f64> { (0..n * n).map(|x| g[x] + g[(x % n) * n + x / n]).collect() };
        ok(conformance::tolerance::check_close(
            &format!("cka dk general ({est:?})"),
            &dk,
            &sym(&gk),
            conformance::finite_diff::FD_TOL,
        ));
        ok(conformance::tolerance::check_close(
            &format!("cka dl general ({est:?})"),
            &dl,
            &sym(&gl),
            conformance::finite_diff::FD_TOL,
        ));
    }
}

#[test]
fn sims_gradients() {
    let be = R::new();
    let (batch, tokens, dim) = (2, 4, 5);
    let len = batch * tokens * dim;
    let a = data(9, len, -1.0, 1.0);
    let b = data(10, len, -1.0, 1.0);
    let scale = 1.7;
    let (mut da, mut db) = (vec![0.0; len], vec![0.0; len]);
    be.sims_backward(
        &a,
        &b,
        batch,
        tokens,
        dim,
        scale,
        Some(&mut da),
        Some(&mut db),
    )
    .unwrap();
    let f = |a: &[f64], b: &[f64]| {
        let mut l = vec![0.0];
        be.sims_forward(&a.to_vec(), &b.to_vec(), batch, tokens, dim, &mut l)
            .unwrap();
        scale * l[0]
    };
    ok(check_grad("sims da", &da, &a, |t| f(t, &b)));
    ok(check_grad("sims db", &db, &b, |t| f(&a, t)));
}

#[test]
fn composite_gradients() {
    let be = R::new();
    let (n, p, q) = (5, 6, 3);
    let a = data(11, n * p, -1.0, 1.0);
    let b = data(12, n * q, -1.0, 1.0);
    let r = 0.9;
    for est in ESTIMATORS {
        let mut cka = CkaLoss::new(&be, n, p, q, est).unwrap();
        let mut loss = be.alloc(1).unwrap();
        cka.forward(&be, &a, &b, &mut loss).unwrap();
        let (mut da, mut db) = (vec![0.0; n * p], vec![0.0; n * q]);
        cka.backward(&be, &a, &b, r, Some(&mut da), Some(&mut db))
            .unwrap();
        let mut f = |a: &[f64], b: &[f64]| {
            cka.forward(&be, &a.to_vec(), &b.to_vec(), &mut loss)
                .unwrap();
            r * loss[0]
        };
        ok(check_grad("CkaLoss da", &da, &a, |t| f(t, &b)));
        ok(check_grad("CkaLoss db", &db, &b, |t| f(&a, t)));
    }

    let (batch, tokens, dim) = (4, 3, 2);
    let len = batch * tokens * dim;
    let a = data(13, len, -1.0, 1.0);
    let b = data(14, len, -1.0, 1.0);
    let mut mg = MultiGranularityLoss::new(&be, batch, tokens, dim).unwrap();
    let mut total = be.alloc(1).unwrap();
    mg.forward(&be, &a, &b, &mut total).unwrap();
    let sum = mg.cka_loss()[0] + mg.sims_loss()[0];
    assert!((total[0] - sum).abs() <= 1e-15 * sum.abs().max(1.0));
    let (mut da, mut db) = (vec![0.0; len], vec![0.0; len]);
    mg.backward(&be, &a, &b, r, Some(&mut da), Some(&mut db))
        .unwrap();
    let mut f = |a: &[f64], b: &[f64]| {
        mg.forward(&be, &a.to_vec(), &b.to_vec(), &mut total)
            .unwrap();
        r * dot(&[1.0], &total)
    };
    ok(check_grad("MultiGranularityLoss da", &da, &a, |t| f(t, &b)));
    ok(check_grad("MultiGranularityLoss db", &db, &b, |t| f(&a, t)));
}

#[test]
fn composite_errors() {
    let be = R::new();
    assert!(CkaLoss::new(&be, 3, 4, 4, HsicEstimator::Unbiased).is_err());
    assert!(CkaLoss::new(&be, 1, 4, 4, HsicEstimator::Biased).is_err());
    assert!(CkaLoss::new(&be, 4, 0, 4, HsicEstimator::Biased).is_err());
    assert!(MultiGranularityLoss::new(&be, 4, 1, 4).is_err());
    let mut cka = CkaLoss::new(&be, 4, 3, 2, HsicEstimator::Biased).unwrap();
    let (a, b) = (data(15, 12, -1.0, 1.0), data(16, 8, -1.0, 1.0));
    let mut da = vec![0.0; 12];
    // backward before forward
    assert!(cka.backward(&be, &a, &b, 1.0, Some(&mut da), None).is_err());
    let mut loss = vec![0.0];
    assert!(cka.forward(&be, &a, &a, &mut loss).is_err());
    cka.forward(&be, &a, &b, &mut loss).unwrap();
    let mut short = vec![0.0; 11];
    assert!(cka
        .backward(&be, &a, &b, 1.0, Some(&mut short), None)
        .is_err());
}

#[test]
fn golden_similarity_f64_reference() {
    // The same golden cases as the suite, on the f64 oracle: there u = 2⁻⁵³, so the
    // suite's tolerances come to ≤ 4096·u ≈ 5e-13 of each output's magnitude.
    conformance::golden_similarity::check(&R::new());
}
