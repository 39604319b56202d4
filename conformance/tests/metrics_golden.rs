//! Evaluation metrics (`brain_core::metrics`) against the committed scikit-image /
//! SciPy / NumPy values of `conformance/golden/metrics.json` (`make_metrics.py`), plus
//! property tests: identities (SSIM(x, x) = 1, a perfect predictor wins every
//! comparison), invariances, independent brute-force recomputations, typed errors and
//! NaN propagation.
//!
//! The metrics compute in f64 from any element type. In f64 they must reproduce the
//! golden values to 1e-12 (same formulas, different summation order). With inputs
//! rounded to f32 (data downloaded from an f32 backend) the golden outputs move by the
//! input rounding amplified by each metric's conditioning; those tolerances are stated
//! per metric below. Discrete outputs (argmax, win counts, ranks) must match exactly
//! whenever the golden margin exceeds twice the tolerance of the values they are
//! decided from (then rounding cannot reorder them).

use brain_core::metrics::{self, ChannelLayout, SsimOptions, SsimVariant, SubsetSampling};
use brain_core::BrainError;
use conformance::data::{dim, run, Rng};
use conformance::golden::{load, Case, METRICS_JSON};
use conformance::tolerance::{check_close, unit_roundoff, Tol};
use proptest::prelude::*;

// ------------------------------------------------------------------ golden

/// Element type the inputs are given in.
#[derive(Clone, Copy, PartialEq)]
enum Prec {
    F64,
    F32,
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Calls `$f` on the case's inputs converted to the chosen precision.
macro_rules! with_prec {
    ($p:expr, |$($a:ident),*| $body:expr) => {
        match $p {
            Prec::F64 => { $(let $a: &[f64] = $a;)* $body }
            Prec::F32 => { $(let $a = &f32s($a)[..];)* $body }
        }
    };
}

/// Smallest gap between `v[i]` and any other entry of its group, for exactness
/// guards of discrete outputs.
fn margin(values: &[f64]) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s.windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min)
}

fn e2s(e: BrainError) -> String {
    e.to_string()
}

fn as_usize(v: &[f64]) -> Vec<usize> {
    v.iter().map(|&x| x as usize).collect()
}

/// Tolerance for a metric of the case in precision `p`: 1e-12 in f64 (same formulas as
/// numpy / scipy, summation order aside); `f32` otherwise.
fn tol(p: Prec, f32_tol: Tol) -> Tol {
    match p {
        Prec::F64 => Tol::new(
            1e-12,
            1e-12,
            "f64 inputs: same formulas as scikit-image / scipy / numpy, summation order aside",
        ),
        Prec::F32 => f32_tol,
    }
}

