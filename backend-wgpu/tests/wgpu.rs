//! Checks specific to the wgpu backend: what the adapter is, the accuracy of the WGSL
//! erf, dispatches split past the per-dimension workgroup limit, BLAS's beta = 0,
//! empty buffers, and typed errors. Each test prints `skipped: …` without an adapter.

use backend_wgpu::WgpuBackend;
use brain_core::{Activation, Backend, BrainError, Gemm};

fn with(test: &str, body: impl FnOnce(&WgpuBackend)) {
    conformance::with_backend(WgpuBackend::new().map_err(|e| e.to_string()), test, body);
}

#[test]
fn adapter_is_described() {
    with("adapter_is_described", |be| {
        let l = be.limits();
        println!(
            "{}\n  max_storage_buffer_binding_size {}, max_buffer_size {}, \
             max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {}, \
             max_compute_workgroup_storage_size {}",
            be.name(),
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size
        );
        assert!(be.name().starts_with("wgpu ("));
        assert_eq!(be.adapter_info().backend, wgpu::Backend::Vulkan);
    });
}

/// The erf behind GELU, over a dense grid of [−6, 6] plus every float near 0 and near
/// the branch points, against libm's f64 erf: at most 2 ulp of the result (the fit
/// alone gives 1.4 ulp in a float32 simulation; the adapter's exp adds a little).
#[test]
fn erf_is_float32_accurate() {
    with("erf_is_float32_accurate", |be| {
        let mut x: Vec<f32> = (0..=240_000).map(|i| -6.0 + i as f32 * 5e-5).collect();
        for c in [1.0f32, 4.0] {
            let mut v = c;
            for _ in 0..2000 {
                x.extend([v, -v]);
                v = f32::from_bits(v.to_bits() - 1);
            }
            let mut v = c;
            for _ in 0..2000 {
                x.extend([v, -v]);
                v = f32::from_bits(v.to_bits() + 1);
            }
        }
        x.extend((0..200).map(|i| 1e-30f32 * 1.5f32.powi(i)));
        x.extend([0.0, -0.0, 10.0, -10.0, f32::INFINITY, f32::NEG_INFINITY]);
        let xb = be.upload(&x).unwrap();
        let mut yb = be.alloc(x.len()).unwrap();
        be.erf_probe(&xb, &mut yb).unwrap();
        let y = be.download_vec(&yb).unwrap();
        let (mut worst, mut at, mut worst_abs) = (0.0f64, 0.0f32, 0.0f64);
        for (&xi, &yi) in x.iter().zip(&y) {
            let want = libm::erf(xi as f64);
            let ulp = ((want.abs() as f32).to_bits() + 1).min(0x7f7f_ffff);
            let ulp = (f32::from_bits(ulp) as f64 - want.abs() as f32 as f64)
                .max(f64::from(f32::MIN_POSITIVE));
            let err = (yi as f64 - want).abs();
            worst_abs = worst_abs.max(err);
            if err / ulp > worst {
                worst = err / ulp;
                at = xi;
            }
        }
        println!(
            "erf on the adapter: max error {worst:.2} ulp at x = {at:e}, {worst_abs:.2e} absolute"
        );
        assert!(worst <= 2.0, "erf error {worst} ulp at x = {at}");
    });
}

/// More workgroups than one dimension allows (65 535 on most adapters): an
/// element-wise kernel over 2^24 + 3 elements.
#[test]
fn dispatch_splits_past_the_dimension_limit() {
    with("dispatch_splits_past_the_dimension_limit", |be| {
        let max = be.limits().max_compute_workgroups_per_dimension as usize;
        let n = (max * 256 + 3).max((1 << 24) + 3);
        let a: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
        let ab = be.upload(&a).unwrap();
        let mut ob = be.alloc(n).unwrap();
        be.fill(&mut ob, 0.5).unwrap();
        be.axpy(2.0, &ab, &mut ob).unwrap();
        let o = be.download_vec(&ob).unwrap();
        assert!(o.iter().zip(&a).all(|(o, a)| *o == 0.5 + 2.0 * a));
    });
}

