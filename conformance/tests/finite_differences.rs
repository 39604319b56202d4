//! The f64 reference's backward kernels against central differences of its forward
//! kernels (see `conformance::finite_diff` for the tolerance).

use brain_core::reference::ReferenceBackend;
use brain_core::{Activation, Backend, Dropout, GroupNormShape, UpsampleMode, UpsampleShape};
use conformance::finite_diff::{check_grad, data, dot};

type R = ReferenceBackend<f64>;

fn ok(r: Result<(), String>) {
    if let Err(m) = r {
        panic!("{m}");
    }
}

#[test]
fn linear_gradients() {
    let be = R::new();
    let (rows, inf, outf) = (3, 5, 4);
    let (x, w, b, r) = (
        data(1, rows * inf, -1.0, 1.0),
        data(2, outf * inf, -1.0, 1.0),
        data(3, outf, -1.0, 1.0),
        data(4, rows * outf, -1.0, 1.0),
    );
    let (mut dx, mut dw, mut db) = (
        vec![0.0; rows * inf],
        vec![0.0; outf * inf],
        vec![0.0; outf],
    );
    be.linear_backward(
        &r,
        &x,
        &w,
        Some(&mut dx),
        Some(&mut dw),
        Some(&mut db),
        rows,
        inf,
        outf,
    )
    .unwrap();
    let fwd = |x: &[f64], w: &[f64], b: &[f64]| {
        let mut y = vec![0.0; rows * outf];
        be.linear_forward(
            &x.to_vec(),
            &w.to_vec(),
            Some(&b.to_vec()),
            &mut y,
            rows,
            inf,
            outf,
        )
        .unwrap();
        dot(&r, &y)
    };
    ok(check_grad("linear dx", &dx, &x, |t| fwd(t, &w, &b)));
    ok(check_grad("linear dweight", &dw, &w, |t| fwd(&x, t, &b)));
    ok(check_grad("linear dbias", &db, &b, |t| fwd(&x, &w, t)));
}

#[test]
fn activation_gradients() {
    let be = R::new();
    let x = data(5, 64, -6.0, 6.0);
    let r = data(6, 64, -1.0, 1.0);
    for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
        let mut dx = vec![0.0; 64];
        be.activation_backward(act, &x, &r, &mut dx).unwrap();
        ok(check_grad("activation dx", &dx, &x, |t| {
            let mut y = vec![0.0; 64];
            be.activation_forward(act, &t.to_vec(), &mut y).unwrap();
            dot(&r, &y)
        }));
    }
}

#[test]
fn bias_gradients() {
    let be = R::new();
    let (o, c, i) = (2, 3, 4);
    let (y0, b, r) = (
        data(7, o * c * i, -1.0, 1.0),
        data(8, c, -1.0, 1.0),
        data(9, o * c * i, -1.0, 1.0),
    );
    let mut db = vec![0.0; c];
    be.bias_backward(&r, &mut db, o, c, i).unwrap();
    ok(check_grad("bias dbias", &db, &b, |t| {
        let mut y = y0.clone();
        be.bias_add(&mut y, &t.to_vec(), o, c, i).unwrap();
        dot(&r, &y)
    }));
}

#[test]
fn layernorm_gradients() {
    let be = R::new();
    let (rows, cols) = (3, 7);
    for shift in [0.0, 100.0] {
        let x = data(10, rows * cols, shift - 1.0, shift + 1.0);
        let (g, b, r) = (
            data(11, cols, -1.0, 1.0),
            data(12, cols, -1.0, 1.0),
            data(13, rows * cols, -1.0, 1.0),
        );
        let fwd = |x: &[f64], g: &[f64], b: &[f64]| {
            let (mut y, mut m, mut s) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
            be.layernorm_forward(
                &x.to_vec(),
                &g.to_vec(),
                &b.to_vec(),
                &mut y,
                &mut m,
                &mut s,
                rows,
                cols,
                1e-5,
            )
            .unwrap();
            (dot(&r, &y), m, s)
        };
        let (_, m, s) = fwd(&x, &g, &b);
        let (mut dx, mut dg, mut db) = (vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]);
        be.layernorm_backward(&r, &x, &g, &m, &s, &mut dx, &mut dg, &mut db, rows, cols)
            .unwrap();
        ok(check_grad("layernorm dx", &dx, &x, |t| fwd(t, &g, &b).0));
        ok(check_grad("layernorm dgamma", &dg, &g, |t| {
            fwd(&x, t, &b).0
        }));
        ok(check_grad("layernorm dbeta", &db, &b, |t| fwd(&x, &g, t).0));
    }
}

