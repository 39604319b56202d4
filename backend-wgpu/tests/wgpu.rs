//! Checks specific to the wgpu backend: what the adapter is, the accuracy of the WGSL
//! erf, dispatches split past the per-dimension workgroup limit, BLAS's beta = 0,
//! empty buffers, and typed errors. Each test prints `skipped: …` without an adapter.

use backend_wgpu::WgpuBackend;
use brain_core::{Activation, Backend, BrainError, Gemm, RowReduce};

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

/// Norms and row reductions where the conformance shapes do not reach: rows longer
/// than a workgroup's chunked share (200 000 values), parameter gradients over enough
/// rows (40 000) for three levels of column sums, GroupNorm with one value per
/// channel (one invocation per channel segment) and with long channels. Constant data
/// is the worst case for a sequential f32 sum (the rounding errors all lean the same
/// way): the blocked orders stay within a few dozen u of the exact sum. Results are
/// also bit-identical from run to run (the summation order is fixed).
#[test]
fn norms_and_reductions_long_and_many_rows() {
    with("norms_and_reductions_long_and_many_rows", |be| {
        let u = f64::from(f32::EPSILON) / 2.0;
        let tenth = f64::from(0.1f32);
        let rel = |got: f32, want: f64| (f64::from(got) - want).abs() / want.abs();

        // reduce_rows: Σ over 200 000 copies of 0.1f32, and the mean.
        let cols = 200_000;
        let x = be.upload(&vec![0.1f32; 2 * cols]).unwrap();
        let mut out = be.alloc(2).unwrap();
        for (op, want) in [
            (RowReduce::Sum, tenth * cols as f64),
            (RowReduce::Mean, tenth),
            (
                RowReduce::SumSquares,
                f64::from(0.1f32 * 0.1f32) * cols as f64,
            ),
        ] {
            be.reduce_rows(op, &x, &mut out, 2, cols).unwrap();
            for got in be.download_vec(&out).unwrap() {
                assert!(rel(got, want) <= 80.0 * u, "{op:?}: {got} vs {want}");
            }
        }

        // LayerNorm over a 200 000-long row offset by 100: the mean to a few u.
        let xs: Vec<f32> = (0..cols).map(|i| 100.0 + (i % 7) as f32 * 0.25).collect();
        let want_mean = xs.iter().map(|&v| f64::from(v)).sum::<f64>() / cols as f64;
        let xb = be.upload(&xs).unwrap();
        let ones = be.upload(&vec![1.0; cols]).unwrap();
        let zeros = be.alloc(cols).unwrap();
        let (mut y, mut m, mut r) = (
            be.alloc(cols).unwrap(),
            be.alloc(1).unwrap(),
            be.alloc(1).unwrap(),
        );
        be.layernorm_forward(&xb, &ones, &zeros, &mut y, &mut m, &mut r, 1, cols, 1e-5)
            .unwrap();
        let got_mean = be.download_vec(&m).unwrap()[0];
        assert!(
            rel(got_mean, want_mean) <= 4.0 * u,
            "mean {got_mean} vs {want_mean}"
        );

        // LayerNorm backward over 40 000 rows of 3: dβ = Σ dy over the rows.
        let (rows, cols) = (40_000, 3);
        let xs: Vec<f32> = (0..rows * cols).map(|i| (i % 5) as f32 - 2.0).collect();
        let xb = be.upload(&xs).unwrap();
        let g = be.upload(&[1.0, 0.5, -1.0]).unwrap();
        let zeros = be.alloc(cols).unwrap();
        let (mut y, mut m, mut r) = (
            be.alloc(rows * cols).unwrap(),
            be.alloc(rows).unwrap(),
            be.alloc(rows).unwrap(),
        );
        be.layernorm_forward(&xb, &g, &zeros, &mut y, &mut m, &mut r, rows, cols, 1e-5)
            .unwrap();
        let dy = be.upload(&vec![0.1f32; rows * cols]).unwrap();
        let run = || {
            let mut dx = be.alloc(rows * cols).unwrap();
            let mut dg = be.alloc(cols).unwrap();
            let mut db = be.upload(&[1.0; 3]).unwrap();
            be.layernorm_backward(&dy, &xb, &g, &m, &r, &mut dx, &mut dg, &mut db, rows, cols)
                .unwrap();
            (
                be.download_vec(&dx).unwrap(),
                be.download_vec(&dg).unwrap(),
                be.download_vec(&db).unwrap(),
            )
        };
        let first = run();
        assert_eq!(first, run(), "layernorm_backward is not deterministic");
        let want = 1.0 + tenth * rows as f64;
        for &got in &first.2 {
            assert!(rel(got, want) <= 80.0 * u, "dbeta {got} vs {want}");
        }
        // x̂ per row, from the saved statistics, summed in f64.
        let (mh, rh) = (be.download_vec(&m).unwrap(), be.download_vec(&r).unwrap());
        for c in 0..cols {
            let (mut want, mut abs) = (0.0f64, 0.0f64);
            for row in 0..rows {
                let xhat = (xs[row * cols + c] - mh[row]) * rh[row];
                let t = f64::from(0.1f32 * xhat);
                want += t;
                abs += t.abs();
            }
            let err = (f64::from(first.1[c]) - want).abs();
            assert!(
                err <= 80.0 * u * abs,
                "dgamma[{c}] {} vs {want}",
                first.1[c]
            );
        }

        // GroupNorm backward, batch 300 (three levels would need more; two here) with
        // one value per channel, and batch 2 with 5000 values per channel.
        for (batch, channels, groups, spatial) in [(300, 12, 3, 1), (2, 6, 2, 5000)] {
            let s = brain_core::GroupNormShape {
                batch,
                channels,
                spatial,
                groups,
            };
            let n = batch * channels * spatial;
            let xs: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 * 0.5 - 2.0).collect();
            let xb = be.upload(&xs).unwrap();
            let gamma = be.upload(&vec![1.0; channels]).unwrap();
            let zeros = be.alloc(channels).unwrap();
            let (mut y, mut m, mut r) = (
                be.alloc(n).unwrap(),
                be.alloc(batch * groups).unwrap(),
                be.alloc(batch * groups).unwrap(),
            );
            be.groupnorm_forward(&xb, &gamma, &zeros, &mut y, &mut m, &mut r, &s, 1e-5)
                .unwrap();
            let dy = be.upload(&vec![0.1f32; n]).unwrap();
            let (mut dx, mut dg, mut db) = (
                be.alloc(n).unwrap(),
                be.alloc(channels).unwrap(),
                be.alloc(channels).unwrap(),
            );
            be.groupnorm_backward(&dy, &xb, &gamma, &m, &r, &mut dx, &mut dg, &mut db, &s)
                .unwrap();
            let want = tenth * (batch * spatial) as f64;
            for got in be.download_vec(&db).unwrap() {
                assert!(
                    rel(got, want) <= 80.0 * u,
                    "groupnorm dbeta {got} vs {want}"
                );
            }
            // dy constant and γ = 1: dx = rstd·(0.1 − 0.1 − x̂·mean(0.1·x̂)) ≈ 0.
            let worst = be
                .download_vec(&dx)
                .unwrap()
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            assert!(worst < 1e-5, "groupnorm dx should vanish, got {worst}");
        }
    });
}

