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