fn run_case(c: &Case, p: Prec) -> Result<(), String> {
    let u = unit_roundoff::<f32>();
    match c.kernel.as_str() {
        "ssim" => {
            let (h, w) = (c.p("height"), c.p("width"));
            let opts = SsimOptions {
                sigma: c.f("sigma").unwrap(),
                truncate: c.f("truncate").unwrap(),
                k1: c.f("K1").unwrap(),
                k2: c.f("K2").unwrap(),
                data_range: c.f("data_range").unwrap(),
                sample_covariance: false,
                variant: SsimVariant::Skimage2d,
            };
            assert_eq!(opts.radius(), c.p("crop"));
            assert_eq!(2 * opts.radius() + 1, c.p("win_size"));
            check_close(
                "gaussian_window_1d",
                &metrics::gaussian_window(opts.sigma, opts.truncate),
                c.t("gaussian_window_1d"),
                Tol::new(
                    1e-16,
                    1e-14,
                    "exp of the same arguments, one normalising sum",
                ),
            )?;
            let (a, b) = (c.t("a"), c.t("b"));
            let s = with_prec!(p, |a, b| metrics::ssim(a, b, h, w, &opts)).map_err(e2s)?;
            // Pixels in [0, 1] move by ≤ u when rounded, a local moment by ≤ 2u; the
            // contrast factor divides that by σa² + σb² + C2, which only nears C2 = 9e-4
            // (the worst case 4u/C2 ≈ 4400u) in flat windows. These natural images keep
            // it ≥ ~0.1 (observed error ≤ 5u), so 64u.
            let t = tol(
                p,
                Tol::new(
                    64.0 * u,
                    0.0,
                    "f32 pixels: u per pixel through the SSIM quotient, no flat windows here",
                ),
            );
            check_close("ssim_map", &s.map, c.t("ssim_map"), t)?;
            check_close("ssim", &[s.mean], c.t("ssim"), t)
        }
        "sobel_skimage" => Ok(()), // checked in conformance::golden_contrastive_sobel on every backend
        "pixcorr" => {
            let (n, px) = (c.p("n"), 3 * c.p("height") * c.p("width"));
            let (pred, tru) = (c.t("pred"), c.t("true"));
            let r = with_prec!(p, |pred, tru| metrics::pixcorr(pred, tru, n, px)).map_err(e2s)?;
            // r = Sxy/√(SxxSyy) of O(1) pixels: input rounding u·|x| changes each
            // centred sum by a few u relative; 8u.
            let t = tol(
                p,
                Tol::new(
                    8.0 * u,
                    0.0,
                    "f32 pixels in [0, 1]: a few u per centred sum",
                ),
            );
            check_close("r", &r.per_image, c.t("r"), t)?;
            check_close("pixcorr", &[r.mean], c.t("pixcorr"), t)
        }
        "two_way" => {
            let (n, d) = (c.p("n"), c.p("d"));
            let (pred, tru) = (c.t("pred"), c.t("true"));
            let corr = with_prec!(p, |pred, tru| metrics::correlation_matrix(
                pred, tru, n, n, d
            ))
            .map_err(e2s)?;
            // Normal features: rounding moves each product by 2u·|x·y|, so r moves by
            // ≲ 2u·max|x| relative to unit spread; 8u·scale.
            let t = tol(
                p,
                Tol::new(
                    8.0 * u * c.scale(),
                    0.0,
                    "f32 features: 2u·|x||y| per product of unit-spread sums",
                ),
            );
            check_close("corr", &corr, c.t("corr"), t)?;
            let tw = with_prec!(p, |pred, tru| metrics::two_way_identification(
                pred, tru, n, d
            ))
            .map_err(e2s)?;
            let gold = c.t("corr");
            let min_gap = (0..n)
                .flat_map(|i| {
                    (0..n)
                        .filter(move |&j| j != i)
                        .map(move |j| (gold[i * n + i] - gold[i * n + j]).abs())
                })
                .fold(f64::INFINITY, f64::min);
            if p == Prec::F64 || min_gap > 2.0 * t.atol {
                let ex = Tol::new(1e-15, 0.0, "win counts exact once no comparison is within rounding; count/(n−1) vs numpy's mean of booleans differ by one rounding");
                check_close("per_sample", &tw.per_sample, c.t("per_sample"), ex)?;
                check_close(
                    "two_way",
                    &[tw.mean],
                    c.t("two_way"),
                    Tol::new(1e-15, 0.0, "mean of exact fractions"),
                )?;
            }
            Ok(())
        }
        "retrieval" => {
            let n = c.p("n");
            let d = c.t("pred").len() / n;
            let (pred, tru) = (c.t("pred"), c.t("true"));
            let sim = with_prec!(p, |pred, tru| metrics::cosine_similarity_matrix(
                pred, tru, n, d
            ))
            .map_err(e2s)?;
            // cos of unit vectors: each product moves by ≤ 2u·|x||y| relative to the norms.
            let t = tol(
                p,
                Tol::new(
                    8.0 * u,
                    0.0,
                    "f32 embeddings: 2u per product, normalised sums",
                ),
            );
            check_close("sim", &sim, c.t("sim"), t)?;
            let r =
                with_prec!(p, |pred, tru| metrics::retrieval_top1(pred, tru, n, d)).map_err(e2s)?;
            let gold = c.t("sim");
            let mut gap = f64::INFINITY;
            for i in 0..n {
                let row: Vec<f64> = (0..n).map(|j| gold[i * n + j]).collect();
                let col: Vec<f64> = (0..n).map(|j| gold[j * n + i]).collect();
                gap = gap.min(margin(&row)).min(margin(&col));
            }
            if p == Prec::F64 || gap > 2.0 * t.atol {
                if r.fwd_argmax != as_usize(c.t("fwd_argmax"))
                    || r.bwd_argmax != as_usize(c.t("bwd_argmax"))
                {
                    return Err(format!(
                        "argmax differs: {:?} / {:?}",
                        r.fwd_argmax, r.bwd_argmax
                    ));
                }
                let ex = Tol::exact("fraction of exact matches");
                check_close("fwd_acc", &[r.forward], c.t("fwd_acc"), ex)?;
                check_close("bwd_acc", &[r.backward], c.t("bwd_acc"), ex)?;
            }
            Ok(())
        }
        "corr_distance" => {
            let (k, d) = (c.p("k"), c.p("d"));
            let (uu, vv) = (c.t("u"), c.t("v"));
            let got: Vec<f64> = (0..k)
                .map(|i| {
                    let (a, b) = (&uu[i * d..(i + 1) * d], &vv[i * d..(i + 1) * d]);
                    with_prec!(p, |a, b| metrics::correlation_distance(a, b))
                })
                .collect::<Result<_, _>>()
                .map_err(e2s)?;
            // Row 4 carries a 1e3 offset: f32 rounds it to u·1e3 absolute against unit
            // spread, so the tolerance scales with the case's largest magnitude.
            let t = tol(
                p,
                Tol::new(
                    8.0 * u * c.scale(),
                    0.0,
                    "f32 inputs: u·max|x| against unit spread",
                ),
            );
            check_close("distance", &got, c.t("distance"), t)
        }
        "rsa" => {
            let (n, d1, d2) = (c.p("n"), c.p("d1"), c.p("d2"));
            let (x, y) = (c.t("x"), c.t("y"));
            let r = with_prec!(p, |x, y| metrics::rsa(x, y, n, d1, d2)).map_err(e2s)?;
            let t = tol(
                p,
                Tol::new(
                    8.0 * u * c.scale(),
                    0.0,
                    "f32 features: as two_way's correlations",
                ),
            );
            check_close("rdm_x", &r.rdm_x, c.t("rdm_x"), t)?;
            check_close("rdm_y", &r.rdm_y, c.t("rdm_y"), t)?;
            let (ux, uy) = (
                metrics::upper_triangle(c.t("rdm_x"), n),
                metrics::upper_triangle(c.t("rdm_y"), n),
            );
            if p == Prec::F64 || margin(&ux).min(margin(&uy)) > 2.0 * t.atol {
                // Same ranks as the golden: ρ is then Pearson of identical integers.
                check_close(
                    "rho",
                    &[r.rho],
                    c.t("rho"),
                    Tol::new(1e-12, 0.0, "Pearson of the same ranks"),
                )?;
            }
            Ok(())
        }
        "spearman" => {
            let (x, y) = (c.t("x"), c.t("y"));
            let rho = with_prec!(p, |x, y| metrics::spearman(x, y)).map_err(e2s)?;
            // Small integers are exact in f32: identical ranks either way.
            check_close(
                "rho",
                &[rho],
                c.t("rho"),
                Tol::new(1e-14, 0.0, "integer data, ranks exact; Pearson of ranks"),
            )
        }
        "cka_matrix" => {
            let n = c.p("n");
            let lx = c.p("layers_x");
            let ly = c.p("layers_y");
            let xs: Vec<&[f64]> = (0..lx).map(|l| c.t(&format!("x{l}"))).collect();
            let ys: Vec<&[f64]> = (0..ly).map(|l| c.t(&format!("y{l}"))).collect();
            let got = match p {
                Prec::F64 => {
                    let xl: Vec<metrics::Layer<f64>> =
                        xs.iter().map(|&v| (v, v.len() / n)).collect();
                    let yl: Vec<metrics::Layer<f64>> =
                        ys.iter().map(|&v| (v, v.len() / n)).collect();
                    metrics::cka_matrix(&xl, &yl, n)
                }
                Prec::F32 => {
                    let xo: Vec<Vec<f32>> = xs.iter().map(|v| f32s(v)).collect();
                    let yo: Vec<Vec<f32>> = ys.iter().map(|v| f32s(v)).collect();
                    let xl: Vec<metrics::Layer<f32>> =
                        xo.iter().map(|v| (&v[..], v.len() / n)).collect();
                    let yl: Vec<metrics::Layer<f32>> =
                        yo.iter().map(|v| (&v[..], v.len() / n)).collect();
                    metrics::cka_matrix(&xl, &yl, n)
                }
            }
            .map_err(e2s)?;
            // CKA is a ratio of Frobenius products of Gram matrices, each entry a sum of
            // products of rounded features: 8u·scale, as the correlations.
            let t = tol(
                p,
                Tol::new(
                    8.0 * u * c.scale(),
                    0.0,
                    "f32 features: relative 2u·|x||y| per Gram term",
                ),
            );
            check_close("cka", &got, c.t("cka"), t)
        }
        other => Err(format!("unknown metric `{other}`")),
    }
}

