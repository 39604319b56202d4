//! Checks specific to the wgpu backend: what the adapter is, the accuracy of the WGSL
//! erf, dispatches split past the per-dimension workgroup limit, BLAS's beta = 0,
//! empty buffers, typed errors, the buffer pool, tensors larger than one storage
//! binding, and device timestamps. Each test prints `skipped: …` without an adapter.

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
             max_compute_workgroup_storage_size {}, min_storage_buffer_offset_alignment {}\n  \
             adapter features: {:?}\n  SHADER_F16: {}",
            be.name(),
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size,
            l.min_storage_buffer_offset_alignment,
            be.adapter_features(),
            be.adapter_features().contains(wgpu::Features::SHADER_F16)
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

/// Bad lengths are typed errors, unwritten kernels say so, and a huge alloc (or one
/// past the adapter's max_buffer_size) is an out-of-memory error: none of them panics.
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
        // One element past the adapter's max_buffer_size: refused before the driver.
        let past = be.limits().max_buffer_size / 4 + 1;
        assert!(matches!(
            be.alloc(past as usize),
            Err(BrainError::OutOfMemory { .. })
        ));
        be.sync().unwrap();
    });
}

/// Dropped buffers go back to the device's pool: a step that allocates the same
/// temporaries again costs no driver allocation; a reused buffer comes back
/// zero-filled although queued kernels wrote it after the host dropped it; an upload
/// into a reused buffer holds its data; the pool stays within its capacity.
#[test]
fn buffers_are_pooled() {
    with("buffers_are_pooled", |be| {
        let x = be.upload(&[1.5; 1000]).unwrap();
        // Temporaries written by queued kernels and dropped before they ran.
        let step = || -> Vec<f32> {
            let mut t = be.alloc(1000).unwrap();
            be.axpy(2.0, &x, &mut t).unwrap();
            let mut u = be.alloc(3000).unwrap();
            be.fill(&mut u, 7.0).unwrap();
            let mut y = be.alloc(1000).unwrap();
            be.add(&t, &x, &mut y).unwrap();
            drop((t, u));
            be.download_vec(&y).unwrap()
        };
        assert_eq!(step(), vec![4.5; 1000]);
        let warm = be.pool_stats();
        for _ in 0..5 {
            assert_eq!(step(), vec![4.5; 1000]);
        }
        let after = be.pool_stats();
        println!("pool after 6 steps: {after:?} (after the first: {warm:?})");
        assert_eq!(after.driver_allocations, warm.driver_allocations);
        assert_eq!(after.reuses, warm.reuses + 15);

        // Reuse is zero-filled, also for a smaller request of the same size class,
        // with no sync between the fill, the drop and the reuse.
        for len in [1000, 995] {
            let mut t = be.alloc(1000).unwrap();
            be.fill(&mut t, 5.0).unwrap();
            drop(t);
            let n = be.pool_stats().driver_allocations;
            let z = be.alloc(len).unwrap();
            assert_eq!(be.pool_stats().driver_allocations, n, "reused");
            assert_eq!(be.download_vec(&z).unwrap(), vec![0.0; len]);
        }
        // An upload into a reused buffer, then a write after queued work.
        let mut t = be.alloc(1000).unwrap();
        be.fill(&mut t, 5.0).unwrap();
        drop(t);
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut u = be.upload(&data).unwrap();
        assert_eq!(be.download_vec(&u).unwrap(), data);
        be.fill(&mut u, 3.0).unwrap();
        be.write(&mut u, &data).unwrap();
        assert_eq!(be.download_vec(&u).unwrap(), data);

        // Bounded: 8 KiB held at most, the least recently freed evicted first.
        be.set_pool_capacity(8 << 10);
        let bufs: Vec<_> = (0..10).map(|_| be.alloc(1000).unwrap()).collect();
        drop(bufs);
        let s = be.pool_stats();
        assert!(s.pooled_bytes <= 8 << 10 && s.pooled_buffers == 2, "{s:?}");
        // Capacity 0: nothing is kept.
        be.set_pool_capacity(0);
        drop(be.alloc(10).unwrap());
        let s = be.pool_stats();
        assert_eq!((s.pooled_buffers, s.pooled_bytes), (0, 0), "{s:?}");
        be.sync().unwrap();
    });
}

