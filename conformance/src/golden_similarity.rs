//! MSE, CKA, Sims and the multi-granularity loss against PyTorch (`losses.json`,
//! float64 autograd, `conformance/golden/make_losses.py`).
//!
//! The backend sees the inputs rounded to its element type while PyTorch used the f64
//! values, so each tensor is compared with `atol = C·u·max(1, max|expected|)` (and the
//! same relative part): the rounding of the inputs (u relative) moves each output by
//! u times its own magnitude times the problem's conditioning, which `C` bounds
//! (stated per kernel below). The f64 reference matches to ~1e-13.

use crate::data::{down, up};
use crate::golden::{load, Case, LOSSES_JSON};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::loss::cka::CkaLoss;
use brain_core::loss::multi_granularity::MultiGranularityLoss;
use brain_core::reference::sims::sims_profile;
use brain_core::{Backend, Element, HsicEstimator};

/// Check `be` against every case of its kernels in the golden file.
pub fn check<B: Backend>(be: &B) {
    let file = load(LOSSES_JSON);
    let mut failures = Vec::new();
    let mut seen = 0;
    for case in &file.cases {
        let r = match case.kernel.as_str() {
            "mse" => run_mse(be, case),
            "cka" => run_cka(be, case),
            "sims" => run_sims(be, case),
            "mg" => run_mg(be, case),
            _ => continue,
        };
        seen += 1;
        if let Err(msg) = r {
            failures.push(format!("{} ({}): {msg}", case.name, case.kernel));
        }
    }
    assert!(
        seen >= 20,
        "expected the similarity cases in losses.json, found {seen}"
    );
    assert!(
        failures.is_empty(),
        "{} golden similarity case(s) failed against torch {}:\n{}",
        failures.len(),
        file.torch_version,
        failures.join("\n")
    );
}

/// Compare `got` with the case's tensor `name`, tolerance `c·u` of its magnitude.
fn cmp<B: Backend>(
    case: &Case,
    name: &str,
    got: &[f64],
    c: f64,
    why: &'static str,
) -> Result<(), String> {
    let want = case.t(name);
    let u = unit_roundoff::<B::Elem>();
    let mag = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    check_close(name, got, want, Tol::new(c * u * mag, c * u, why))
}

type E = brain_core::BrainError;

fn run_mse<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    const WHY: &str = "inputs rounded (u relative) through a difference of O(1) values \
        and a mean: 64·u of the output's magnitude";
    let e = |e: E| e.to_string();
    let (a, b) = (up(be, c.t("a")), up(be, c.t("b")));
    let mut loss = be.alloc(1).map_err(e)?;
    be.mse_forward(&a, &b, &mut loss).map_err(e)?;
    cmp::<B>(c, "loss", &down(be, &loss), 64.0, WHY)?;
    let n = c.t("a").len();
    let (mut da, mut db) = (be.alloc(n).map_err(e)?, be.alloc(n).map_err(e)?);
    be.mse_backward(&a, &b, 1.0, Some(&mut da), Some(&mut db))
        .map_err(e)?;
    cmp::<B>(c, "da", &down(be, &da), 64.0, WHY)?;
    cmp::<B>(c, "db", &down(be, &db), 64.0, WHY)
}

fn estimator(c: &Case, key: &str) -> Result<HsicEstimator, String> {
    match c.params.get(key).and_then(|v| v.as_str()) {
        Some("biased") => Ok(HsicEstimator::Biased),
        Some("unbiased") => Ok(HsicEstimator::Unbiased),
        other => Err(format!("unknown estimator {other:?}")),
    }
}