/// The same split in every kernel that decodes a linear workgroup index, with the
/// per-dimension limit lowered to 5 so that small problems spread over x, y and z
/// (the GEMM would need 65 536 tiles, minutes on lavapipe, to hit the real limit).
#[test]
fn every_kernel_undoes_the_split() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: every_kernel_undoes_the_split: {e}"),
    };
    be.limit_workgroups_per_dimension(5);
    let or = brain_core::reference::ReferenceBackend::<f64>::new();
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap()
    };
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let vals =
        |n: usize, m: usize| -> Vec<f64> { (0..n).map(|i| ((i * 7) % m) as f64 - 3.0).collect() };

    // 20 matrices of 70×65: 2·2·20 = 80 tiles, dispatched as 5×5×4 with the last
    // layer partly idle. Small integers: every sum is exact.
    let g = Gemm::new(70, 65, 9)
        .trans(true, false)
        .scale(1.0, -1.0)
        .batched_dense(20);
    let (a, b, c) = (
        vals(70 * 9 * 20, 5),
        vals(9 * 65 * 20, 7),
        vals(70 * 65 * 20, 3),
    );
    let mut cb = up(&c);
    be.gemm(&g, &up(&a), &up(&b), &mut cb).unwrap();
    let mut want = c.clone();
    or.gemm(&g, &a, &b, &mut want).unwrap();
    assert_eq!(down(&cb), want, "gemm");

    // 40 channels, one workgroup each (5×5×2); 10 000 elements, 40 workgroups.
    let dy = vals(5 * 40 * 6, 9);
    let mut db = up(&[1.0; 40]);
    be.bias_backward(&up(&dy), &mut db, 5, 40, 6).unwrap();
    let mut want = vec![1.0; 40];
    or.bias_backward(&dy, &mut want, 5, 40, 6).unwrap();
    assert_eq!(down(&db), want, "bias_backward");

    let x = vals(10_000, 11);
    let mut xb = up(&x);
    be.scale(&mut xb, 2.0).unwrap();
    assert_eq!(
        down(&xb),
        x.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
        "scale"
    );

    // More workgroups than 5³ = 125 allow: a typed error, not a wrong answer.
    let mut big = be.alloc(126 * 256).unwrap();
    assert!(matches!(
        be.fill(&mut big, 1.0),
        Err(BrainError::Unsupported(_))
    ));
}

/// beta = 0 overwrites C without reading it, as BLAS does: NaN in C must not leak.
#[test]
fn gemm_beta_zero_overwrites_nan() {
    with("gemm_beta_zero_overwrites_nan", |be| {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let g = Gemm::new(3, 5, 4).trans(ta, tb).scale(2.0, 0.0);
            let a = be.upload(&[1.0; 12]).unwrap();
            let b = be.upload(&[0.5; 20]).unwrap();
            let mut c = be.upload(&[f32::NAN; 15]).unwrap();
            be.gemm(&g, &a, &b, &mut c).unwrap();
            assert_eq!(be.download_vec(&c).unwrap(), vec![4.0; 15]);
        }
    });
}

/// Zero-length buffers work everywhere (wgpu itself cannot map or bind zero bytes).
#[test]
fn empty_buffers() {
    with("empty_buffers", |be| {
        let a = be.upload(&[]).unwrap();
        let mut b = be.alloc(0).unwrap();
        assert_eq!(be.len(&a), 0);
        be.write(&mut b, &[]).unwrap();
        be.copy(&a, &mut b).unwrap();
        be.fill(&mut b, 1.0).unwrap();
        be.scale(&mut b, 2.0).unwrap();
        be.activation_forward(Activation::GeluErf, &a, &mut b)
            .unwrap();
        be.gemm(&Gemm::new(0, 3, 2), &a, &a, &mut b).unwrap();
        assert!(be.download_vec(&b).unwrap().is_empty());
        be.sync().unwrap();
    });
}