/// The chunked paths for tensors larger than one storage binding, reached with small
/// tensors by lowering the binding limit to 1 KiB (256 floats): element-wise kernels,
/// activations, bias add and gradient, every GEMM layout (batched, padded strides that
/// misalign the ranges, beta = 0 and not) and Linear, against the f64 reference.
/// Small integers keep every sum exact, so the comparisons are exact (activations
/// excepted).
#[test]
fn chunked_bindings_match_the_reference() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: chunked_bindings_match_the_reference: {e}"),
    };
    be.limit_storage_binding_size(1024);
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
    let vals = |n: usize, m: usize, s: usize| -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7 + s) % m) as f64 - (m / 2) as f64)
            .collect()
    };

    // Element-wise: 1000 elements, 4 chunks.
    let (a, b) = (vals(1000, 7, 0), vals(1000, 5, 3));
    let (ab, bb) = (up(&a), up(&b));
    let mut out = be.alloc(1000).unwrap();
    be.fill(&mut out, 0.5).unwrap();
    assert_eq!(down(&out), vec![0.5; 1000], "fill");
    be.add(&ab, &bb, &mut out).unwrap();
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_eq!(down(&out), sum, "add");
    be.axpy(-2.0, &ab, &mut out).unwrap();
    be.scale(&mut out, 3.0).unwrap();
    let want: Vec<f64> = sum
        .iter()
        .zip(&a)
        .map(|(s, x)| 3.0 * (s - 2.0 * x))
        .collect();
    assert_eq!(down(&out), want, "axpy, scale");
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) / 97.0).collect();
    let xb = up(&x);
    for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
        be.activation_forward(act, &xb, &mut out).unwrap();
        let mut want = vec![0.0; 1000];
        or.activation_forward(act, &x, &mut want).unwrap();
        let got = down(&out);
        be.activation_backward(act, &xb, &bb, &mut out).unwrap();
        let mut want_dx = vec![0.0; 1000];
        or.activation_backward(act, &x, &b, &mut want_dx).unwrap();
        let got_dx = down(&out);
        for i in 0..1000 {
            assert!(
                (got[i] - want[i]).abs() <= 1e-6 * (1.0 + want[i].abs()),
                "{act:?} {i}"
            );
            assert!(
                (got_dx[i] - want_dx[i]).abs() <= 1e-5 * (1.0 + want_dx[i].abs()),
                "{act:?}' {i}"
            );
        }
    }

    // Bias add over 3·7·50 = 1050 elements (channels cross the chunk boundaries).
    let (outer, ch, inner) = (3, 7, 50);
    let y0 = vals(outer * ch * inner, 9, 1);
    let bias = vals(ch, 11, 2);
    let mut yb = up(&y0);
    be.bias_add(&mut yb, &up(&bias), outer, ch, inner).unwrap();
    let mut want = y0.clone();
    or.bias_add(&mut want, &bias, outer, ch, inner).unwrap();
    assert_eq!(down(&yb), want, "bias_add");
    // Bias gradient over 40 rows of 3·5: chunks of 16 rows.
    let dy = vals(40 * 15, 13, 4);
    let mut db = up(&[1.0, 2.0, 3.0]);
    be.bias_backward(&up(&dy), &mut db, 40, 3, 5).unwrap();
    let mut want = vec![1.0, 2.0, 3.0];
    or.bias_backward(&dy, &mut want, 40, 3, 5).unwrap();
    assert_eq!(down(&db), want, "bias_backward");
    // One row wider than a binding: refused with a typed error.
    let wide = be.alloc(2 * 300).unwrap();
    let mut db = be.alloc(300).unwrap();
    assert!(matches!(
        be.bias_backward(&wide, &mut db, 2, 300, 1),
        Err(BrainError::Unsupported(_))
    ));

    // GEMM: every layout, one matrix and batches (dense, and padded strides that put
    // the matrices at misaligned offsets), beta = 0 (C starts as NaN) and beta ≠ 0.
    let (m, n, k) = (21, 26, 30);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for (batch, pad) in [(1, 0), (3, 0), (3, 5)] {
            for beta in [0.0, -1.0] {
                let g = Gemm::new(m, n, k).trans(ta, tb).scale(2.0, beta).batched(
                    batch,
                    m * k + pad,
                    k * n + pad,
                    m * n + pad,
                );
                let (la, lb, lc) = (
                    (batch - 1) * g.stride_a + m * k,
                    (batch - 1) * g.stride_b + k * n,
                    (batch - 1) * g.stride_c + m * n,
                );
                let (a, b) = (vals(la, 7, 1), vals(lb, 5, 2));
                let c = if beta == 0.0 {
                    vec![f64::NAN; lc]
                } else {
                    vals(lc, 3, 0)
                };
                let mut cb = up(&c);
                be.gemm(&g, &up(&a), &up(&b), &mut cb).unwrap();
                let mut want = c.clone();
                or.gemm(&g, &a, &b, &mut want).unwrap();
                let got = down(&cb);
                // Padding between matrices is left alone (NaN stays NaN).
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()));
                assert!(
                    same,
                    "gemm ta={ta} tb={tb} batch={batch} pad={pad} beta={beta}"
                );
            }
        }
    }

    // Linear with a 40×30 weight (1200 floats) and 6 rows.
    let (rows, inf, outf) = (6, 30, 40);
    let (x, w, bias, dy) = (
        vals(rows * inf, 5, 0),
        vals(outf * inf, 7, 1),
        vals(outf, 3, 2),
        vals(rows * outf, 5, 3),
    );
    let (xb, wb, bb, dyb) = (up(&x), up(&w), up(&bias), up(&dy));
    let mut yb = be.alloc(rows * outf).unwrap();
    be.linear_forward(&xb, &wb, Some(&bb), &mut yb, rows, inf, outf)
        .unwrap();
    let mut want = vec![0.0; rows * outf];
    or.linear_forward(&x, &w, Some(&bias), &mut want, rows, inf, outf)
        .unwrap();
    assert_eq!(down(&yb), want, "linear_forward");
    let (dw0, db0) = (vals(outf * inf, 3, 1), vals(outf, 3, 2));
    let (mut dxb, mut dwb, mut dbb) = (be.alloc(rows * inf).unwrap(), up(&dw0), up(&db0));
    be.linear_backward(
        &dyb,
        &xb,
        &wb,
        Some(&mut dxb),
        Some(&mut dwb),
        Some(&mut dbb),
        rows,
        inf,
        outf,
    )
    .unwrap();
    let (mut dx, mut dw, mut db) = (vec![0.0; rows * inf], dw0.clone(), db0.clone());
    or.linear_backward(
        &dy,
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
    assert_eq!(down(&dxb), dx, "linear dx");
    assert_eq!(down(&dwb), dw, "linear dweight");
    assert_eq!(down(&dbb), db, "linear dbias");
    be.sync().unwrap();
}