fn check_all(p: Prec) {
    let file = load(METRICS_JSON);
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for case in &file.cases {
        seen.insert(case.kernel.clone());
        if let Err(m) = run_case(case, p) {
            failures.push(format!("{} ({}): {m}", case.name, case.kernel));
        }
    }
    for k in [
        "ssim",
        "pixcorr",
        "two_way",
        "retrieval",
        "corr_distance",
        "rsa",
        "spearman",
        "cka_matrix",
    ] {
        assert!(seen.contains(k), "golden file has no `{k}` case");
    }
    assert!(
        failures.is_empty(),
        "{} metric golden case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_metrics_f64() {
    check_all(Prec::F64);
}

#[test]
fn golden_metrics_f32_inputs() {
    check_all(Prec::F32);
}

// ------------------------------------------------------------------ properties

const CASES: u32 = 20;

/// Exact-arithmetic identities hold to a few roundings of O(1) quantities.
const IDENT: Tol = Tol::new(
    1e-12,
    1e-12,
    "identity in exact arithmetic; f64 roundings of O(1) sums",
);

fn shape_err<T: std::fmt::Debug>(r: Result<T, BrainError>) -> Result<(), String> {
    match r {
        Err(BrainError::ShapeMismatch { .. }) => Ok(()),
        other => Err(format!("expected ShapeMismatch, got {other:?}")),
    }
}

fn invalid_err<T: std::fmt::Debug>(r: Result<T, BrainError>) -> Result<(), String> {
    match r {
        Err(BrainError::InvalidArgument { .. }) => Ok(()),
        other => Err(format!("expected InvalidArgument, got {other:?}")),
    }
}

fn reflect(k: isize, n: usize) -> usize {
    let n = n as isize;
    (if k < 0 {
        -k - 1
    } else if k >= n {
        2 * n - k - 1
    } else {
        k
    }) as usize
}

/// SSIM by direct (non-separable) weighted window sums: the definition, independent of
/// the library's separable filtering.
fn naive_ssim(a: &[f64], b: &[f64], h: usize, w: usize, o: &SsimOptions) -> (f64, Vec<f64>) {
    let g = metrics::gaussian_window(o.sigma, o.truncate);
    let r = g.len() / 2;
    let cols = o.variant == SsimVariant::Skimage017Columns;
    let np = if cols {
        g.len() as f64
    } else {
        (g.len() * g.len()) as f64
    };
    let cov = if o.sample_covariance {
        np / (np - 1.0)
    } else {
        1.0
    };
    let (c1, c2) = ((o.k1 * o.data_range).powi(2), (o.k2 * o.data_range).powi(2));
    let mut map = vec![0.0; h * w];
    for i in 0..h {
        for j in 0..w {
            let mut m = [0.0f64; 5];
            for (k, gk) in g.iter().enumerate() {
                let si = reflect(i as isize + k as isize - r as isize, h);
                let taps: Vec<(usize, f64)> = if cols {
                    vec![(j, 1.0)]
                } else {
                    g.iter()
                        .enumerate()
                        .map(|(l, &gl)| (reflect(j as isize + l as isize - r as isize, w), gl))
                        .collect()
                };
                for (sj, gl) in taps {
                    let wt = gk * gl;
                    let (x, y) = (a[si * w + sj], b[si * w + sj]);
                    m[0] += wt * x;
                    m[1] += wt * y;
                    m[2] += wt * x * x;
                    m[3] += wt * y * y;
                    m[4] += wt * x * y;
                }
            }
            let (ux, uy) = (m[0], m[1]);
            let (vx, vy, vxy) = (
                cov * (m[2] - ux * ux),
                cov * (m[3] - uy * uy),
                cov * (m[4] - ux * uy),
            );
            map[i * w + j] = (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
                / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
        }
    }
    let (j0, j1) = if cols { (0, w) } else { (r, w - r) };
    let mut s = 0.0;
    for i in r..h - r {
        for j in j0..j1 {
            s += map[i * w + j];
        }
    }
    (s / ((h - 2 * r) * (j1 - j0)) as f64, map)
}

#[test]
fn ssim_properties() {
    let strat = (
        11usize..=37,
        1usize..=37,
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    );
    run(
        "ssim_properties",
        CASES,
        strat,
        |(h, w, seed, cols, sample)| {
            let mut rng = Rng::new(seed);
            let a = rng.vec(h * w, 0.0, 1.0);
            let b: Vec<f64> = a
                .iter()
                .map(|&x| (x + rng.uniform(-0.3, 0.3)).clamp(0.0, 1.0))
                .collect();
            let o = SsimOptions {
                variant: if cols {
                    SsimVariant::Skimage017Columns
                } else {
                    SsimVariant::Skimage2d
                },
                sample_covariance: sample,
                ..SsimOptions::MINDEYE
            };
            if !cols && w < 11 {
                // scikit-image: "win_size exceeds image extent".
                return invalid_err(metrics::ssim(&a, &b, h, w, &o));
            }
            let s = metrics::ssim(&a, &b, h, w, &o).map_err(e2s)?;
            let (mean, map) = naive_ssim(&a, &b, h, w, &o);
            check_close("ssim_map vs direct window sums", &s.map, &map, IDENT)?;
            check_close("ssim vs direct window sums", &[s.mean], &[mean], IDENT)?;
            // Symmetric in its arguments, exactly (every term is).
            let t = metrics::ssim(&b, &a, h, w, &o).map_err(e2s)?;
            check_close(
                "ssim(b, a)",
                &t.map,
                &s.map,
                Tol::exact("symmetric formula"),
            )?;
            // SSIM(x, x) = 1 everywhere.
            let one = metrics::ssim(&a, &a, h, w, &o).map_err(e2s)?;
            check_close("ssim(a, a) map", &one.map, &vec![1.0; h * w], IDENT)?;
            check_close("ssim(a, a)", &[one.mean], &[1.0], IDENT)?;
            if s.map
                .iter()
                .any(|v| !(-1.0 - 1e-12..=1.0 + 1e-12).contains(v))
            {
                return Err("ssim map outside [-1, 1]".into());
            }
            // Bad lengths and options.
            shape_err(metrics::ssim(&a[1..], &b[1..], h, w, &o))?;
            shape_err(metrics::ssim(&a, &b[1..], h, w, &o))?;
            invalid_err(metrics::ssim(
                &a,
                &b,
                h,
                w,
                &SsimOptions { sigma: 0.0, ..o },
            ))?;
            invalid_err(metrics::ssim(
                &a,
                &b,
                h,
                w,
                &SsimOptions {
                    data_range: f64::NAN,
                    ..o
                },
            ))?;
            invalid_err(metrics::ssim(&a[..10 * w], &b[..10 * w], 10, w, &o))?;
            // A NaN pixel spoils only the windows that see it, and the mean.
            let mut an = a.clone();
            let (pi, pj) = (h / 2, w / 2);
            an[pi * w + pj] = f64::NAN;
            let sn = metrics::ssim(&an, &b, h, w, &o).map_err(e2s)?;
            if !sn.mean.is_nan() || !sn.map[pi * w + pj].is_nan() {
                return Err("NaN pixel did not propagate".into());
            }
            let r = o.radius();
            if !cols && h > 2 * r + 1 + pi && sn.map[(pi + r + 1) * w + pj].is_nan() {
                return Err("NaN leaked past the window".into());
            }
            Ok(())
        },
    );
}

#[test]
fn ssim_rgb_batch_matches_per_image_gray() {
    run(
        "ssim_rgb_batch",
        8,
        (1usize..=3, 11usize..=20, 11usize..=20, any::<u64>()),
        |(n, h, w, seed)| {
            let mut rng = Rng::new(seed);
            let (p, t) = (
                rng.vec(n * 3 * h * w, 0.0, 1.0),
                rng.vec(n * 3 * h * w, 0.0, 1.0),
            );
            let o = SsimOptions::MINDEYE;
            let batch =
                metrics::ssim_rgb_batch(&p, &t, n, h, w, ChannelLayout::Chw, &o).map_err(e2s)?;
            let img = 3 * h * w;
            let mut want = Vec::new();
            for i in 0..n {
                let (pc, tc) = (&p[i * img..(i + 1) * img], &t[i * img..(i + 1) * img]);
                let gp = metrics::rgb_to_gray(pc, h, w, ChannelLayout::Chw).map_err(e2s)?;
                let gt = metrics::rgb_to_gray(tc, h, w, ChannelLayout::Chw).map_err(e2s)?;
                // The same image stored HWC gives the same gray.
                let hwc: Vec<f64> = (0..h * w)
                    .flat_map(|q| (0..3).map(move |ch| pc[ch * h * w + q]))
                    .collect();
                let g2 = metrics::rgb_to_gray(&hwc, h, w, ChannelLayout::Hwc).map_err(e2s)?;
                check_close(
                    "gray hwc vs chw",
                    &g2,
                    &gp,
                    Tol::exact("same three products, same order"),
                )?;
                let q = 0; // gray of (R, G, B) at pixel 0 by hand
                let by_hand = 0.2125 * pc[q] + 0.7154 * pc[h * w + q] + 0.0721 * pc[2 * h * w + q];
                check_close(
                    "rgb2gray weights",
                    &[gp[0]],
                    &[by_hand],
                    Tol::exact("skimage's weights"),
                )?;
                want.push(metrics::ssim(&gp, &gt, h, w, &o).map_err(e2s)?.mean);
            }
            check_close(
                "per_image",
                &batch.per_image,
                &want,
                Tol::exact("same computation"),
            )?;
            check_close(
                "mean",
                &[batch.mean],
                &[want.iter().sum::<f64>() / n as f64],
                IDENT,
            )?;
            shape_err(metrics::ssim_rgb_batch(
                &p,
                &t[1..],
                n,
                h,
                w,
                ChannelLayout::Chw,
                &o,
            ))?;
            shape_err(metrics::rgb_to_gray(
                &p[1..3 * h * w],
                h,
                w,
                ChannelLayout::Hwc,
            ))
        },
    );
}

#[test]
fn pixcorr_properties() {
    run(
        "pixcorr_properties",
        CASES,
        (dim(9), dim(300), any::<u64>()),
        |(n, px, seed)| {
            let px = px.max(2);
            let mut rng = Rng::new(seed);
            let t = rng.vec(n * px, 0.0, 1.0);
            let p: Vec<f64> = t.iter().map(|&x| x + rng.uniform(-0.5, 0.5)).collect();
            let r = metrics::pixcorr(&p, &t, n, px).map_err(e2s)?;
            let want: Vec<f64> = (0..n)
                .map(|i| {
                    metrics::pearson(&p[i * px..(i + 1) * px], &t[i * px..(i + 1) * px]).unwrap()
                })
                .collect();
            check_close(
                "per_image",
                &r.per_image,
                &want,
                Tol::exact("same function per image"),
            )?;
            // Invariant to a positive affine map of either image, sign-flipped by a negative one.
            let p2: Vec<f64> = p.iter().map(|&x| 3.0 * x + 2.0).collect();
            let r2 = metrics::pixcorr(&p2, &t, n, px).map_err(e2s)?;
            check_close("affine invariance", &r2.per_image, &r.per_image, IDENT)?;
            let p3: Vec<f64> = p.iter().map(|&x| -x).collect();
            let r3 = metrics::pixcorr(&p3, &t, n, px).map_err(e2s)?;
            let neg: Vec<f64> = r.per_image.iter().map(|v| -v).collect();
            check_close("sign flip", &r3.per_image, &neg, IDENT)?;
            // A perfect reconstruction scores 1.
            check_close(
                "perfect",
                &[metrics::pixcorr(&t, &t, n, px).map_err(e2s)?.mean],
                &[1.0],
                IDENT,
            )?;
            // f32 inputs give the same as their exact f64 widening.
            let (pf, tf) = (f32s(&p), f32s(&t));
            let (pw, tw): (Vec<f64>, Vec<f64>) = (
                pf.iter().map(|&v| v as f64).collect(),
                tf.iter().map(|&v| v as f64).collect(),
            );
            check_close(
                "f32 vs widened f64",
                &metrics::pixcorr(&pf, &tf, n, px).map_err(e2s)?.per_image,
                &metrics::pixcorr(&pw, &tw, n, px).map_err(e2s)?.per_image,
                Tol::exact("computed in f64 from exactly widened inputs"),
            )?;
            // Errors, NaN, constant images.
            shape_err(metrics::pixcorr(&p[1..], &t, n, px))?;
            invalid_err(metrics::pixcorr::<f64>(&[], &[], 0, px))?;
            let mut pn = p.clone();
            pn[0] = f64::NAN;
            let rn = metrics::pixcorr(&pn, &t, n, px).map_err(e2s)?;
            if !rn.per_image[0].is_nan()
                || !rn.mean.is_nan()
                || rn.per_image[1..].iter().any(|v| v.is_nan())
            {
                return Err(format!(
                    "NaN must spoil image 0 and the mean only: {:?}",
                    rn.per_image
                ));
            }
            let flat = vec![0.5; n * px];
            if !metrics::pixcorr(&flat, &t, n, px)
                .map_err(e2s)?
                .mean
                .is_nan()
            {
                return Err("a constant image has no correlation: NaN (numpy)".into());
            }
            Ok(())
        },
    );
}

#[test]
fn two_way_properties() {
    run(
        "two_way_properties",
        CASES,
        (2usize..=40, 3usize..=65, any::<u64>(), 0.1f64..5.0),
        |(n, d, seed, noise)| {
            let mut rng = Rng::new(seed);
            let t = rng.vec(n * d, -1.0, 1.0);
            let p: Vec<f64> = t
                .iter()
                .map(|&x| x + noise * rng.uniform(-1.0, 1.0))
                .collect();
            let tw = metrics::two_way_identification(&p, &t, n, d).map_err(e2s)?;
            // The definition, pair by pair.
            let corr = |i: usize, j: usize| {
                metrics::pearson(&p[i * d..(i + 1) * d], &t[j * d..(j + 1) * d]).unwrap()
            };
            let want: Vec<f64> = (0..n)
                .map(|i| {
                    (0..n)
                        .filter(|&j| j != i && corr(i, i) > corr(i, j))
                        .count() as f64
                        / (n - 1) as f64
                })
                .collect();
            check_close(
                "per_sample vs definition",
                &tw.per_sample,
                &want,
                Tol::exact("same counts"),
            )?;
            check_close(
                "mean",
                &[tw.mean],
                &[want.iter().sum::<f64>() / n as f64],
                IDENT,
            )?;
            let cm = metrics::correlation_matrix(&p, &t, n, n, d).map_err(e2s)?;
            let cw: Vec<f64> = (0..n * n).map(|k| corr(k / n, k % n)).collect();
            check_close("correlation_matrix vs pearson", &cm, &cw, IDENT)?;
            // A perfect (affine) predictor wins every comparison.
            let perfect: Vec<f64> = t.iter().map(|&x| 2.0 * x + 1.0).collect();
            check_close(
                "perfect",
                &[metrics::two_way_identification(&perfect, &t, n, d)
                    .map_err(e2s)?
                    .mean],
                &[1.0],
                Tol::exact("all wins"),
            )?;
            shape_err(metrics::two_way_identification(&p, &t[d..], n, d))?;
            invalid_err(metrics::two_way_identification(&p[..d], &t[..d], 1, d))?;
            let mut pn = p.clone();
            pn[0] = f64::NAN;
            let tn = metrics::two_way_identification(&pn, &t, n, d).map_err(e2s)?;
            if !tn.per_sample[0].is_nan() || !tn.mean.is_nan() {
                return Err("NaN features must give NaN".into());
            }
            Ok(())
        },
    );
}

#[test]
fn retrieval_properties() {
    run(
        "retrieval_properties",
        CASES,
        (dim(40), dim(65), any::<u64>(), 0.1f64..3.0),
        |(n, d, seed, noise)| {
            let mut rng = Rng::new(seed);
            let t = rng.vec(n * d, -1.0, 1.0);
            let p: Vec<f64> = t
                .iter()
                .map(|&x| x + noise * rng.uniform(-1.0, 1.0))
                .collect();
            let r = metrics::retrieval_top1(&p, &t, n, d).map_err(e2s)?;
            let cos = |i: usize, j: usize| {
                let (a, b) = (&p[i * d..(i + 1) * d], &t[j * d..(j + 1) * d]);
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
                    * b.iter().map(|x| x * x).sum::<f64>().sqrt())
            };
            let sim = metrics::cosine_similarity_matrix(&p, &t, n, d).map_err(e2s)?;
            let want: Vec<f64> = (0..n * n).map(|k| cos(k / n, k % n)).collect();
            check_close("cosine similarity", &sim, &want, IDENT)?;
            let first_max =
                |v: Vec<f64>| (0..v.len()).fold(0, |b, k| if v[k] > v[b] { k } else { b });
            let fa: Vec<usize> = (0..n)
                .map(|i| first_max((0..n).map(|j| sim[i * n + j]).collect()))
                .collect();
            let ba: Vec<usize> = (0..n)
                .map(|j| first_max((0..n).map(|i| sim[i * n + j]).collect()))
                .collect();
            if fa != r.fwd_argmax || ba != r.bwd_argmax {
                return Err("argmax differs from the definition".into());
            }
            let acc = |a: &[usize]| {
                a.iter().enumerate().filter(|(i, &x)| x == *i).count() as f64 / n as f64
            };
            check_close(
                "accuracies",
                &[r.forward, r.backward],
                &[acc(&fa), acc(&ba)],
                Tol::exact("same counts"),
            )?;
            // Rescaling an embedding does not change its direction: same retrievals.
            let ps: Vec<f64> = p
                .iter()
                .enumerate()
                .map(|(k, &x)| x * (1.0 + (k / d) as f64))
                .collect();
            let rs = metrics::retrieval_top1(&ps, &t, n, d).map_err(e2s)?;
            if rs.fwd_argmax != r.fwd_argmax {
                return Err("retrieval not scale invariant".into());
            }
            // A perfect predictor retrieves everything (d ≥ 2 keeps rows apart).
            if d >= 2 {
                let perf = metrics::retrieval_top1(&t, &t, n, d).map_err(e2s)?;
                check_close(
                    "perfect",
                    &[perf.forward, perf.backward],
                    &[1.0, 1.0],
                    Tol::exact("all hits"),
                )?;
            }
            // One subset of all n samples is a permutation of the full set: same accuracies
            // (for d ≥ 2; at d = 1 every cosine is ±1 and ties break by position).
            if d >= 2 {
                let sub = metrics::retrieval_top1_subsets(
                    &p,
                    &t,
                    n,
                    d,
                    SubsetSampling {
                        subsets: 2,
                        size: n,
                        seed,
                    },
                )
                .map_err(e2s)?;
                check_close(
                    "subset of all",
                    &sub.per_subset_forward,
                    &[r.forward; 2],
                    Tol::new(1e-15, 0.0, "same hits"),
                )?;
                check_close(
                    "subset of all (bwd)",
                    &sub.per_subset_backward,
                    &[r.backward; 2],
                    Tol::new(1e-15, 0.0, "same hits"),
                )?;
            }
            // Errors and NaN.
            shape_err(metrics::retrieval_top1(&p[1..], &t, n, d))?;
            invalid_err(metrics::retrieval_top1_subsets(
                &p,
                &t,
                n,
                d,
                SubsetSampling {
                    subsets: 1,
                    size: n + 1,
                    seed,
                },
            ))?;
            invalid_err(metrics::retrieval_top1_subsets(
                &p,
                &t,
                n,
                d,
                SubsetSampling {
                    subsets: 0,
                    size: 1,
                    seed,
                },
            ))?;
            let mut z = p.clone();
            z[..d].fill(0.0);
            let rz = metrics::retrieval_top1(&z, &t, n, d).map_err(e2s)?;
            if !rz.forward.is_nan() || !rz.backward.is_nan() {
                return Err("a zero embedding has no direction: NaN".into());
            }
            Ok(())
        },
    );
}

#[test]
fn retrieval_subsets_mindeye_protocol() {
    let (n, d) = (333, 12);
    let mut rng = Rng::new(7);
    let t = rng.vec(n * d, -1.0, 1.0);
    let p: Vec<f64> = t
        .iter()
        .map(|&x| x + 0.6 * rng.uniform(-1.0, 1.0))
        .collect();
    let s = SubsetSampling::MINDEYE;
    assert_eq!((s.subsets, s.size), (30, 300));
    let got = metrics::retrieval_top1_subsets(&p, &t, n, d, s).unwrap();
    assert_eq!(
        got,
        metrics::retrieval_top1_subsets(&p, &t, n, d, s).unwrap(),
        "deterministic"
    );
    let sim = metrics::cosine_similarity_matrix(&p, &t, n, d).unwrap();
    let mut subsets = Vec::new();
    for k in 0..s.subsets {
        let idx = metrics::subset_indices(n, s.size, s.seed, k);
        let mut sorted = idx.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), s.size, "drawn without replacement");
        assert!(idx.iter().all(|&i| i < n));
        // Top-1 within the subset, by hand.
        let (mut hf, mut hb) = (0, 0);
        for (a, &i) in idx.iter().enumerate() {
            let best_f = (0..idx.len()).fold(0, |b, c| {
                if sim[i * n + idx[c]] > sim[i * n + idx[b]] {
                    c
                } else {
                    b
                }
            });
            let best_b = (0..idx.len()).fold(0, |b, c| {
                if sim[idx[c] * n + i] > sim[idx[b] * n + i] {
                    c
                } else {
                    b
                }
            });
            hf += (best_f == a) as usize;
            hb += (best_b == a) as usize;
        }
        assert_eq!(got.per_subset_forward[k], hf as f64 / s.size as f64);
        assert_eq!(got.per_subset_backward[k], hb as f64 / s.size as f64);
        subsets.push(idx);
    }
    assert!(subsets.windows(2).all(|w| w[0] != w[1]), "subsets differ");
    let mean = got.per_subset_forward.iter().sum::<f64>() / 30.0;
    assert!((got.forward - mean).abs() < 1e-15);
    // A different seed draws different subsets.
    assert_ne!(
        metrics::subset_indices(n, 300, 1, 0),
        metrics::subset_indices(n, 300, 0, 0)
    );
}

