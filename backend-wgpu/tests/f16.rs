//! Checks specific to the f16-storage backend beyond the shared suite
//! (tests/conformance_f16.rs): every store rounds to nearest with ties to even
//! (normal, subnormal, overflow, NaN), odd lengths keep their padding to themselves,
//! and f16 tensors larger than one storage binding work in the native kernels, in the
//! widening and narrowing, and in a kernel run through f32. Each test prints
//! `skipped: …` without an adapter offering SHADER_F16.

use backend_wgpu::WgpuF16Backend;
use brain_core::half::f16;
use brain_core::Backend;

fn make() -> Result<WgpuF16Backend, String> {
    WgpuF16Backend::new().map_err(|e| e.to_string())
}

fn h(v: f64) -> f16 {
    f16::from_f64(v)
}

fn down(be: &WgpuF16Backend, b: &backend_wgpu::WgpuF16Buffer) -> Vec<f64> {
    be.download_vec(b)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn stores_round_to_nearest_even() {
    conformance::with_backend(make(), "stores_round_to_nearest_even", |be| {
        let ulp1 = 2f64.powi(-10); // spacing of f16 in [1, 2)
        let sub = 2f64.powi(-24); // the smallest subnormal
                                  // a + b, each exact in f16, landing on ties, off ties, the top of the range, Inf, NaN.
        let cases: &[(f64, f64, f64)] = &[
            (1.0, ulp1 / 2.0, 1.0),                     // tie, even below
            (1.0 + ulp1, ulp1 / 2.0, 1.0 + 2.0 * ulp1), // tie, even above
            (1.0, ulp1 / 2.0 + ulp1 / 4.0, 1.0 + ulp1), // above the tie
            (65504.0, 8.0, 65504.0),                    // below the overflow threshold
            (65504.0, 16.0, f64::INFINITY),             // at it: Inf
            (-65504.0, -16.0, f64::NEG_INFINITY),
            (f64::INFINITY, f64::NEG_INFINITY, f64::NAN),
            (3.0 * sub, -sub, 2.0 * sub), // subnormal, exact
        ];
        let a: Vec<f16> = cases.iter().map(|c| h(c.0)).collect();
        let b: Vec<f16> = cases.iter().map(|c| h(c.1)).collect();
        for (i, &(x, y, _)) in cases.iter().enumerate() {
            assert_eq!(a[i].to_f64(), x, "case {i}: a exact in f16");
            assert_eq!(b[i].to_f64(), y, "case {i}: b exact in f16");
        }
        let (ab, bb) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
        let mut out = be.alloc(cases.len()).unwrap();
        be.add(&ab, &bb, &mut out).unwrap();
        for (i, (&g, c)) in down(be, &out).iter().zip(cases).enumerate() {
            assert!(
                g == c.2 || (g.is_nan() && c.2.is_nan()),
                "add case {i}: {} + {} = {g}, want {}",
                c.0,
                c.1,
                c.2
            );
        }
        // Subnormal ties: 1.5·2⁻²⁴ → 2·2⁻²⁴, 0.5·2⁻²⁴ → 0, 2.5·2⁻²⁴ → 2·2⁻²⁴.
        let mut x = be.upload(&[h(3.0 * sub), h(sub), h(5.0 * sub)]).unwrap();
        be.scale(&mut x, 0.5).unwrap();
        assert_eq!(down(be, &x), vec![2.0 * sub, 0.0, 2.0 * sub]);
        // Through f32 (bias_add): the f32 result rounded the same way.
        let mut y = be.upload(&[h(1.0), h(1.0 + ulp1), h(65504.0)]).unwrap();
        let bias = be.upload(&[h(ulp1 / 2.0)]).unwrap();
        be.bias_add(&mut y, &bias, 3, 1, 1).unwrap();
        assert_eq!(down(be, &y), vec![1.0, 1.0 + 2.0 * ulp1, 65504.0]);
    });
}

#[test]
fn odd_lengths_keep_to_themselves() {
    conformance::with_backend(make(), "odd_lengths_keep_to_themselves", |be| {
        for n in [0usize, 1, 3, 5, 257] {
            let a: Vec<f16> = (0..n).map(|i| h(i as f64 + 1.0)).collect();
            let ab = be.upload(&a).unwrap();
            let mut c = be.alloc(n).unwrap();
            be.fill(&mut c, -7.0).unwrap();
            assert_eq!(down(be, &c), vec![-7.0; n], "fill n={n}");
            be.copy(&ab, &mut c).unwrap();
            be.axpy(2.0, &ab, &mut c).unwrap();
            let want: Vec<f64> = (0..n).map(|i| 3.0 * (i as f64 + 1.0)).collect();
            assert_eq!(down(be, &c), want, "copy + axpy n={n}");
            let mut w = be.alloc(n).unwrap();
            be.write(&mut w, &a).unwrap();
            assert_eq!(be.download_vec(&w).unwrap(), a, "write n={n}");
        }
    });
}

#[test]
fn f16_tensors_beyond_the_binding_limit() {
    let mut be = match make() {
        Ok(be) => be,
        Err(e) => return println!("skipped: f16_tensors_beyond_the_binding_limit: {e}"),
    };
    be.limit_storage_binding_size(1024);
    // 5001 elements: 2501 words, ~10 KiB as f16 and ~20 KiB widened: many chunks, and an
    // odd tail. Periods 13 and 7 show any element read from the wrong chunk.
    let n = 5001;
    let a: Vec<f64> = (0..n).map(|i| (i % 13) as f64 - 6.0).collect();
    let b: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 3.0).collect();
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| h(x)).collect::<Vec<_>>())
            .unwrap()
    };
    let (ab, bb) = (up(&a), up(&b));
    let mut out = be.alloc(n).unwrap();
    be.add(&ab, &bb, &mut out).unwrap();
    be.axpy(2.0, &ab, &mut out).unwrap();
    be.scale(&mut out, 0.5).unwrap();
    let want: Vec<f64> = (0..n).map(|i| (3.0 * a[i] + b[i]) * 0.5).collect();
    assert_eq!(down(&be, &out), want);
    // A native activation, chunked: SiLU within one f16 rounding (plus f32's few ulp)
    // of the f64 value.
    let mut y = be.alloc(n).unwrap();
    be.activation_forward(brain_core::Activation::Silu, &ab, &mut y)
        .unwrap();
    for (i, &g) in down(&be, &y).iter().enumerate() {
        let want = a[i] / (1.0 + (-a[i]).exp());
        assert!(
            (g - want).abs() <= 2f64.powi(-10) * want.abs() + 1e-7,
            "silu[{i}] = {g}, want {want}"
        );
    }
    // bias_add (native), chunked.
    let mut y = up(&a);
    be.bias_add(&mut y, &up(&[0.5]), n, 1, 1).unwrap();
    let want: Vec<f64> = a.iter().map(|&x| x + 0.5).collect();
    assert_eq!(down(&be, &y), want);
}