/// write lands after the work queued before it and before the work queued after it.
#[test]
fn write_is_ordered() {
    with("write_is_ordered", |be| {
        let mut x = be.upload(&[1.0, 2.0, 3.0]).unwrap();
        let mut y = be.alloc(3).unwrap();
        be.copy(&x, &mut y).unwrap();
        be.write(&mut x, &[10.0, 20.0, 30.0]).unwrap();
        be.axpy(1.0, &x, &mut y).unwrap();
        assert_eq!(be.download_vec(&y).unwrap(), vec![11.0, 22.0, 33.0]);
        assert_eq!(be.download_vec(&x).unwrap(), vec![10.0, 20.0, 30.0]);
    });
}

/// Bad lengths are typed errors, unwritten kernels say so, and a huge alloc is an
/// out-of-memory error: none of them panics.
#[test]
fn errors_are_typed() {
    with("errors_are_typed", |be| {
        let x = be.upload(&[1.0; 8]).unwrap();
        let mut y = be.alloc(5).unwrap();
        let w = be.upload(&[1.0; 12]).unwrap();
        assert!(matches!(
            be.linear_forward(&x, &w, None, &mut y, 2, 4, 3),
            Err(BrainError::ShapeMismatch { arg: "y", .. })
        ));
        assert!(matches!(
            be.add(&x, &x, &mut y),
            Err(BrainError::ShapeMismatch { .. })
        ));
        let mut d = be.alloc(8).unwrap();
        match be.dropout_forward(
            &brain_core::Dropout {
                p: 0.5,
                seed: 1,
                offset: 0,
            },
            &x,
            &mut d,
        ) {
            Err(BrainError::Unsupported(m)) => assert!(m.contains("not implemented yet"), "{m}"),
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(matches!(
            be.alloc(usize::MAX / 2),
            Err(BrainError::OutOfMemory { .. })
        ));
        be.sync().unwrap();
    });
}

/// The contrastive family past the sizes the shared suite reaches, with the dispatch
/// split over x, y and z (8 workgroups per dimension): rows longer than one 4096-value
/// chunk of the row sums (partials, then a second tree), a Gram pass split over many
/// depth chunks and over several tiles, and n = 300 logits (more than one value per
/// invocation in every per-index reduction) at τ = 0.005.
#[test]
fn contrastive_long_rows_and_many_logits() {
    use brain_core::ContrastiveLoss::{InfoNce, SoftClip};
    use conformance::data::{Oracle, Rng};
    use conformance::tolerance::{check_close, check_close_with, Tol};
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: contrastive_long_rows_and_many_logits: {e}"),
    };
    be.limit_workgroups_per_dimension(8);
    let or = Oracle::new();
    let u = f64::from(f32::EPSILON) / 2.0;
    let f32s = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|&x| f64::from(x as f32)).collect() };
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap()
    };
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let ok = |r: Result<(), String>| r.unwrap_or_else(|m| panic!("{m}"));
    let mut r = Rng::new(7);

    // Row normalisation over 3 rows of 3·4096 + 17: trees of trees, error ~30·u.
    const TREE: &str = "tree sums: ~(16 + 8 + 2)·u of the row's scale";
    let (rows, cols) = (3, 3 * 4096 + 17);
    let x = f32s(r.vec(rows * cols, -1.0, 1.0));
    let dy = f32s(r.vec(rows * cols, -1.0, 1.0));
    let (mut yb, mut nb, mut dxb) = (
        be.alloc(rows * cols).unwrap(),
        be.alloc(rows).unwrap(),
        be.alloc(rows * cols).unwrap(),
    );
    let xb = up(&x);
    be.l2_normalize_rows_forward(&xb, &mut yb, &mut nb, rows, cols)
        .unwrap();
    be.l2_normalize_rows_backward(&up(&dy), &xb, &nb, &mut dxb, rows, cols)
        .unwrap();
    let (mut y, mut nr, mut dx) = (
        vec![0.0; rows * cols],
        vec![0.0; rows],
        vec![0.0; rows * cols],
    );
    or.l2_normalize_rows_forward(&x, &mut y, &mut nr, rows, cols)
        .unwrap();
    or.l2_normalize_rows_backward(&dy, &x, &nr, &mut dx, rows, cols)
        .unwrap();
    let t = Tol::new(0.0, 64.0 * u, TREE);
    ok(check_close("norms", &down(&nb), &nr, t));
    ok(check_close(
        "y",
        &down(&yb),
        &y,
        Tol::new(64.0 * u, 64.0 * u, TREE),
    ));
    let scale = 1.0 / nr.iter().fold(f64::INFINITY, |m, &v| m.min(v));
    ok(check_close(
        "dx",
        &down(&dxb),
        &dx,
        Tol::new(64.0 * u * scale, 64.0 * u, TREE),
    ));

    // Gram pass: 5 rows of 20 000 (20 depth chunks, one tile) and 70 rows of 3 000
    // (SoftCLIP: 140 stacked rows, 3×2 tiles, 3 chunks).
    const GRAM: &str = "sequential f32 sums within a depth chunk of ≤ 1024, then across \
        the chunks: ≤ (1024 + chunks)·u of Σ|products|; squared norms are trees";
    for (n, d, kind) in [(5, 20_000, InfoNce), (70, 3_000, SoftClip)] {
        let soft = kind == SoftClip;
        let p = f32s(r.vec(n * d, -1.0, 1.0));
        let t = f32s(r.vec(n * d, -1.0, 1.0));
        let (mut psb, mut tsb) = (be.alloc(n).unwrap(), be.alloc(n).unwrap());
        let (mut gpb, mut gtb) = (up(&vec![7.0; n * n]), up(&vec![7.0; n * n]));
        be.clip_grams_forward(
            kind,
            &up(&p),
            &up(&t),
            n,
            d,
            &mut psb,
            &mut tsb,
            &mut gpb,
            soft.then_some(&mut gtb),
        )
        .unwrap();
        let (mut ps, mut ts) = (vec![0.0; n], vec![0.0; n]);
        let (mut gp, mut gt) = (vec![0.0; n * n], vec![0.0; n * n]);
        or.clip_grams_forward(
            kind,
            &p,
            &t,
            n,
            d,
            &mut ps,
            &mut ts,
            &mut gp,
            soft.then_some(&mut gt),
        )
        .unwrap();
        let abs = |a: &[f64], i: usize, b: &[f64], j: usize| -> f64 {
            (0..d).map(|k| (a[i * d + k] * b[j * d + k]).abs()).sum()
        };
        let k = (1024.0 + d as f64 / 1024.0 + 2.0) * u;
        ok(check_close(
            "p_sq",
            &down(&psb),
            &ps,
            Tol::new(0.0, 64.0 * u, GRAM),
        ));
        ok(check_close(
            "t_sq",
            &down(&tsb),
            &ts,
            Tol::new(0.0, 64.0 * u, GRAM),
        ));
        ok(check_close_with("g_pt", &down(&gpb), &gp, |x| {
            Tol::new(k * abs(&p, x / n, &t, x % n), 0.0, GRAM)
        }));
        if soft {
            ok(check_close_with("g_tt", &down(&gtb), &gt, |x| {
                Tol::new(k * abs(&t, x / n, &t, x % n), 0.0, GRAM)
            }));
        }
    }

    // n = 300 logits at τ = 0.005 (±200), both losses, forward and backward.
    const LOGITS: &str = "the conformance suite's bound: 16·u·(1 + max|C| + n)";
    let n = 300;
    let tau = 0.005;
    let pt = f32s(r.vec(n * n, -1.0 / tau, 1.0 / tau));
    let mut tt = r.vec(n * n, -1.0 / tau, 1.0 / tau);
    for i in 0..n {
        tt[i * n + i] = 1.0 / tau;
    }
    let tt = f32s(tt);
    let (ptb, ttb) = (up(&pt), up(&tt));
    let k = 16.0 * u * (1.0 + 1.0 / tau + n as f64);
    for kind in [SoftClip, InfoNce] {
        let soft = kind == SoftClip;
        let mut lb = be.alloc(1).unwrap();
        be.contrastive_forward(kind, &ptb, soft.then_some(&ttb), n, &mut lb)
            .unwrap();
        let mut l = vec![0.0];
        or.contrastive_forward(kind, &pt, soft.then_some(&tt), n, &mut l)
            .unwrap();
        ok(check_close("loss", &down(&lb), &l, Tol::new(k, k, LOGITS)));
        let (mut dpb, mut dtb) = (be.alloc(n * n).unwrap(), up(&vec![3.0; n * n]));
        be.contrastive_backward(
            kind,
            &ptb,
            soft.then_some(&ttb),
            n,
            1.5,
            &mut dpb,
            Some(&mut dtb),
        )
        .unwrap();
        let (mut dp, mut dt) = (vec![0.0; n * n], vec![0.0; n * n]);
        or.contrastive_backward(
            kind,
            &pt,
            soft.then_some(&tt),
            n,
            1.5,
            &mut dp,
            Some(&mut dt),
        )
        .unwrap();
        let gs = 1.5 / n as f64;
        ok(check_close(
            "dlogits_pt",
            &down(&dpb),
            &dp,
            Tol::new(k * gs, k, LOGITS),
        ));
        let cmax = 1.0 + 1.0 / tau + n as f64;
        ok(check_close(
            "dlogits_tt",
            &down(&dtb),
            &dt,
            Tol::new(k * gs * cmax, k, LOGITS),
        ));
    }
}

