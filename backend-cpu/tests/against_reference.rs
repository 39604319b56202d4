//! Smoke checks of every CpuBackend kernel against the f64 reference backend on odd
//! shapes, both below and above the parallel thresholds, plus bit-exact checks of the
//! Philox-driven kernels and of error handling. (The full proptest conformance suite
//! lives in the `conformance` crate.)

use backend_cpu::{CpuBackend, CpuBuffer};
use brain_core::reference::ReferenceBackend;
use brain_core::{
    Activation, AdamW, AdamWTensor, Backend, BrainError, Dropout, Gemm, GroupNormShape, RowReduce,
    UpsampleMode, UpsampleShape,
};

type Oracle = ReferenceBackend<f64>;

// ---------------------------------------------------------------- helpers

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// `n` values uniform in [lo, hi), already rounded to f32.
    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                (lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)) as f32 as f64
            })
            .collect()
    }
}

fn backends() -> Vec<CpuBackend> {
    [1, 2, 3]
        .iter()
        .map(|&t| CpuBackend::with_threads(t).unwrap())
        .collect()
}

fn up(be: &CpuBackend, v: &[f64]) -> CpuBuffer {
    let d: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    be.upload(&d).unwrap()
}

fn down(be: &CpuBackend, b: &CpuBuffer) -> Vec<f64> {
    be.download_vec(b)
        .unwrap()
        .into_iter()
        .map(|v| v as f64)
        .collect()
}

/// |got − want| ≤ atol + rtol·|want|, NaN matching NaN and infinities matching exactly.
fn close_with(what: &str, got: &[f64], want: &[f64], tol: impl Fn(usize) -> (f64, f64)) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() || g.is_nan() {
            assert!(w.is_nan() && g.is_nan(), "{what}[{i}]: got {g}, want {w}");
            continue;
        }
        if w.is_infinite() || g.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        let (atol, rtol) = tol(i);
        let err = (g - w).abs();
        assert!(
            err <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w}, err {err:e} > {atol:e} + {rtol:e}·|want|"
        );
    }
}

fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    close_with(what, got, want, |_| (atol, rtol));
}

const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

// ---------------------------------------------------------------- construction

#[test]
fn construction_and_name() {
    assert!(matches!(
        CpuBackend::with_threads(0),
        Err(BrainError::InvalidArgument { .. })
    ));
    assert_eq!(
        CpuBackend::with_threads(1).unwrap().name(),
        "cpu (1 thread)"
    );
    assert_eq!(
        CpuBackend::with_threads(3).unwrap().name(),
        "cpu (3 threads)"
    );
    let be = CpuBackend::new();
    assert!(be.threads() >= 1);
    assert!(be.name().starts_with("cpu ("));
}

#[test]
fn memory_ops() {
    let mut rng = Rng::new(1);
    for be in backends() {
        for n in [0usize, 1, 13, 300_003] {
            let v = rng.vec(n, -1.0, 1.0);
            let a = up(&be, &v);
            assert_eq!(be.len(&a), n);
            let mut b = be.alloc(n).unwrap();
            assert!(down(&be, &b).iter().all(|&x| x == 0.0));
            be.copy(&a, &mut b).unwrap();
            assert_eq!(down(&be, &b), v);
            be.fill(&mut b, 0.25).unwrap();
            assert!(down(&be, &b).iter().all(|&x| x == 0.25));
            let host: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            be.write(&mut b, &host).unwrap();
            assert_eq!(down(&be, &b), v);
            be.sync().unwrap();
        }
        let a = be.alloc(3).unwrap();
        let mut b = be.alloc(4).unwrap();
        assert!(matches!(
            be.copy(&a, &mut b),
            Err(BrainError::ShapeMismatch { .. })
        ));
        assert!(be.write(&mut b, &[1.0]).is_err());
        assert!(be.download(&a, &mut [0.0; 2]).is_err());
    }
}

// ---------------------------------------------------------------- GEMM

#[allow(clippy::too_many_arguments)]
fn gemm_case(
    be: &CpuBackend,
    rng: &mut Rng,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f64,
    beta: f64,
    batch: usize,
    pad: usize,
    bcast_b: bool,
) {
    let (sa, sb, sc) = (
        m * k + pad,
        if bcast_b { 0 } else { k * n + pad },
        m * n + pad,
    );
    let g = Gemm::new(m, n, k)
        .trans(ta, tb)
        .scale(alpha, beta)
        .batched(batch, sa, sb, sc);
    let la = (batch - 1) * sa + m * k;
    let lb = (batch - 1) * sb + k * n;
    let lc = (batch - 1) * sc + m * n;
    let a = rng.vec(la, -1.0, 1.0);
    let b = rng.vec(lb, -1.0, 1.0);
    let mut c = rng.vec(lc, -1.0, 1.0);
    if beta == 0.0 {
        // beta = 0 must overwrite, NaN included (padding between matrices stays).
        for p in 0..batch {
            c[p * sc] = f64::NAN;
        }
    }
    let o = Oracle::new();
    let mut c_ref = c.clone();
    o.gemm(&g, &a, &b, &mut c_ref).unwrap();
    // Error bound scale: |alpha|·|A|·|B| + |beta|·|C| via the oracle on absolute values.
    let abs = |v: &[f64]| {
        v.iter()
            .map(|x| if x.is_nan() { 0.0 } else { x.abs() })
            .collect::<Vec<_>>()
    };
    let mut bound = abs(&c);
    o.gemm(
        &Gemm {
            alpha: alpha.abs(),
            beta: beta.abs(),
            ..g
        },
        &abs(&a),
        &abs(&b),
        &mut bound,
    )
    .unwrap();
    let mut cc = up(be, &c);
    be.gemm(&g, &up(be, &a), &up(be, &b), &mut cc).unwrap();
    let what = format!("gemm m{m} n{n} k{k} ta{ta} tb{tb} a{alpha} b{beta} batch{batch} pad{pad} bcast{bcast_b} ({})", be.name());
    close_with(&what, &down(be, &cc), &c_ref, |i| {
        (ATOL + (k as f64 + 2.0) * 1.2e-7 * bound[i], RTOL)
    });
}

