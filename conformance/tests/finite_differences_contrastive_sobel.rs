//! The f64 reference's contrastive and Sobel backward kernels against central
//! differences of their forward kernels (see `conformance::finite_diff` for the
//! tolerance), the composite `ClipLoss` likewise, and the f64 reference against
//! PyTorch's float64 golden values.

use brain_core::loss::contrastive::ClipLoss;
use brain_core::reference::ReferenceBackend;
use brain_core::{Backend, ContrastiveLoss, ImageShape, SobelLossForm};
use conformance::finite_diff::{check_grad, data, dot};

type R = ReferenceBackend<f64>;

fn ok(r: Result<(), String>) {
    if let Err(m) = r {
        panic!("{m}");
    }
}

#[test]
fn reference_f64_matches_pytorch_contrastive_sobel() {
    conformance::golden_contrastive_sobel::check(&R::new());
}

#[test]
fn l2_normalize_gradients() {
    let be = R::new();
    let (rows, cols) = (3, 7);
    let x = data(1, rows * cols, -1.0, 1.0);
    let r = data(2, rows * cols, -1.0, 1.0);
    let mut y = vec![0.0; rows * cols];
    let mut norms = vec![0.0; rows];
    be.l2_normalize_rows_forward(&x, &mut y, &mut norms, rows, cols)
        .unwrap();
    let mut dx = vec![0.0; rows * cols];
    be.l2_normalize_rows_backward(&r, &x, &norms, &mut dx, rows, cols)
        .unwrap();
    ok(check_grad("l2_normalize dx", &dx, &x, |t| {
        let (mut y, mut n) = (vec![0.0; rows * cols], vec![0.0; rows]);
        be.l2_normalize_rows_forward(&t.to_vec(), &mut y, &mut n, rows, cols)
            .unwrap();
        dot(&r, &y)
    }));
}

#[test]
fn contrastive_logit_gradients() {
    let be = R::new();
    let n = 5;
    // τ = 0.1: logits in ±10, where the central difference is still accurate.
    let pt = data(3, n * n, -10.0, 10.0);
    let tt = data(4, n * n, -10.0, 10.0);
    let scale = 0.7;
    for kind in [ContrastiveLoss::SoftClip, ContrastiveLoss::InfoNce] {
        let soft = kind == ContrastiveLoss::SoftClip;
        let (mut dpt, mut dtt) = (vec![0.0; n * n], vec![0.0; n * n]);
        be.contrastive_backward(
            kind,
            &pt,
            soft.then_some(&tt),
            n,
            scale,
            &mut dpt,
            Some(&mut dtt),
        )
        .unwrap();
        let loss = |p: &[f64], t: &[f64]| {
            let mut l = vec![0.0];
            let t = t.to_vec();
            be.contrastive_forward(kind, &p.to_vec(), soft.then_some(&t), n, &mut l)
                .unwrap();
            scale * l[0]
        };
        ok(check_grad("contrastive dlogits_pt", &dpt, &pt, |p| {
            loss(p, &tt)
        }));
        ok(check_grad("contrastive dlogits_tt", &dtt, &tt, |t| {
            loss(&pt, t)
        }));
    }
}

#[test]
fn clip_loss_gradients() {
    let be = R::new();
    let (n, d) = (4, 6);
    let p = data(5, n * d, -1.0, 1.0);
    let t = data(6, n * d, -1.0, 1.0);
    let scale = 1.3;
    for kind in [ContrastiveLoss::SoftClip, ContrastiveLoss::InfoNce] {
        let mut clip = ClipLoss::new(&be, n, d, kind, 0.1).unwrap();
        let mut l = vec![0.0];
        clip.forward(&be, &p, &t, &mut l).unwrap();
        let (mut dp, mut dt) = (vec![0.0; n * d], vec![0.0; n * d]);
        clip.backward(&be, &p, &t, scale, Some(&mut dp), Some(&mut dt))
            .unwrap();
        let mut loss = |a: &[f64], b: &[f64]| {
            let mut l = vec![0.0];
            clip.forward(&be, &a.to_vec(), &b.to_vec(), &mut l).unwrap();
            scale * l[0]
        };
        ok(check_grad("ClipLoss dpreds", &dp, &p, |a| loss(a, &t)));
        ok(check_grad("ClipLoss dtargets", &dt, &t, |b| loss(&p, b)));
    }
}

#[test]
fn sobel_gradients() {
    let be = R::new();
    let s = ImageShape {
        batch: 2,
        channels: 2,
        height: 4,
        width: 5,
    };
    let n = s.len();
    let x = data(7, n, -1.0, 1.0);
    let (rx, ry, rm) = (
        data(8, n, -1.0, 1.0),
        data(9, n, -1.0, 1.0),
        data(10, n, -1.0, 1.0),
    );
    let mut dx = vec![0.0; n];
    be.sobel_backward(&x, &s, Some(&rx), Some(&ry), Some(&rm), &mut dx)
        .unwrap();
    ok(check_grad("sobel dx", &dx, &x, |t| {
        let (mut gx, mut gy, mut m) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        be.sobel_forward(&t.to_vec(), &s, &mut gx, &mut gy, &mut m)
            .unwrap();
        dot(&rx, &gx) + dot(&ry, &gy) + dot(&rm, &m)
    }));
}

#[test]
fn sobel_loss_gradients() {
    let be = R::new();
    let s = ImageShape {
        batch: 1,
        channels: 3,
        height: 5,
        width: 3,
    };
    let n = s.len();
    let p = data(11, n, -1.0, 1.0);
    let t = data(12, n, -1.0, 1.0);
    let scale = -0.7;
    for form in [SobelLossForm::Magnitude, SobelLossForm::Components] {
        // accumulation: start from ones, subtract them afterwards
        let (mut dp, mut dt) = (vec![1.0; n], vec![1.0; n]);
        be.sobel_loss_backward(&p, &t, &s, form, scale, Some(&mut dp), Some(&mut dt))
            .unwrap();
        dp.iter_mut().chain(dt.iter_mut()).for_each(|v| *v -= 1.0);
        let loss = |a: &[f64], b: &[f64]| {
            let mut l = vec![0.0];
            be.sobel_loss_forward(&a.to_vec(), &b.to_vec(), &s, form, &mut l)
                .unwrap();
            scale * l[0]
        };
        ok(check_grad("sobel_loss dpred", &dp, &p, |a| loss(a, &t)));
        ok(check_grad("sobel_loss dtarget", &dt, &t, |b| loss(&p, b)));
    }
}