/// The norm and reduction kernels under a dispatch split over x, y and z (the
/// per-dimension limit lowered to 5, so 26 to 125 workgroups reach z), against the f64
/// reference: long rows (one per workgroup) and short rows (several per workgroup).
#[test]
fn norms_and_reductions_undo_the_split() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: norms_and_reductions_undo_the_split: {e}"),
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
    let close = |what: &str, got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    };
    let vals = |n: usize, m: usize| -> Vec<f64> {
        (0..n).map(|i| ((i * 7) % m) as f64 * 0.25 - 1.0).collect()
    };

    // LayerNorm: 110 rows of 300 (a workgroup each: 5×5×5, the last layer partly
    // idle), and 7000 rows of 3 (64 per workgroup: 110 workgroups; the parameter
    // gradients' 55 blocks of 128 rows).
    for (rows, cols) in [(110, 300), (7000, 3)] {
        let (x, g, b, dy) = (
            vals(rows * cols, 13),
            vals(cols, 5),
            vals(cols, 3),
            vals(rows * cols, 9),
        );
        let (xb, gb, bb) = (up(&x), up(&g), up(&b));
        let (mut yb, mut mb, mut rb) = (
            be.alloc(rows * cols).unwrap(),
            be.alloc(rows).unwrap(),
            be.alloc(rows).unwrap(),
        );
        be.layernorm_forward(&xb, &gb, &bb, &mut yb, &mut mb, &mut rb, rows, cols, 1e-5)
            .unwrap();
        let (mut y, mut m, mut r) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
        or.layernorm_forward(&x, &g, &b, &mut y, &mut m, &mut r, rows, cols, 1e-5)
            .unwrap();
        close("layernorm y", &down(&yb), &y);
        close("layernorm rstd", &down(&rb), &r);
        let (mut dxb, mut dgb, mut dbb) = (
            be.alloc(rows * cols).unwrap(),
            be.alloc(cols).unwrap(),
            be.alloc(cols).unwrap(),
        );
        be.layernorm_backward(
            &up(&dy),
            &xb,
            &gb,
            &mb,
            &rb,
            &mut dxb,
            &mut dgb,
            &mut dbb,
            rows,
            cols,
        )
        .unwrap();
        let (mut dx, mut dg, mut db) = (vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]);
        or.layernorm_backward(&dy, &x, &g, &m, &r, &mut dx, &mut dg, &mut db, rows, cols)
            .unwrap();
        close("layernorm dx", &down(&dxb), &dx);
        close("layernorm dgamma", &down(&dgb), &dg);
        close("layernorm dbeta", &down(&dbb), &db);
    }

    // GroupNorm: 37·3 = 111 groups of 2·128 values, a workgroup each.
    let s = brain_core::GroupNormShape {
        batch: 37,
        channels: 6,
        spatial: 128,
        groups: 3,
    };
    let (n, ng) = (37 * 6 * 128, 37 * 3);
    let (x, g, b, dy) = (vals(n, 13), vals(6, 5), vals(6, 3), vals(n, 9));
    let (xb, gb, bb) = (up(&x), up(&g), up(&b));
    let (mut yb, mut mb, mut rb) = (
        be.alloc(n).unwrap(),
        be.alloc(ng).unwrap(),
        be.alloc(ng).unwrap(),
    );
    be.groupnorm_forward(&xb, &gb, &bb, &mut yb, &mut mb, &mut rb, &s, 1e-5)
        .unwrap();
    let (mut y, mut m, mut r) = (vec![0.0; n], vec![0.0; ng], vec![0.0; ng]);
    or.groupnorm_forward(&x, &g, &b, &mut y, &mut m, &mut r, &s, 1e-5)
        .unwrap();
    close("groupnorm y", &down(&yb), &y);
    let (mut dxb, mut dgb, mut dbb) = (
        be.alloc(n).unwrap(),
        be.alloc(6).unwrap(),
        be.alloc(6).unwrap(),
    );
    be.groupnorm_backward(
        &up(&dy),
        &xb,
        &gb,
        &mb,
        &rb,
        &mut dxb,
        &mut dgb,
        &mut dbb,
        &s,
    )
    .unwrap();
    let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; 6], vec![0.0; 6]);
    or.groupnorm_backward(&dy, &x, &g, &m, &r, &mut dx, &mut dg, &mut db, &s)
        .unwrap();
    close("groupnorm dx", &down(&dxb), &dx);
    close("groupnorm dgamma", &down(&dgb), &dg);
    close("groupnorm dbeta", &down(&dbb), &db);

    // reduce_rows: 120 rows of 300 (a workgroup each) and 7000 rows of 3 (64 per
    // workgroup: 110 workgroups).
    for (rows, cols) in [(120, 300), (7000, 3)] {
        let x = vals(rows * cols, 17);
        let xb = up(&x);
        for op in [RowReduce::Sum, RowReduce::Max, RowReduce::LogSumExp] {
            let mut ob = be.alloc(rows).unwrap();
            be.reduce_rows(op, &xb, &mut ob, rows, cols).unwrap();
            let mut want = vec![0.0; rows];
            or.reduce_rows(op, &x, &mut want, rows, cols).unwrap();
            close("reduce_rows", &down(&ob), &want);
        }
    }
}