/// NaN and ±Inf through the contrastive kernels as through the oracle: a NaN or +Inf
/// logit makes the loss NaN; a NaN row of the normalisation stays NaN; the Gram of a
/// NaN input is NaN where the oracle's is.
#[test]
fn contrastive_nonfinite() {
    use brain_core::ContrastiveLoss::{InfoNce, SoftClip};
    with("contrastive_nonfinite", |be| {
        let n = 4;
        let base: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 - 2.0).collect();
        for bad in [f32::NAN, f32::INFINITY] {
            for kind in [SoftClip, InfoNce] {
                let mut pt = base.clone();
                pt[6] = bad;
                let (ptb, ttb) = (be.upload(&pt).unwrap(), be.upload(&base).unwrap());
                let mut lb = be.alloc(1).unwrap();
                be.contrastive_forward(kind, &ptb, Some(&ttb), n, &mut lb)
                    .unwrap();
                let l = be.download_vec(&lb).unwrap()[0];
                assert!(l.is_nan(), "{kind:?} loss with a {bad} logit: {l}");
                let mut dpb = be.alloc(n * n).unwrap();
                be.contrastive_backward(kind, &ptb, Some(&ttb), n, 1.0, &mut dpb, None)
                    .unwrap();
                let dp = be.download_vec(&dpb).unwrap();
                // Row 1 and column 2 of the softmaxes hold the bad logit.
                assert!(
                    dp[6].is_nan(),
                    "{kind:?} dlogits at the {bad} logit: {}",
                    dp[6]
                );
            }
        }
        // −Inf is an ordinary zero probability.
        let mut pt = base.clone();
        pt[6] = f32::NEG_INFINITY;
        let mut lb = be.alloc(1).unwrap();
        be.contrastive_forward(InfoNce, &be.upload(&pt).unwrap(), None, n, &mut lb)
            .unwrap();
        assert!(be.download_vec(&lb).unwrap()[0].is_finite());

        let mut x = vec![1.0f32; 12];
        x[5] = f32::NAN;
        let (mut yb, mut nb) = (be.alloc(12).unwrap(), be.alloc(3).unwrap());
        be.l2_normalize_rows_forward(&be.upload(&x).unwrap(), &mut yb, &mut nb, 3, 4)
            .unwrap();
        let y = be.download_vec(&yb).unwrap();
        let nr = be.download_vec(&nb).unwrap();
        assert!(nr[1].is_nan() && y[4..8].iter().all(|v| v.is_nan()));
        assert!(y[..4].iter().chain(&y[8..]).all(|&v| v == 0.5));
    });
}