#[test]
fn gemm_against_reference() {
    let mut rng = Rng::new(2);
    for be in backends() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 13, 5),
            (33, 1, 768),
            (1, 33, 13),
            (130, 257, 67),
            (64, 96, 200),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for &(alpha, beta) in &[(1.0, 0.0), (0.5, -1.5), (-2.0, 1.0)] {
                        gemm_case(&be, &mut rng, m, n, k, ta, tb, alpha, beta, 1, 0, false);
                    }
                }
            }
            gemm_case(&be, &mut rng, m, n, k, false, true, 1.0, 0.0, 3, 5, false);
            gemm_case(&be, &mut rng, m, n, k, true, false, 0.75, 0.5, 3, 0, true);
        }
        // Few-row products (the AVX2 skinny kernels on x86-64): row, column and depth
        // remainders, k blocks, transposed A (packed), NaN in C with beta = 0.
        for &(m, n, k) in &[
            (1, 16, 16),
            (5, 17, 23),
            (7, 100, 1030),
            (13, 31, 64),
            (64, 1000, 1030),
            (6, 48, 300),
            (2, 2000, 40),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    gemm_case(&be, &mut rng, m, n, k, ta, tb, 1.0, 0.0, 1, 0, false);
                    gemm_case(&be, &mut rng, m, n, k, ta, tb, -0.5, 2.0, 2, 3, false);
                }
            }
        }
        // Many small matrices (batch-parallel path) and a few large ones.
        gemm_case(&be, &mut rng, 9, 17, 11, true, true, 1.0, 1.0, 40, 3, false);
        gemm_case(
            &be, &mut rng, 150, 140, 130, false, false, 1.0, 0.0, 3, 7, false,
        );
        // Empty inner dimension: C = beta·C.
        gemm_case(&be, &mut rng, 5, 6, 0, false, false, 1.0, 0.5, 2, 1, false);
        gemm_case(&be, &mut rng, 5, 6, 0, false, false, 1.0, 0.0, 2, 1, false);
    }
}