fn run_cka<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    // Gram entries are sums of p products and HSIC sums n² of them; the centred
    // values cancel part of that, and CKA divides HSICs, so relative input rounding
    // comes out amplified by up to ~p·n·(uncentred/centred scale): 4096·u covers
    // every case (n ≤ 32, p ≤ 257).
    const WHY: &str = "inputs rounded, then Gram sums of p terms, HSIC sums of n² terms with \
        centring cancellation and a ratio: 4096·u of each output's magnitude";
    let e = |e: E| e.to_string();
    let (n, p, q) = (c.p("n"), c.p("p"), c.p("q"));
    let est = estimator(c, "estimator")?;
    let (a, b) = (up(be, c.t("a")), up(be, c.t("b")));
    let mut cka = CkaLoss::new(be, n, p, q, est).map_err(e)?;
    let mut loss = be.alloc(1).map_err(e)?;
    cka.forward(be, &a, &b, &mut loss).map_err(e)?;
    let mut stats = be.alloc(4).map_err(e)?;
    cka.statistics(be, &mut stats).map_err(e)?;
    let st = down(be, &stats);
    cmp::<B>(c, "loss", &down(be, &loss), 4096.0, WHY)?;
    cmp::<B>(c, "loss", &st[0..1], 4096.0, WHY)?;
    cmp::<B>(c, "cka", &[1.0 - st[0]], 4096.0, WHY)?;
    cmp::<B>(c, "hsic_ab", &st[1..2], 4096.0, WHY)?;
    cmp::<B>(c, "hsic_aa", &st[2..3], 4096.0, WHY)?;
    cmp::<B>(c, "hsic_bb", &st[3..4], 4096.0, WHY)?;
    let (mut da, mut db) = (be.alloc(n * p).map_err(e)?, be.alloc(n * q).map_err(e)?);
    cka.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))
        .map_err(e)?;
    cmp::<B>(c, "da", &down(be, &da), 4096.0, WHY)?;
    cmp::<B>(c, "db", &down(be, &db), 4096.0, WHY)
}

fn run_sims<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    const WHY: &str = "inputs rounded, cosines over d ≤ 33 terms, a mean: 256·u of each \
        output's magnitude";
    let e = |e: E| e.to_string();
    let (batch, m, d) = (c.p("batch"), c.p("m"), c.p("d"));
    let (a, b) = (up(be, c.t("a")), up(be, c.t("b")));
    let mut loss = be.alloc(1).map_err(e)?;
    be.sims_forward(&a, &b, batch, m, d, &mut loss).map_err(e)?;
    cmp::<B>(c, "loss", &down(be, &loss), 256.0, WHY)?;
    // The profiles themselves, as the reference defines them, on the rounded inputs.
    let rounded =
        |x: &[f64]| -> Vec<f64> { x.iter().map(|&v| B::Elem::from_f64(v).to_f64()).collect() };
    let sa = sims_profile(&rounded(c.t("a")), batch, m, d);
    let sb = sims_profile(&rounded(c.t("b")), batch, m, d);
    cmp::<B>(c, "s_a", &sa, 256.0, WHY)?;
    cmp::<B>(c, "s_b", &sb, 256.0, WHY)?;
    let n = batch * m * d;
    let (mut da, mut db) = (be.alloc(n).map_err(e)?, be.alloc(n).map_err(e)?);
    be.sims_backward(&a, &b, batch, m, d, 1.0, Some(&mut da), Some(&mut db))
        .map_err(e)?;
    cmp::<B>(c, "da", &down(be, &da), 256.0, WHY)?;
    cmp::<B>(c, "db", &down(be, &db), 256.0, WHY)
}

fn run_mg<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    const WHY: &str = "CKA (sums over n² Gram entries of m·d products) plus Sims on rounded \
        inputs: 4096·u of each output's magnitude, as the CKA cases";
    let e = |e: E| e.to_string();
    let (batch, m, d) = (c.p("batch"), c.p("m"), c.p("d"));
    let est = estimator(c, "cka_estimator")?;
    let (a, b) = (up(be, c.t("a")), up(be, c.t("b")));
    let mut mg = MultiGranularityLoss::with_estimator(be, batch, m, d, est).map_err(e)?;
    let mut loss = be.alloc(1).map_err(e)?;
    mg.forward(be, &a, &b, &mut loss).map_err(e)?;
    cmp::<B>(c, "loss", &down(be, &loss), 4096.0, WHY)?;
    cmp::<B>(c, "cka", &[1.0 - down(be, mg.cka_loss())[0]], 4096.0, WHY)?;
    cmp::<B>(c, "sims", &down(be, mg.sims_loss()), 4096.0, WHY)?;
    let n = batch * m * d;
    let (mut da, mut db) = (be.alloc(n).map_err(e)?, be.alloc(n).map_err(e)?);
    mg.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))
        .map_err(e)?;
    cmp::<B>(c, "da", &down(be, &da), 4096.0, WHY)?;
    cmp::<B>(c, "db", &down(be, &db), 4096.0, WHY)
}
