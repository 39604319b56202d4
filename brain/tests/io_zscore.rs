//! Z-scoring: training statistics (population std, f64 sums) applied to both splits;
//! constant voxels stay finite.

use brain::io::zscore::ZScore;

#[test]
fn matches_a_direct_f64_computation() {
    let (n, w) = (37, 5);
    let train: Vec<f32> = (0..n * w)
        .map(|i| ((i * 7919) % 101) as f32 * 0.37 + (i % w) as f32 * 100.0)
        .collect();
    let z = ZScore::fit(&train, w).unwrap();
    for j in 0..w {
        let col: Vec<f64> = (0..n).map(|i| train[i * w + j] as f64).collect();
        let m = col.iter().sum::<f64>() / n as f64;
        let s = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((z.mean[j] - m).abs() <= 1e-12 * m.abs().max(1.0));
        assert!((z.std[j] - s).abs() <= 1e-12 * s);
    }
    assert_eq!(z.constant, 0);
    // Applied to the training rows: mean 0, std 1 per column.
    let mut t = train.clone();
    z.apply(&mut t).unwrap();
    for j in 0..w {
        let col: Vec<f64> = (0..n).map(|i| t[i * w + j] as f64).collect();
        let m = col.iter().sum::<f64>() / n as f64;
        let v = col.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5, "{m} {v}");
    }
    // The test rows get the training statistics, not their own.
    let mut test = vec![z.mean[0] as f32 + z.std[0] as f32; w];
    z.apply(&mut test).unwrap();
    assert!((test[0] - 1.0).abs() < 1e-5);
}

#[test]
fn large_offsets_keep_their_precision() {
    // f32 running sums of 10⁴ values near 10⁴ would lose the small spread.
    let n = 10_000;
    let train: Vec<f32> = (0..n).map(|i| 10_000.0 + (i % 2) as f32 * 0.5).collect();
    let z = ZScore::fit(&train, 1).unwrap();
    assert!((z.mean[0] - 10_000.25).abs() < 1e-9);
    assert!((z.std[0] - 0.25).abs() < 1e-9);
}

#[test]
fn constant_voxels_get_std_one() {
    // Column 1 constant at 0.1 (not exactly representable: a naive mean is off by an ulp
    // and 0/tiny would blow up).
    let train = vec![1.0, 0.1, 2.0, 0.1, 3.0, 0.1];
    let z = ZScore::fit(&train, 2).unwrap();
    assert_eq!(z.constant, 1);
    assert_eq!(z.std[1], 1.0);
    let mut t = train.clone();
    z.apply(&mut t).unwrap();
    assert_eq!([t[1], t[3], t[5]], [0.0, 0.0, 0.0]);
    let mut test = vec![2.0, 0.6];
    z.apply(&mut test).unwrap();
    assert!(test.iter().all(|v| v.is_finite()));
    assert!((test[1] - 0.5).abs() < 1e-6);
}

#[test]
fn shape_errors() {
    assert!(ZScore::fit(&[], 3).is_err());
    assert!(ZScore::fit(&[1.0; 7], 3).is_err());
    assert!(ZScore::fit(&[1.0; 6], 0).is_err());
    let z = ZScore::fit(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
    assert!(z.apply(&mut [0.0; 3]).is_err());
}