#[test]
fn groupnorm_gradients() {
    let be = R::new();
    let s = GroupNormShape {
        batch: 2,
        channels: 6,
        spatial: 5,
        groups: 3,
    };
    let n = 2 * 6 * 5;
    let (x, g, b, r) = (
        data(14, n, -2.0, 2.0),
        data(15, 6, -1.0, 1.0),
        data(16, 6, -1.0, 1.0),
        data(17, n, -1.0, 1.0),
    );
    let fwd = |x: &[f64], g: &[f64], b: &[f64]| {
        let (mut y, mut m, mut rs) = (vec![0.0; n], vec![0.0; 6], vec![0.0; 6]);
        be.groupnorm_forward(
            &x.to_vec(),
            &g.to_vec(),
            &b.to_vec(),
            &mut y,
            &mut m,
            &mut rs,
            &s,
            1e-5,
        )
        .unwrap();
        (dot(&r, &y), m, rs)
    };
    let (_, m, rs) = fwd(&x, &g, &b);
    let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; 6], vec![0.0; 6]);
    be.groupnorm_backward(&r, &x, &g, &m, &rs, &mut dx, &mut dg, &mut db, &s)
        .unwrap();
    ok(check_grad("groupnorm dx", &dx, &x, |t| fwd(t, &g, &b).0));
    ok(check_grad("groupnorm dgamma", &dg, &g, |t| {
        fwd(&x, t, &b).0
    }));
    ok(check_grad("groupnorm dbeta", &db, &b, |t| fwd(&x, &g, t).0));
}

#[test]
fn upsample_gradients() {
    let be = R::new();
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        for factor in [1, 2, 3] {
            let s = UpsampleShape {
                batch: 1,
                channels: 2,
                height: 3,
                width: 4,
                factor,
            };
            let x = data(18, s.input_len(), -1.0, 1.0);
            let r = data(19, s.output_len(), -1.0, 1.0);
            let mut dx = vec![0.0; s.input_len()];
            be.upsample_backward(mode, &s, &r, &mut dx).unwrap();
            ok(check_grad("upsample dx", &dx, &x, |t| {
                let mut y = vec![0.0; s.output_len()];
                be.upsample_forward(mode, &s, &t.to_vec(), &mut y).unwrap();
                dot(&r, &y)
            }));
        }
    }
}

#[test]
fn dropout_gradients() {
    let be = R::new();
    let d = Dropout {
        p: 0.3,
        seed: 11,
        offset: 5,
    };
    let (x, r) = (data(20, 50, -1.0, 1.0), data(21, 50, -1.0, 1.0));
    let mut dx = vec![0.0; 50];
    be.dropout_backward(&d, &r, &mut dx).unwrap();
    ok(check_grad("dropout dx", &dx, &x, |t| {
        let mut y = vec![0.0; 50];
        be.dropout_forward(&d, &t.to_vec(), &mut y).unwrap();
        dot(&r, &y)
    }));
}

#[test]
fn gemm_is_linear_in_each_operand() {
    // GEMM's own backward is two GEMMs (dA = dC·Bᵀ, dB = Aᵀ·dC); check that identity
    // through the trait's transpose flags against finite differences.
    use brain_core::Gemm;
    let be = R::new();
    let (m, n, k) = (3, 4, 5);
    let (a, b, r) = (
        data(22, m * k, -1.0, 1.0),
        data(23, k * n, -1.0, 1.0),
        data(24, m * n, -1.0, 1.0),
    );
    let mut da = vec![0.0; m * k];
    be.gemm(&Gemm::new(m, k, n).trans(false, true), &r, &b, &mut da)
        .unwrap();
    let mut db = vec![0.0; k * n];
    be.gemm(&Gemm::new(k, n, m).trans(true, false), &a, &r, &mut db)
        .unwrap();
    let fwd = |a: &[f64], b: &[f64]| {
        let mut c = vec![0.0; m * n];
        be.gemm(&Gemm::new(m, n, k), &a.to_vec(), &b.to_vec(), &mut c)
            .unwrap();
        dot(&r, &c)
    };
    ok(check_grad("gemm dA", &da, &a, |t| fwd(t, &b)));
    ok(check_grad("gemm dB", &db, &b, |t| fwd(&a, t)));
}