/// Tensors over 128 MiB, the storage binding limit of lavapipe (lowered to it on
/// adapters that allow more): add, axpy, an activation, bias add and gradient over
/// 40 M floats (160 MB, two chunks), and a Linear layer forward and backward (weight
/// and bias gradients) with a 4100×8200 weight (134.5 MB), against plain CPU loops.
/// Small integers keep every sum exact. The input gradient (dx = dy·W, which splits
/// W along k) costs as much as the forward on lavapipe, ~64·|W| multiply-adds, so it
/// is left to `chunked_bindings_match_the_reference`, which runs the same code.
#[test]
fn tensors_beyond_the_binding_limit() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: tensors_beyond_the_binding_limit: {e}"),
    };
    const LIMIT: u64 = 128 << 20;
    be.limit_storage_binding_size(LIMIT);
    let t = std::time::Instant::now();
    let n = 40_000_000;
    assert!(n as u64 * 4 > LIMIT);
    // Periods 13 and 7 do not divide the chunk length (a power of two): an element
    // read from the wrong chunk offset shows.
    let a: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    let (ab, bb) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
    let mut out = be.alloc(n).unwrap();
    be.add(&ab, &bb, &mut out).unwrap();
    be.axpy(2.0, &ab, &mut out).unwrap();
    let got = be.download_vec(&out).unwrap();
    let bad = (0..n).find(|&i| got[i] != 3.0 * a[i] + b[i]);
    assert_eq!(bad, None, "add, axpy");

    be.activation_forward(Activation::Silu, &ab, &mut out)
        .unwrap();
    let silu: Vec<f64> = (0..13)
        .map(|v| {
            let x = v as f64 - 6.0;
            x / (1.0 + (-x).exp())
        })
        .collect();
    let got = be.download_vec(&out).unwrap();
    let bad = (0..n).find(|&i| (f64::from(got[i]) - silu[i % 13]).abs() > 1e-6);
    assert_eq!(bad, None, "silu");

    // [4, 1000, 10000]: bias over the 1000 channels.
    let (outer, ch, inner) = (4, 1000, 10_000);
    let bias: Vec<f32> = (0..ch).map(|c| (c % 17) as f32).collect();
    be.bias_add(&mut out, &be.upload(&bias).unwrap(), outer, ch, inner)
        .unwrap();
    let got2 = be.download_vec(&out).unwrap();
    let bad = (0..n).find(|&i| got2[i] != got[i] + bias[(i / inner) % ch]);
    assert_eq!(bad, None, "bias_add");
    let mut db = be.alloc(ch).unwrap();
    be.bias_backward(&ab, &mut db, outer, ch, inner).unwrap();
    let mut want = vec![0.0f64; ch];
    for (i, v) in a.iter().enumerate() {
        want[(i / inner) % ch] += f64::from(*v);
    }
    let got: Vec<f64> = be
        .download_vec(&db)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(got, want, "bias_backward");
    drop((a, b, ab, bb, out, got2));
    println!("element-wise and bias over {n} floats: {:?}", t.elapsed());

    // Linear: y[3, 4100] = x[3, 8200]·W[4100, 8200]ᵀ + b, then dW (+=), db (+=).
    let t = std::time::Instant::now();
    let (rows, inf, outf) = (3, 8200, 4100);
    assert!((inf * outf) as u64 * 4 > LIMIT);
    let w: Vec<f32> = (0..outf * inf).map(|i| (i % 7) as f32 - 3.0).collect();
    let x: Vec<f32> = (0..rows * inf).map(|i| (i % 5) as f32 - 2.0).collect();
    let bias: Vec<f32> = (0..outf).map(|i| (i % 3) as f32).collect();
    let dy: Vec<f32> = (0..rows * outf).map(|i| (i % 5) as f32 - 2.0).collect();
    let (wb, xb, bb, dyb) = (
        be.upload(&w).unwrap(),
        be.upload(&x).unwrap(),
        be.upload(&bias).unwrap(),
        be.upload(&dy).unwrap(),
    );
    let mut yb = be.alloc(rows * outf).unwrap();
    be.linear_forward(&xb, &wb, Some(&bb), &mut yb, rows, inf, outf)
        .unwrap();
    let (mut dwb, mut dbb) = (be.alloc(outf * inf).unwrap(), be.upload(&bias).unwrap());
    be.fill(&mut dwb, 1.0).unwrap();
    be.linear_backward(
        &dyb,
        &xb,
        &wb,
        None,
        Some(&mut dwb),
        Some(&mut dbb),
        rows,
        inf,
        outf,
    )
    .unwrap();
    let y = be.download_vec(&yb).unwrap();
    for r in 0..rows {
        for o in 0..outf {
            let xr = &x[r * inf..][..inf];
            let wo = &w[o * inf..][..inf];
            let want: f32 = xr.iter().zip(wo).map(|(a, b)| a * b).sum::<f32>() + bias[o];
            assert_eq!(y[r * outf + o], want, "y[{r}, {o}]");
        }
    }
    let dw = be.download_vec(&dwb).unwrap();
    let bad = (0..outf * inf).find(|&e| {
        let (o, i) = (e / inf, e % inf);
        let want: f32 = (0..rows).map(|r| dy[r * outf + o] * x[r * inf + i]).sum();
        dw[e] != 1.0 + want
    });
    assert_eq!(bad, None, "dweight");
    let db = be.download_vec(&dbb).unwrap();
    let want: Vec<f32> = (0..outf)
        .map(|o| bias[o] + (0..rows).map(|r| dy[r * outf + o]).sum::<f32>())
        .collect();
    assert_eq!(db, want, "dbias");
    println!(
        "linear with a {}-byte weight: {:?}",
        inf * outf * 4,
        t.elapsed()
    );
    be.sync().unwrap();
}

/// Device timestamps around the dispatches of a closure, where the adapter has them.
#[test]
fn kernels_are_timed_on_the_device() {
    with("kernels_are_timed_on_the_device", |be| {
        let g = Gemm::new(256, 256, 256);
        let a = be.upload(&vec![1.0; 256 * 256]).unwrap();
        let mut c = be.alloc(256 * 256).unwrap();
        let (got, time) = be
            .time_on_device(|be| {
                for _ in 0..3 {
                    be.gemm(&g, &a, &a, &mut c)?;
                }
                be.scale(&mut c, 0.5)?;
                be.download_vec(&c)
            })
            .unwrap();
        assert_eq!(got, vec![128.0; 256 * 256]);
        match time {
            None => println!("no timestamp queries on this adapter"),
            Some(t) => {
                println!("3 GEMMs 256³ and a scale: {t:?}");
                assert_eq!((t.dispatches, t.untimed), (4, 0));
                assert!(t.kernels > std::time::Duration::ZERO && t.span >= t.kernels);
            }
        }
        // Outside the closure nothing is timed.
        be.scale(&mut c, 2.0).unwrap();
        be.sync().unwrap();
    });
}