#[test]
fn correlation_properties() {
    run(
        "correlation_properties",
        CASES,
        (dim(65), any::<u64>(), 2u32..8),
        |(k, seed, levels)| {
            let k = k.max(2);
            let mut rng = Rng::new(seed);
            let x = rng.vec(k, -2.0, 2.0);
            let y: Vec<f64> = x.iter().map(|&v| v + rng.uniform(-2.0, 2.0)).collect();
            let r = metrics::pearson(&x, &y).map_err(e2s)?;
            check_close(
                "distance = 1 − r",
                &[metrics::correlation_distance(&x, &y).map_err(e2s)?],
                &[1.0 - r],
                IDENT,
            )?;
            // Spearman is invariant under strictly increasing maps of either variable.
            let rho = metrics::spearman(&x, &y).map_err(e2s)?;
            let (ex, cy): (Vec<f64>, Vec<f64>) = (
                x.iter().map(|v| v.exp()).collect(),
                y.iter().map(|v| v * v * v).collect(),
            );
            check_close(
                "monotone invariance",
                &[metrics::spearman(&ex, &cy).map_err(e2s)?],
                &[rho],
                Tol::exact("identical ranks"),
            )?;
            // Average ranks of tied data against the counting definition.
            let ti: Vec<f64> = (0..k)
                .map(|_| (rng.next_u64() % levels as u64) as f64)
                .collect();
            let ranks = metrics::rankdata(&ti);
            let want: Vec<f64> = ti
                .iter()
                .map(|&v| {
                    let less = ti.iter().filter(|&&w| w < v).count() as f64;
                    let eq = ti.iter().filter(|&&w| w == v).count() as f64;
                    less + (eq + 1.0) / 2.0
                })
                .collect();
            check_close(
                "average ranks",
                &ranks,
                &want,
                Tol::exact("halves of small integers"),
            )?;
            let yt: Vec<f64> = ti
                .iter()
                .map(|&v| v + (rng.next_u64() % 3) as f64)
                .collect();
            let rs = metrics::spearman(&ti, &yt).map_err(e2s)?;
            let rp =
                metrics::pearson(&metrics::rankdata(&ti), &metrics::rankdata(&yt)).map_err(e2s)?;
            if !(rs.is_nan() && rp.is_nan()) {
                check_close(
                    "spearman = pearson of ranks",
                    &[rs],
                    &[rp],
                    Tol::exact("same computation"),
                )?;
            }
            // Undefined and bad inputs.
            if !metrics::pearson(&vec![1.0; k], &y).map_err(e2s)?.is_nan()
                || !metrics::spearman(&vec![3.0; k], &y).map_err(e2s)?.is_nan()
                || !metrics::correlation_distance(&x, &vec![0.0; k])
                    .map_err(e2s)?
                    .is_nan()
            {
                return Err("constant input must give NaN (numpy / scipy)".into());
            }
            let mut xn = x.clone();
            xn[k / 2] = f64::NAN;
            if !metrics::pearson(&xn, &y).map_err(e2s)?.is_nan()
                || !metrics::spearman(&xn, &y).map_err(e2s)?.is_nan()
            {
                return Err("NaN must propagate".into());
            }
            shape_err(metrics::pearson(&x, &y[1..]))?;
            shape_err(metrics::spearman(&x[1..], &y))?;
            invalid_err(metrics::pearson::<f64>(&[], &[]))?;
            invalid_err(metrics::correlation_distance::<f64>(&[], &[]))?;
            shape_err(metrics::correlation_matrix(&x, &y, 1, 1, k - 1))
        },
    );
}