/// Gram products A·Aᵀ of a small batch over long rows (one buffer on both sides: the
/// split-k path computes the upper triangle and mirrors it) and A·Bᵀ with few columns
/// (split-k, no symmetry), against the oracle. Entries are small integers, so every
/// partial sum is an integer below 2^24 and exact in f32 in any order: the result must
/// equal the oracle exactly (a missing or doubled k chunk cannot hide in a rounding
/// tolerance), and a Gram result is exactly symmetric.
#[test]
fn gram_split_k_against_reference() {
    let mut rng = Rng::new(5);
    let o = Oracle::new();
    for be in backends() {
        for &(m, n, k, same) in &[
            (32, 32, 9001, true),
            (3, 3, 4096, true),
            (61, 61, 5000, true),
            (20, 32, 8192, false),
            (64, 5, 4100, false),
            (64, 64, 4500, false),
            (33, 33, 20003, true),
        ] {
            for &(alpha, beta) in &[(1.0, 0.0), (0.5, -1.5)] {
                let g = Gemm::new(m, n, k).trans(false, true).scale(alpha, beta);
                let int = |v: Vec<f64>| v.into_iter().map(f64::round).collect::<Vec<_>>();
                let a = int(rng.vec(m * k, -2.4, 2.4));
                let b = if same {
                    a.clone()
                } else {
                    int(rng.vec(n * k, -2.4, 2.4))
                };
                let c0 = int(rng.vec(m * n, -9.0, 9.0));
                let c0 = if same && beta != 0.0 {
                    // symmetric C too, so the exact-symmetry check below applies
                    (0..m * n)
                        .map(|i| c0[(i / n).min(i % n) * n + (i / n).max(i % n)])
                        .collect()
                } else {
                    c0
                };
                let mut want = c0.clone();
                o.gemm(&g, &a, &b, &mut want).unwrap();
                let ab = up(&be, &a);
                let mut cc = up(&be, &c0);
                if same {
                    be.gemm(&g, &ab, &ab, &mut cc).unwrap();
                } else {
                    be.gemm(&g, &ab, &up(&be, &b), &mut cc).unwrap();
                }
                let got = down(&be, &cc);
                let what = format!(
                    "gram m{m} n{n} k{k} same{same} a{alpha} b{beta} ({})",
                    be.name()
                );
                if let Some(i) = (0..m * n).find(|&i| got[i] != want[i]) {
                    panic!("{what}: [{i}] = {} but exactly {}", got[i], want[i]);
                }
                if same {
                    for i in 0..m {
                        for j in 0..i {
                            assert_eq!(
                                got[i * n + j],
                                got[j * n + i],
                                "{what}: not symmetric at ({i},{j})"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Few-row NN products `C = alpha·A·B + beta·C` (the shape of a Gram product's
/// backward `dX += dK·X`), with C starting at several misalignments against a cache
/// line (second matrix of a padded batch), partial panels and k blocks. Small integer entries make every sum exact in any order, so
/// the result must equal the oracle exactly.
#[test]
fn few_row_nn_exact_against_reference() {
    let mut rng = Rng::new(11);
    let o = Oracle::new();
    let int = |v: Vec<f64>| v.into_iter().map(f64::round).collect::<Vec<_>>();
    for be in backends() {
        for &(m, n, k) in &[(32, 3001, 32), (6, 200, 70), (1, 40, 33), (64, 517, 65)] {
            for pad in [0, 1, 5, 13] {
                for &(alpha, beta) in &[(1.0, 1.0), (0.5, -1.5), (1.0, 0.0)] {
                    let (sa, sb, sc) = (m * k, k * n, m * n + pad);
                    let g = Gemm::new(m, n, k).scale(alpha, beta).batched(2, sa, sb, sc);
                    let a = int(rng.vec(2 * sa, -2.4, 2.4));
                    let b = int(rng.vec(2 * sb, -2.4, 2.4));
                    let c0 = int(rng.vec(sc + m * n, -9.0, 9.0));
                    let mut want = c0.clone();
                    o.gemm(&g, &a, &b, &mut want).unwrap();
                    let mut cc = up(&be, &c0);
                    be.gemm(&g, &up(&be, &a), &up(&be, &b), &mut cc).unwrap();
                    let got = down(&be, &cc);
                    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                        panic!(
                            "nn m{m} n{n} k{k} pad{pad} a{alpha} b{beta} ({}): [{i}] = {} but exactly {}",
                            be.name(),
                            got[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_nan_propagates_and_errors() {
    let be = CpuBackend::with_threads(2).unwrap();
    let g = Gemm::new(40, 40, 40);
    let mut a = vec![1.0f32; 1600];
    a[41] = f32::NAN; // row 1
    let b = be.upload(&vec![1.0; 1600]).unwrap();
    let mut c = be.alloc(1600).unwrap();
    be.gemm(&g, &be.upload(&a).unwrap(), &b, &mut c).unwrap();
    let c = be.download_vec(&c).unwrap();
    assert!(c[40..80].iter().all(|v| v.is_nan()));
    assert!(c[..40].iter().chain(&c[80..]).all(|&v| v == 40.0));

    let o = Oracle::new();
    let bad = [
        Gemm::new(3, 4, 5),
        Gemm::new(3, 4, 5).batched(2, 15, 20, 11),
        Gemm::new(3, 4, 5).scale(f64::NAN, 0.0),
        Gemm::new(3, 4, 5).batched_dense(2),
    ];
    for g in bad {
        let (la, lb, lc) = (15, 20, 11);
        let got = be.gemm(
            &g,
            &be.alloc(la).unwrap(),
            &be.alloc(lb).unwrap(),
            &mut be.alloc(lc).unwrap(),
        );
        let want = o.gemm(&g, &vec![0.0; la], &vec![0.0; lb], &mut vec![0.0; lc]);
        assert!(got.is_err());
        assert_eq!(got, want);
    }
}

// ---------------------------------------------------------------- Linear

#[test]
fn linear_against_reference() {
    let mut rng = Rng::new(3);
    let o = Oracle::new();
    for be in backends() {
        for &(rows, inf, outf) in &[
            (1, 1, 1),
            (7, 13, 5),
            (33, 768, 3),
            (300, 13, 130),
            (64, 257, 96),
        ] {
            for with_bias in [false, true] {
                let x = rng.vec(rows * inf, -1.0, 1.0);
                let w = rng.vec(outf * inf, -1.0, 1.0);
                let b = rng.vec(outf, -1.0, 1.0);
                let bias = with_bias.then_some(&b);
                let mut y_ref = vec![0.0; rows * outf];
                o.linear_forward(&x, &w, bias, &mut y_ref, rows, inf, outf)
                    .unwrap();
                let bc = up(&be, &b);
                let mut y = be.alloc(rows * outf).unwrap();
                be.linear_forward(
                    &up(&be, &x),
                    &up(&be, &w),
                    with_bias.then_some(&bc),
                    &mut y,
                    rows,
                    inf,
                    outf,
                )
                .unwrap();
                let what = format!(
                    "linear_forward {rows}x{inf}x{outf} bias {with_bias} ({})",
                    be.name()
                );
                close(&what, &down(&be, &y), &y_ref, ATOL * inf as f64, RTOL);

                let dy = rng.vec(rows * outf, -1.0, 1.0);
                let dw0 = rng.vec(outf * inf, -1.0, 1.0);
                let db0 = rng.vec(outf, -1.0, 1.0);
                let (mut dx_r, mut dw_r, mut db_r) =
                    (vec![0.0; rows * inf], dw0.clone(), db0.clone());
                o.linear_backward(
                    &dy,
                    &x,
                    &w,
                    Some(&mut dx_r),
                    Some(&mut dw_r),
                    Some(&mut db_r),
                    rows,
                    inf,
                    outf,
                )
                .unwrap();
                let mut dx = up(&be, &vec![f64::NAN; rows * inf]);
                let (mut dw, mut db) = (up(&be, &dw0), up(&be, &db0));
                be.linear_backward(
                    &up(&be, &dy),
                    &up(&be, &x),
                    &up(&be, &w),
                    Some(&mut dx),
                    Some(&mut dw),
                    Some(&mut db),
                    rows,
                    inf,
                    outf,
                )
                .unwrap();
                close(
                    &format!("{what} dx"),
                    &down(&be, &dx),
                    &dx_r,
                    ATOL * outf as f64,
                    RTOL,
                );
                close(
                    &format!("{what} dw"),
                    &down(&be, &dw),
                    &dw_r,
                    ATOL * rows as f64,
                    RTOL,
                );
                close(
                    &format!("{what} db"),
                    &down(&be, &db),
                    &db_r,
                    ATOL * rows as f64,
                    RTOL,
                );
                // Only some gradients requested.
                let mut db2 = up(&be, &db0);
                be.linear_backward(
                    &up(&be, &dy),
                    &up(&be, &x),
                    &up(&be, &w),
                    None,
                    None,
                    Some(&mut db2),
                    rows,
                    inf,
                    outf,
                )
                .unwrap();
                assert_eq!(down(&be, &db2), down(&be, &db));
            }
        }
        // Errors, identical to the reference's.
        let x = be.alloc(6).unwrap();
        let w = be.alloc(6).unwrap();
        let mut y = be.alloc(5).unwrap();
        let got = be.linear_forward(&x, &w, None, &mut y, 2, 3, 2);
        assert!(matches!(
            got,
            Err(BrainError::ShapeMismatch { arg: "y", .. })
        ));
        assert_eq!(
            got,
            o.linear_forward(
                &vec![0.0; 6],
                &vec![0.0; 6],
                None,
                &mut vec![0.0; 5],
                2,
                3,
                2
            )
        );
        let got = be.linear_forward(
            &x,
            &w,
            Some(&be.alloc(3).unwrap()),
            &mut be.alloc(4).unwrap(),
            2,
            3,
            2,
        );
        assert!(matches!(
            got,
            Err(BrainError::ShapeMismatch { arg: "bias", .. })
        ));
        let mut dx = be.alloc(5).unwrap();
        let got = be.linear_backward(
            &be.alloc(4).unwrap(),
            &x,
            &w,
            Some(&mut dx),
            None,
            None,
            2,
            3,
            2,
        );
        assert!(matches!(
            got,
            Err(BrainError::ShapeMismatch { arg: "dx", .. })
        ));
    }
}

// ---------------------------------------------------------------- bias

#[test]
fn bias_against_reference() {
    let mut rng = Rng::new(4);
    let o = Oracle::new();
    for be in backends() {
        for &(outer, ch, inner) in &[
            (1, 1, 1),
            (7, 13, 1),
            (3, 5, 7),
            (2100, 130, 1),
            (4, 64, 1024),
            (3, 1, 100_000),
            (0, 3, 2),
        ] {
            let n = outer * ch * inner;
            let y0 = rng.vec(n, -1.0, 1.0);
            let b = rng.vec(ch, -1.0, 1.0);
            let mut y_ref = y0.clone();
            o.bias_add(&mut y_ref, &b, outer, ch, inner).unwrap();
            let mut y = up(&be, &y0);
            be.bias_add(&mut y, &up(&be, &b), outer, ch, inner).unwrap();
            let what = format!("bias {outer}x{ch}x{inner} ({})", be.name());
            close(&what, &down(&be, &y), &y_ref, ATOL, RTOL);

            let db0 = rng.vec(ch, -1.0, 1.0);
            let mut db_ref = db0.clone();
            o.bias_backward(&y0, &mut db_ref, outer, ch, inner).unwrap();
            let mut db = up(&be, &db0);
            be.bias_backward(&up(&be, &y0), &mut db, outer, ch, inner)
                .unwrap();
            close(
                &format!("{what} backward"),
                &down(&be, &db),
                &db_ref,
                ATOL,
                RTOL,
            );
        }
        let got = be.bias_add(&mut be.alloc(6).unwrap(), &be.alloc(2).unwrap(), 2, 3, 1);
        assert_eq!(got, o.bias_add(&mut vec![0.0; 6], &vec![0.0; 2], 2, 3, 1));
        assert!(got.is_err());
    }
}

// ---------------------------------------------------------------- activations

#[test]
fn activations_against_reference() {
    let mut rng = Rng::new(5);
    let o = Oracle::new();
    for be in backends() {
        for n in [1usize, 13, 768, 100_001] {
            let mut x = rng.vec(n, -6.0, 6.0);
            if n > 9 {
                x[1] = f64::NAN;
                x[2] = 0.0;
                x[3] = -30.0;
                x[4] = 30.0;
                x[5] = -1e-3;
                x[6] = f64::INFINITY;
                x[7] = -100.0;
                x[8] = -9.0;
            }
            let dy = rng.vec(n, -1.0, 1.0);
            for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
                let mut y_ref = vec![0.0; n];
                o.activation_forward(act, &x, &mut y_ref).unwrap();
                let mut y = be.alloc(n).unwrap();
                be.activation_forward(act, &up(&be, &x), &mut y).unwrap();
                let what = format!("{act:?} n{n} ({})", be.name());
                close(&what, &down(&be, &y), &y_ref, ATOL, RTOL);
                let mut dx_ref = vec![0.0; n];
                o.activation_backward(act, &x, &dy, &mut dx_ref).unwrap();
                let mut dx = be.alloc(n).unwrap();
                be.activation_backward(act, &up(&be, &x), &up(&be, &dy), &mut dx)
                    .unwrap();
                close(
                    &format!("{what} backward"),
                    &down(&be, &dx),
                    &dx_ref,
                    ATOL,
                    RTOL,
                );
            }
        }
        assert!(be
            .activation_forward(
                Activation::Silu,
                &be.alloc(3).unwrap(),
                &mut be.alloc(2).unwrap()
            )
            .is_err());
        assert!(be
            .activation_backward(
                Activation::Silu,
                &be.alloc(3).unwrap(),
                &be.alloc(2).unwrap(),
                &mut be.alloc(3).unwrap()
            )
            .is_err());
    }
}

// ---------------------------------------------------------------- normalisation

#[test]
fn layernorm_against_reference() {
    let mut rng = Rng::new(6);
    let o = Oracle::new();
    for be in backends() {
        for &(rows, cols) in &[
            (1, 1),
            (7, 13),
            (33, 768),
            (1, 40_000),
            (300, 130),
            (40_000, 1),
        ] {
            let n = rows * cols;
            let x = rng.vec(n, 99.0, 101.0); // large offset: needs a two-pass variance
            let gamma = rng.vec(cols, 0.5, 1.5);
            let beta = rng.vec(cols, -0.5, 0.5);
            let (mut y_r, mut m_r, mut r_r) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
            o.layernorm_forward(
                &x, &gamma, &beta, &mut y_r, &mut m_r, &mut r_r, rows, cols, 1e-5,
            )
            .unwrap();
            let (mut y, mut m, mut r) = (
                be.alloc(n).unwrap(),
                be.alloc(rows).unwrap(),
                be.alloc(rows).unwrap(),
            );
            be.layernorm_forward(
                &up(&be, &x),
                &up(&be, &gamma),
                &up(&be, &beta),
                &mut y,
                &mut m,
                &mut r,
                rows,
                cols,
                1e-5,
            )
            .unwrap();
            let what = format!("layernorm {rows}x{cols} ({})", be.name());
            close(&format!("{what} y"), &down(&be, &y), &y_r, 4e-6, RTOL);
            close(&format!("{what} mean"), &down(&be, &m), &m_r, ATOL, RTOL);
            close(&format!("{what} rstd"), &down(&be, &r), &r_r, ATOL, RTOL);

            // Backward from the same (f32-rounded) statistics on both sides.
            let m32: Vec<f64> = m_r.iter().map(|&v| v as f32 as f64).collect();
            let r32: Vec<f64> = r_r.iter().map(|&v| v as f32 as f64).collect();
            let dy = rng.vec(n, -1.0, 1.0);
            let dg0 = rng.vec(cols, -1.0, 1.0);
            let db0 = rng.vec(cols, -1.0, 1.0);
            let (mut dx_r, mut dg_r, mut db_r) = (vec![0.0; n], dg0.clone(), db0.clone());
            o.layernorm_backward(
                &dy, &x, &gamma, &m32, &r32, &mut dx_r, &mut dg_r, &mut db_r, rows, cols,
            )
            .unwrap();
            let (mut dx, mut dg, mut db) = (be.alloc(n).unwrap(), up(&be, &dg0), up(&be, &db0));
            be.layernorm_backward(
                &up(&be, &dy),
                &up(&be, &x),
                &up(&be, &gamma),
                &up(&be, &m32),
                &up(&be, &r32),
                &mut dx,
                &mut dg,
                &mut db,
                rows,
                cols,
            )
            .unwrap();
            // x − mean is exact in f32 near 100, x̂ carries one rounding of rstd.
            close(&format!("{what} dx"), &down(&be, &dx), &dx_r, 2e-5, 1e-4);
            close(
                &format!("{what} dgamma"),
                &down(&be, &dg),
                &dg_r,
                1e-5 * (rows as f64).sqrt(),
                1e-4,
            );
            close(&format!("{what} dbeta"), &down(&be, &db), &db_r, ATOL, RTOL);
        }
        let o_err = o.layernorm_forward(
            &vec![0.0; 6],
            &vec![0.0; 3],
            &vec![0.0; 3],
            &mut vec![0.0; 6],
            &mut vec![0.0; 2],
            &mut vec![0.0; 3],
            2,
            3,
            1e-5,
        );
        let got = be.layernorm_forward(
            &be.alloc(6).unwrap(),
            &be.alloc(3).unwrap(),
            &be.alloc(3).unwrap(),
            &mut be.alloc(6).unwrap(),
            &mut be.alloc(2).unwrap(),
            &mut be.alloc(3).unwrap(),
            2,
            3,
            1e-5,
        );
        assert!(got.is_err());
        assert_eq!(got, o_err);
        let got = be.layernorm_forward(
            &be.alloc(0).unwrap(),
            &be.alloc(0).unwrap(),
            &be.alloc(0).unwrap(),
            &mut be.alloc(0).unwrap(),
            &mut be.alloc(2).unwrap(),
            &mut be.alloc(2).unwrap(),
            2,
            0,
            1e-5,
        );
        assert!(matches!(got, Err(BrainError::InvalidArgument { .. })));
    }
}

#[test]
fn groupnorm_against_reference() {
    let mut rng = Rng::new(7);
    let o = Oracle::new();
    for be in backends() {
        for &(batch, channels, spatial, groups) in &[
            (1, 1, 1, 1),
            (2, 6, 7, 3),
            (3, 32, 64, 8),
            (4, 32, 512, 8),
            (20_000, 4, 1, 2),
            (1, 2, 40_000, 1),
            (2, 4, 1, 4),
        ] {
            let s = GroupNormShape {
                batch,
                channels,
                spatial,
                groups,
            };
            let n = batch * channels * spatial;
            let ng = batch * groups;
            let x = rng.vec(n, 99.0, 101.0);
            let gamma = rng.vec(channels, 0.5, 1.5);
            let beta = rng.vec(channels, -0.5, 0.5);
            let (mut y_r, mut m_r, mut r_r) = (vec![0.0; n], vec![0.0; ng], vec![0.0; ng]);
            o.groupnorm_forward(&x, &gamma, &beta, &mut y_r, &mut m_r, &mut r_r, &s, 1e-5)
                .unwrap();
            let (mut y, mut m, mut r) = (
                be.alloc(n).unwrap(),
                be.alloc(ng).unwrap(),
                be.alloc(ng).unwrap(),
            );
            be.groupnorm_forward(
                &up(&be, &x),
                &up(&be, &gamma),
                &up(&be, &beta),
                &mut y,
                &mut m,
                &mut r,
                &s,
                1e-5,
            )
            .unwrap();
            let what = format!("groupnorm {s:?} ({})", be.name());
            close(&format!("{what} y"), &down(&be, &y), &y_r, 4e-6, RTOL);
            close(&format!("{what} mean"), &down(&be, &m), &m_r, ATOL, RTOL);
            close(&format!("{what} rstd"), &down(&be, &r), &r_r, ATOL, RTOL);

            let m32: Vec<f64> = m_r.iter().map(|&v| v as f32 as f64).collect();
            let r32: Vec<f64> = r_r.iter().map(|&v| v as f32 as f64).collect();
            let dy = rng.vec(n, -1.0, 1.0);
            let dg0 = rng.vec(channels, -1.0, 1.0);
            let db0 = rng.vec(channels, -1.0, 1.0);
            let (mut dx_r, mut dg_r, mut db_r) = (vec![0.0; n], dg0.clone(), db0.clone());
            o.groupnorm_backward(
                &dy, &x, &gamma, &m32, &r32, &mut dx_r, &mut dg_r, &mut db_r, &s,
            )
            .unwrap();
            let (mut dx, mut dg, mut db) = (be.alloc(n).unwrap(), up(&be, &dg0), up(&be, &db0));
            be.groupnorm_backward(
                &up(&be, &dy),
                &up(&be, &x),
                &up(&be, &gamma),
                &up(&be, &m32),
                &up(&be, &r32),
                &mut dx,
                &mut dg,
                &mut db,
                &s,
            )
            .unwrap();
            close(&format!("{what} dx"), &down(&be, &dx), &dx_r, 2e-5, 1e-4);
            let per_channel = (batch * spatial) as f64;
            close(
                &format!("{what} dgamma"),
                &down(&be, &dg),
                &dg_r,
                1e-5 * per_channel.sqrt(),
                1e-4,
            );
            close(&format!("{what} dbeta"), &down(&be, &db), &db_r, ATOL, RTOL);
        }
        let s = GroupNormShape {
            batch: 1,
            channels: 6,
            spatial: 2,
            groups: 4,
        };
        let got = be.groupnorm_forward(
            &be.alloc(12).unwrap(),
            &be.alloc(6).unwrap(),
            &be.alloc(6).unwrap(),
            &mut be.alloc(12).unwrap(),
            &mut be.alloc(4).unwrap(),
            &mut be.alloc(4).unwrap(),
            &s,
            1e-5,
        );
        assert!(matches!(got, Err(BrainError::InvalidArgument { .. })));
    }
}

// ---------------------------------------------------------------- dropout and randomness

#[test]
fn dropout_bit_exact() {
    let mut rng = Rng::new(8);
    let r32 = ReferenceBackend::<f32>::new();
    for be in backends() {
        for n in [1usize, 13, 33, 1000, 100_003] {
            for p in [0.0, 0.3, 0.9] {
                let d = Dropout {
                    p,
                    seed: 0xDEAD_BEEF_0123_4567,
                    offset: (n as u64) << 33 | 5,
                };
                let mut x = rng.vec(n, -1.0, 1.0);
                x[0] = f64::NAN;
                if n > 5 {
                    x[5] = f64::INFINITY;
                }
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut y_ref = vec![0f32; n];
                r32.dropout_forward(&d, &x32, &mut y_ref).unwrap();
                let mut y = be.alloc(n).unwrap();
                be.dropout_forward(&d, &be.upload(&x32).unwrap(), &mut y)
                    .unwrap();
                let got = be.download_vec(&y).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got),
                    bits(&y_ref),
                    "dropout n{n} p{p} ({})",
                    be.name()
                );
                let mut dx = be.alloc(n).unwrap();
                be.dropout_backward(&d, &be.upload(&x32).unwrap(), &mut dx)
                    .unwrap();
                assert_eq!(bits(&be.download_vec(&dx).unwrap()), bits(&y_ref));
            }
        }
        let d = Dropout {
            p: 1.0,
            seed: 1,
            offset: 0,
        };
        assert!(matches!(
            be.dropout_forward(&d, &be.alloc(3).unwrap(), &mut be.alloc(3).unwrap()),
            Err(BrainError::InvalidArgument { .. })
        ));
        let d = Dropout {
            p: 0.5,
            seed: 1,
            offset: 0,
        };
        assert!(be
            .dropout_backward(&d, &be.alloc(3).unwrap(), &mut be.alloc(4).unwrap())
            .is_err());
    }
}

#[test]
fn philox_fills_bit_exact() {
    let r32 = ReferenceBackend::<f32>::new();
    let o = Oracle::new();
    for be in backends() {
        for n in [1usize, 2, 33, 64, 1000, 100_001] {
            for &(seed, offset) in &[
                (0u64, 0u64),
                (0xFFFF_FFFF_FFFF_FFFF, 0x1234_5678_9ABC_DEF0),
                (42, 7),
            ] {
                let mut u_ref = vec![0f32; n];
                r32.fill_uniform(&mut u_ref, seed, offset).unwrap();
                let mut u = be.alloc(n).unwrap();
                be.fill_uniform(&mut u, seed, offset).unwrap();
                assert_eq!(be.download_vec(&u).unwrap(), u_ref, "uniform n{n}");

                let mut z_ref = vec![0f32; n];
                r32.fill_normal(&mut z_ref, seed, offset, 0.5, 2.0).unwrap();
                let mut z = be.alloc(n).unwrap();
                be.fill_normal(&mut z, seed, offset, 0.5, 2.0).unwrap();
                assert_eq!(be.download_vec(&z).unwrap(), z_ref, "normal n{n}");
                // …and close to the f64 oracle's normals.
                let mut z64 = vec![0f64; n];
                o.fill_normal(&mut z64, seed, offset, 0.5, 2.0).unwrap();
                close("normal vs f64", &down(&be, &z), &z64, 1e-5, 1e-5);

                let m = 2 * n;
                let mut b_ref = vec![0f64; m];
                o.philox_bits(&mut b_ref, seed, offset).unwrap();
                let mut b = be.alloc(m).unwrap();
                be.philox_bits(&mut b, seed, offset).unwrap();
                assert_eq!(down(&be, &b), b_ref, "philox_bits n{n}");
            }
        }
        assert!(matches!(
            be.philox_bits(&mut be.alloc(3).unwrap(), 0, 0),
            Err(BrainError::InvalidArgument { .. })
        ));
    }
}

// ---------------------------------------------------------------- upsampling

#[test]
fn upsample_against_reference() {
    let mut rng = Rng::new(9);
    let o = Oracle::new();
    let r32 = ReferenceBackend::<f32>::new();
    for be in backends() {
        for &(batch, channels, height, width, factor) in &[
            (1, 1, 1, 1, 1),
            (1, 1, 1, 1, 3),
            (2, 3, 5, 7, 2),
            (1, 2, 4, 3, 3),
            (2, 16, 32, 32, 2),
            (1, 1, 1, 9, 4),
        ] {
            let s = UpsampleShape {
                batch,
                channels,
                height,
                width,
                factor,
            };
            let (ni, no) = (s.input_len(), s.output_len());
            let x = rng.vec(ni, -1.0, 1.0);
            let dy = rng.vec(no, -1.0, 1.0);
            for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
                let what = format!("upsample {mode:?} {s:?} ({})", be.name());
                let mut y_ref = vec![0.0; no];
                o.upsample_forward(mode, &s, &x, &mut y_ref).unwrap();
                let mut y = be.alloc(no).unwrap();
                be.upsample_forward(mode, &s, &up(&be, &x), &mut y).unwrap();
                close(&what, &down(&be, &y), &y_ref, ATOL, RTOL);
                // Bit-identical to the f32 reference (same weights, same formula).
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut y32 = vec![0f32; no];
                r32.upsample_forward(mode, &s, &x32, &mut y32).unwrap();
                assert_eq!(be.download_vec(&y).unwrap(), y32, "{what}: f32 bit-exact");

                let mut dx_ref = vec![0.0; ni];
                o.upsample_backward(mode, &s, &dy, &mut dx_ref).unwrap();
                let mut dx = up(&be, &vec![f64::NAN; ni]);
                be.upsample_backward(mode, &s, &up(&be, &dy), &mut dx)
                    .unwrap();
                close(
                    &format!("{what} backward"),
                    &down(&be, &dx),
                    &dx_ref,
                    ATOL * (factor * factor) as f64,
                    RTOL,
                );
            }
        }
        let s = UpsampleShape {
            batch: 1,
            channels: 1,
            height: 2,
            width: 2,
            factor: 0,
        };
        assert!(matches!(
            be.upsample_forward(
                UpsampleMode::Nearest,
                &s,
                &be.alloc(4).unwrap(),
                &mut be.alloc(4).unwrap()
            ),
            Err(BrainError::InvalidArgument { .. })
        ));
        let s = UpsampleShape { factor: 2, ..s };
        assert!(be
            .upsample_backward(
                UpsampleMode::Bilinear,
                &s,
                &be.alloc(15).unwrap(),
                &mut be.alloc(4).unwrap()
            )
            .is_err());
    }
}

// ---------------------------------------------------------------- element-wise

#[test]
fn elementwise_against_reference() {
    let mut rng = Rng::new(10);
    let o = Oracle::new();
    for be in backends() {
        for n in [0usize, 1, 13, 300_001] {
            let a = rng.vec(n, -1.0, 1.0);
            let b = rng.vec(n, -1.0, 1.0);
            let mut out_ref = vec![0.0; n];
            o.add(&a, &b, &mut out_ref).unwrap();
            let mut out = be.alloc(n).unwrap();
            be.add(&up(&be, &a), &up(&be, &b), &mut out).unwrap();
            close("add", &down(&be, &out), &out_ref, ATOL, RTOL);

            let mut s_ref = a.clone();
            o.scale(&mut s_ref, -0.3).unwrap();
            let mut sc = up(&be, &a);
            be.scale(&mut sc, -0.3).unwrap();
            close("scale", &down(&be, &sc), &s_ref, ATOL, RTOL);

            let mut y_ref = b.clone();
            o.axpy(1.7, &a, &mut y_ref).unwrap();
            let mut y = up(&be, &b);
            be.axpy(1.7, &up(&be, &a), &mut y).unwrap();
            close("axpy", &down(&be, &y), &y_ref, ATOL, RTOL);
        }
        assert!(be
            .add(
                &be.alloc(2).unwrap(),
                &be.alloc(3).unwrap(),
                &mut be.alloc(2).unwrap()
            )
            .is_err());
        assert!(be
            .add(
                &be.alloc(2).unwrap(),
                &be.alloc(2).unwrap(),
                &mut be.alloc(3).unwrap()
            )
            .is_err());
        assert!(be
            .axpy(1.0, &be.alloc(2).unwrap(), &mut be.alloc(3).unwrap())
            .is_err());
    }
}

// ---------------------------------------------------------------- reductions

#[test]
fn reductions_against_reference() {
    let mut rng = Rng::new(11);
    let o = Oracle::new();
    for be in backends() {
        for &(rows, cols) in &[
            (1, 1),
            (7, 13),
            (33, 768),
            (1, 300_001),
            (2, 150_000),
            (100_000, 3),
        ] {
            let mut x = rng.vec(rows * cols, -5.0, 5.0);
            if rows >= 7 {
                x[cols] = f64::NAN; // row 1
                for v in &mut x[2 * cols..3 * cols] {
                    *v = f64::NEG_INFINITY; // row 2
                }
                x[3 * cols] = f64::INFINITY; // row 3
                x[4 * cols] = f64::NEG_INFINITY; // row 4 (partly −∞)
            }
            for op in [
                RowReduce::Sum,
                RowReduce::Mean,
                RowReduce::Max,
                RowReduce::LogSumExp,
            ] {
                let mut r = vec![0.0; rows];
                o.reduce_rows(op, &x, &mut r, rows, cols).unwrap();
                let mut out = be.alloc(rows).unwrap();
                be.reduce_rows(op, &up(&be, &x), &mut out, rows, cols)
                    .unwrap();
                let atol = if op == RowReduce::Sum {
                    1e-6 * (cols as f64).sqrt()
                } else {
                    ATOL
                };
                close(
                    &format!("{op:?} {rows}x{cols} ({})", be.name()),
                    &down(&be, &out),
                    &r,
                    atol,
                    RTOL,
                );
            }
        }
        assert!(be
            .reduce_rows(
                RowReduce::Sum,
                &be.alloc(6).unwrap(),
                &mut be.alloc(3).unwrap(),
                2,
                3
            )
            .is_err());
        assert!(matches!(
            be.reduce_rows(
                RowReduce::Max,
                &be.alloc(0).unwrap(),
                &mut be.alloc(2).unwrap(),
                2,
                0
            ),
            Err(BrainError::InvalidArgument { .. })
        ));
    }
}

// ---------------------------------------------------------------- AdamW

#[test]
fn adamw_against_reference() {
    let mut rng = Rng::new(12);
    let o = Oracle::new();
    let sizes = [1usize, 13, 768, 100_000, 7];
    for be in backends() {
        for &(max_norm, step) in &[(None, 1u64), (Some(0.5), 5), (Some(1e6), 3)] {
            let cfg = AdamW {
                lr: 1e-2,
                step,
                max_grad_norm: max_norm,
                ..AdamW::default()
            };
            let p: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n, -1.0, 1.0)).collect();
            let g: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n, -0.01, 0.01)).collect();
            let m: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n, -0.01, 0.01)).collect();
            let v: Vec<Vec<f64>> = sizes.iter().map(|&n| rng.vec(n, 0.0, 1e-4)).collect();

            let (mut pr, mut mr, mut vr) = (p.clone(), m.clone(), v.clone());
            let mut norm_r = vec![0.0];
            {
                let mut ts: Vec<AdamWTensor<'_, Oracle>> = pr
                    .iter_mut()
                    .zip(&g)
                    .zip(mr.iter_mut().zip(vr.iter_mut()))
                    .map(|((param, grad), (exp_avg, exp_avg_sq))| AdamWTensor {
                        param,
                        grad,
                        exp_avg,
                        exp_avg_sq,
                    })
                    .collect();
                o.adamw_step(&cfg, &mut ts, Some(&mut norm_r)).unwrap();
            }
            let mut pc: Vec<CpuBuffer> = p.iter().map(|x| up(&be, x)).collect();
            let gc: Vec<CpuBuffer> = g.iter().map(|x| up(&be, x)).collect();
            let mut mc: Vec<CpuBuffer> = m.iter().map(|x| up(&be, x)).collect();
            let mut vc: Vec<CpuBuffer> = v.iter().map(|x| up(&be, x)).collect();
            let mut norm = be.alloc(1).unwrap();
            {
                let mut ts: Vec<AdamWTensor<'_, CpuBackend>> = pc
                    .iter_mut()
                    .zip(&gc)
                    .zip(mc.iter_mut().zip(vc.iter_mut()))
                    .map(|((param, grad), (exp_avg, exp_avg_sq))| AdamWTensor {
                        param,
                        grad,
                        exp_avg,
                        exp_avg_sq,
                    })
                    .collect();
                be.adamw_step(&cfg, &mut ts, Some(&mut norm)).unwrap();
            }
            let what = format!("adamw clip {max_norm:?} step {step} ({})", be.name());
            close(
                &format!("{what} norm"),
                &down(&be, &norm),
                &norm_r,
                ATOL,
                RTOL,
            );
            for i in 0..sizes.len() {
                close(
                    &format!("{what} p{i}"),
                    &down(&be, &pc[i]),
                    &pr[i],
                    1e-6,
                    RTOL,
                );
                close(
                    &format!("{what} m{i}"),
                    &down(&be, &mc[i]),
                    &mr[i],
                    1e-9,
                    RTOL,
                );
                close(
                    &format!("{what} v{i}"),
                    &down(&be, &vc[i]),
                    &vr[i],
                    1e-12,
                    RTOL,
                );
            }
        }
        // Errors: mismatched moment, bad hyper-parameters, bad norm buffer.
        let mut p = be.alloc(3).unwrap();
        let g = be.alloc(3).unwrap();
        let mut m = be.alloc(2).unwrap();
        let mut v = be.alloc(3).unwrap();
        let mut ts = vec![AdamWTensor::<CpuBackend> {
            param: &mut p,
            grad: &g,
            exp_avg: &mut m,
            exp_avg_sq: &mut v,
        }];
        assert!(matches!(
            be.adamw_step(&AdamW::default(), &mut ts, None),
            Err(BrainError::ShapeMismatch { arg: "exp_avg", .. })
        ));
        assert!(be
            .adamw_step(
                &AdamW {
                    step: 0,
                    ..AdamW::default()
                },
                &mut [],
                None
            )
            .is_err());
        assert!(be
            .adamw_step(&AdamW::default(), &mut [], Some(&mut be.alloc(2).unwrap()))
            .is_err());
        let mut n = be.alloc(1).unwrap();
        be.adamw_step(&AdamW::default(), &mut [], Some(&mut n))
            .unwrap();
        assert_eq!(be.download_vec(&n).unwrap(), vec![0.0]);
    }
}