#[test]
fn rsa_properties() {
    run(
        "rsa_properties",
        CASES,
        (2usize..=30, 2usize..=40, any::<u64>()),
        |(n, d, seed)| {
            let mut rng = Rng::new(seed);
            let x = rng.vec(n * d, -1.0, 1.0);
            let rdm = metrics::rdm(&x, n, d).map_err(e2s)?;
            let corr = metrics::correlation_matrix(&x, &x, n, n, d).map_err(e2s)?;
            for i in 0..n {
                for j in 0..n {
                    let (v, vt) = (rdm[i * n + j], rdm[j * n + i]);
                    if i == j && v != 0.0 {
                        return Err(format!("rdm diagonal {v} ≠ 0"));
                    }
                    if (v - vt).abs() > 1e-15
                        || (i != j && (v - (1.0 - corr[i * n + j])).abs() > 1e-15)
                        || !(0.0..=2.0).contains(&v)
                    {
                        return Err(format!(
                            "rdm[{i},{j}] = {v}: not 1 − r, symmetric, in [0, 2]"
                        ));
                    }
                }
            }
            // Per-row positive affine maps leave the RDM unchanged.
            let xa: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(k, &v)| (1.0 + (k / d) as f64) * v - 0.5 * (k / d) as f64)
                .collect();
            check_close(
                "rdm affine invariance",
                &metrics::rdm(&xa, n, d).map_err(e2s)?,
                &rdm,
                IDENT,
            )?;
            if n >= 3 {
                let s = metrics::rsa(&x, &xa, n, d, d).map_err(e2s)?;
                check_close("rsa(x, affine x)", &[s.rho], &[1.0], IDENT)?;
                // Spearman of the upper triangles, by hand.
                let y = rng.vec(n * 3, -1.0, 1.0);
                let s = metrics::rsa(&x, &y, n, d, 3).map_err(e2s)?;
                let want = metrics::spearman(
                    &metrics::upper_triangle(&s.rdm_x, n),
                    &metrics::upper_triangle(&s.rdm_y, n),
                )
                .map_err(e2s)?;
                check_close("rho", &[s.rho], &[want], Tol::exact("same computation"))?;
            }
            shape_err(metrics::rdm(&x[1..], n, d))?;
            invalid_err(metrics::rsa(&x[..d], &x[..d], 1, d, d))?;
            shape_err(metrics::rdm_spearman(&rdm, &rdm[1..], n))?;
            let mut xc = x.clone();
            xc[..d].fill(0.25); // a constant row: its dissimilarities are undefined
            let rc = metrics::rdm(&xc, n, d).map_err(e2s)?;
            if !rc[0].is_nan() || !rc[n - 1].is_nan() {
                return Err("constant row must give NaN dissimilarities".into());
            }
            Ok(())
        },
    );
}

/// Linear CKA in feature space (`p × p` products), the independent definition.
fn naive_cka(x: &[f64], y: &[f64], n: usize, p: usize, q: usize) -> f64 {
    let centre = |a: &[f64], c: usize| -> Vec<f64> {
        let mut m = vec![0.0; c];
        for r in a.chunks(c) {
            for (mm, v) in m.iter_mut().zip(r) {
                *mm += v / n as f64;
            }
        }
        a.chunks(c)
            .flat_map(|r| r.iter().zip(&m).map(|(v, mm)| v - mm).collect::<Vec<_>>())
            .collect()
    };
    let (xc, yc) = (centre(x, p), centre(y, q));
    // ‖Aᵀ B‖²_F for A [n, a], B [n, b].
    let cross = |a: &[f64], ca: usize, b: &[f64], cb: usize| -> f64 {
        let mut s = 0.0;
        for i in 0..ca {
            for j in 0..cb {
                let v: f64 = (0..n).map(|k| a[k * ca + i] * b[k * cb + j]).sum();
                s += v * v;
            }
        }
        s
    };
    cross(&yc, q, &xc, p) / (cross(&xc, p, &xc, p).sqrt() * cross(&yc, q, &yc, q).sqrt())
}

#[test]
fn cka_properties() {
    run(
        "cka_properties",
        CASES,
        (2usize..=24, dim(17), dim(33), any::<u64>()),
        |(n, p, q, seed)| {
            let mut rng = Rng::new(seed);
            let x0 = rng.vec(n * p, -1.0, 1.0);
            let x1 = rng.vec(n * q, -1.0, 1.0);
            let y0: Vec<f64> = x0.iter().map(|&v| v + rng.uniform(-0.5, 0.5)).collect();
            let got = metrics::cka_matrix(
                &[(&x0[..], p), (&x1[..], q)],
                &[(&y0[..], p), (&x1[..], q)],
                n,
            )
            .map_err(e2s)?;
            let want = [
                naive_cka(&x0, &y0, n, p, p),
                naive_cka(&x0, &x1, n, p, q),
                naive_cka(&x1, &y0, n, q, p),
                1.0,
            ];
            check_close("cka vs feature-space definition", &got, &want, IDENT)?;
            // Invariant to isotropic scaling, column translation and column permutation.
            let xt: Vec<f64> = x0
                .iter()
                .enumerate()
                .map(|(k, &v)| 3.0 * v + (k % p) as f64)
                .collect();
            let xp: Vec<f64> = (0..n * p)
                .map(|k| xt[(k / p) * p + (p - 1 - k % p)])
                .collect();
            check_close(
                "invariances",
                &[metrics::linear_cka(&xp, &y0, n, p, p).map_err(e2s)?],
                &[got[0]],
                IDENT,
            )?;
            // Symmetric.
            check_close(
                "symmetric",
                &[metrics::linear_cka(&y0, &x0, n, p, p).map_err(e2s)?],
                &[got[0]],
                IDENT,
            )?;
            // Errors, constant layers, NaN.
            shape_err(metrics::cka_matrix(&[(&x0[1..], p)], &[(&y0[..], p)], n))?;
            shape_err(metrics::cka_matrix(&[(&x0[..], p)], &[(&y0[..], p + 1)], n))?;
            invalid_err(metrics::cka_matrix::<f64>(&[], &[(&y0[..], p)], n))?;
            invalid_err(metrics::cka_matrix(&[(&x0[..p], p)], &[(&y0[..p], p)], 1))?;
            invalid_err(metrics::cka_matrix(&[(&x0[..0], 0)], &[(&y0[..], p)], n))?;
            let flat = vec![0.5; n * p];
            if !metrics::linear_cka(&flat, &y0, n, p, p)
                .map_err(e2s)?
                .is_nan()
            {
                return Err("a layer without variance has no CKA: NaN".into());
            }
            let mut xn = x0.clone();
            xn[0] = f64::NAN;
            if !metrics::linear_cka(&xn, &y0, n, p, p)
                .map_err(e2s)?
                .is_nan()
            {
                return Err("NaN must propagate".into());
            }
            Ok(())
        },
    );
}
