//! SoftCLIP, InfoNCE, Sobel and the Sobel loss against PyTorch (`losses.json`,
//! float64 autograd, `conformance/golden/make_losses.py`).
//!
//! SoftCLIP and InfoNCE run through the composite [`ClipLoss`] (normalisation, the
//! logit GEMMs, the contrastive kernels and back), so the golden `dtarget` also checks
//! the gradient path through softmax(C_tt). Sobel runs `sobel_forward` and
//! `sobel_backward` (cotangent `r` on the magnitude); the Sobel loss its fused kernels.
//!
//! The backend sees the inputs rounded to its element type while PyTorch used the f64
//! values; each tensor is compared with `atol = C·u·max(1, max|expected|)` and
//! `rtol = C·u`, `C` stated per kernel with its reason. The f64 reference matches to
//! ~1e-12 (its `C·u` is then ~1e-13·C).

use crate::data::{down, up};
use crate::golden::{load, Case, LOSSES_JSON, METRICS_JSON};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::loss::contrastive::ClipLoss;
use brain_core::{Backend, ContrastiveLoss, ImageShape, SobelLossForm};

/// Check `be` against every case of its kernels in the golden file.
pub fn check<B: Backend>(be: &B) {
    let file = load(LOSSES_JSON);
    let mut failures = Vec::new();
    let mut seen = 0;
    for case in &file.cases {
        let r = match case.kernel.as_str() {
            "softclip" => run_clip(be, case, ContrastiveLoss::SoftClip),
            "infonce" => run_clip(be, case, ContrastiveLoss::InfoNce),
            "sobel" => run_sobel(be, case),
            "sobel_loss" => run_sobel_loss(be, case),
            _ => continue,
        };
        seen += 1;
        if let Err(msg) = r {
            failures.push(format!("{} ({}): {msg}", case.name, case.kernel));
        }
    }
    assert!(
        seen >= 32,
        "expected the contrastive and Sobel cases in losses.json, found {seen}"
    );
    // Sobel against scikit-image's own filters on real photographs (metrics.json).
    let metrics = load(METRICS_JSON);
    let mut seen_skimage = 0;
    for case in metrics.cases.iter().filter(|c| c.kernel == "sobel_skimage") {
        seen_skimage += 1;
        if let Err(msg) = run_sobel_skimage(be, case) {
            failures.push(format!("{} (sobel_skimage): {msg}", case.name));
        }
    }
    assert!(
        seen_skimage >= 2,
        "expected the scikit-image Sobel cases in metrics.json, found {seen_skimage}"
    );
    assert!(
        failures.is_empty(),
        "{} golden contrastive/Sobel case(s) failed against torch {}:\n{}",
        failures.len(),
        file.torch_version,
        failures.join("\n")
    );
}

/// Compare `got` with the case's tensor `name`: `c·u` of its magnitude, and relative.
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

fn run_clip<B: Backend>(be: &B, c: &Case, kind: ContrastiveLoss) -> Result<(), String> {
    const WHY: &str = "inputs rounded (u relative) move each cosine by ≤ 2u (Cauchy–Schwarz) \
        and its f32 dot product by ~√d·u, the logits by that over τ; softmax, its log and \
        the gradients move by ≤ 2× the logit error relative to their own size: \
        C = 2·(2 + √d)/τ (measured worst: 0.09 of it, near-duplicate targets at τ = 0.005)";
    let e = |e: E| e.to_string();
    let (n, d) = (c.p("n"), c.p("d"));
    let tau = c.f("temperature").ok_or("temperature")?;
    let (p, t) = (up(be, c.t("pred")), up(be, c.t("target")));
    let mut clip = ClipLoss::new(be, n, d, kind, tau).map_err(e)?;
    let mut loss = be.alloc(1).map_err(e)?;
    clip.forward(be, &p, &t, &mut loss).map_err(e)?;
    let k = 2.0 * (2.0 + (d as f64).sqrt()) / tau;
    cmp::<B>(c, "loss", &down(be, &loss), k, WHY)?;
    let (mut dp, mut dt) = (be.alloc(n * d).map_err(e)?, be.alloc(n * d).map_err(e)?);
    clip.backward(be, &p, &t, 1.0, Some(&mut dp), Some(&mut dt))
        .map_err(e)?;
    cmp::<B>(c, "dpred", &down(be, &dp), k, WHY)?;
    cmp::<B>(c, "dtarget", &down(be, &dt), k, WHY)
}

fn shape(c: &Case) -> ImageShape {
    ImageShape {
        batch: c.p("batch"),
        channels: c.p("channels"),
        height: c.p("height"),
        width: c.p("width"),
    }
}

fn run_sobel<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    const WHY: &str = "inputs rounded (u relative): each Sobel output sums 6 taps of \
        total weight 8 (C = 8 of the largest output); the magnitude's gradient goes \
        through gx/|g| and a second Sobel (C = 16); measured worst 1.7";
    let e = |e: E| e.to_string();
    let s = shape(c);
    let x = up(be, c.t("x"));
    let n = s.len();
    let (mut gx, mut gy, mut m) = (
        be.alloc(n).map_err(e)?,
        be.alloc(n).map_err(e)?,
        be.alloc(n).map_err(e)?,
    );
    be.sobel_forward(&x, &s, &mut gx, &mut gy, &mut m)
        .map_err(e)?;
    cmp::<B>(c, "gx", &down(be, &gx), 8.0, WHY)?;
    cmp::<B>(c, "gy", &down(be, &gy), 8.0, WHY)?;
    cmp::<B>(c, "magnitude", &down(be, &m), 8.0, WHY)?;
    let mut dx = be.alloc(n).map_err(e)?;
    be.sobel_backward(&x, &s, None, None, Some(&up(be, c.t("r"))), &mut dx)
        .map_err(e)?;
    cmp::<B>(c, "dx_mag", &down(be, &dx), 16.0, WHY)
}

fn run_sobel_loss<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    const WHY: &str = "inputs rounded (u relative) through two Sobels (6 taps, weight 8), \
        a difference of magnitudes and a mean (summed in f32 by the f32 reference): \
        C = 32; gradients through gx/|g| and a second Sobel: C = 16; measured worst 3.0";
    let e = |e: E| e.to_string();
    let s = shape(c);
    let form = match c.params.get("form").and_then(|v| v.as_str()) {
        Some("magnitude") => SobelLossForm::Magnitude,
        Some("components") => SobelLossForm::Components,
        other => return Err(format!("unknown Sobel loss form {other:?}")),
    };
    let (p, t) = (up(be, c.t("pred")), up(be, c.t("target")));
    let mut loss = be.alloc(1).map_err(e)?;
    be.sobel_loss_forward(&p, &t, &s, form, &mut loss)
        .map_err(e)?;
    cmp::<B>(c, "loss", &down(be, &loss), 32.0, WHY)?;
    let n = s.len();
    let (mut dp, mut dt) = (be.alloc(n).map_err(e)?, be.alloc(n).map_err(e)?);
    be.sobel_loss_backward(&p, &t, &s, form, 1.0, Some(&mut dp), Some(&mut dt))
        .map_err(e)?;
    cmp::<B>(c, "dpred", &down(be, &dp), 16.0, WHY)?;
    cmp::<B>(c, "dtarget", &down(be, &dt), 16.0, WHY)
}

/// `sobel_forward` on a photograph against scikit-image's filters, whose kernels are
/// ours divided by 4: gx = 4·`sobel(img, axis=1, mode="constant")`,
/// gy = 4·`sobel(img, axis=0, mode="constant")`, and skimage's magnitude is
/// √((h² + v²)/2), so ours is √(32·m² + ε). The default `sobel_h`/`sobel_v` reflect at
/// the border, so they are compared on the interior only.
fn run_sobel_skimage<B: Backend>(be: &B, c: &Case) -> Result<(), String> {
    const WHY: &str = "pixels in [0, 1] rounded (u relative): each output sums 6 taps of \
        total weight 8, C = 8 of the largest output";
    let e = |e: E| e.to_string();
    let (h, w) = (c.p("height"), c.p("width"));
    let s = ImageShape {
        batch: 1,
        channels: 1,
        height: h,
        width: w,
    };
    let x = up(be, c.t("image"));
    let n = s.len();
    let (mut gx, mut gy, mut m) = (
        be.alloc(n).map_err(e)?,
        be.alloc(n).map_err(e)?,
        be.alloc(n).map_err(e)?,
    );
    be.sobel_forward(&x, &s, &mut gx, &mut gy, &mut m)
        .map_err(e)?;
    let (gx, gy, m) = (down(be, &gx), down(be, &gy), down(be, &m));
    let u = unit_roundoff::<B::Elem>();
    let scaled = |name: &str, k: f64| -> Vec<f64> { c.t(name).iter().map(|v| k * v).collect() };
    let tol = |want: &[f64]| {
        let mag = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        Tol::new(8.0 * u * mag, 8.0 * u, WHY)
    };
    let want_gx = scaled("sobel_v_constant", 4.0);
    let want_gy = scaled("sobel_h_constant", 4.0);
    check_close("gx vs 4·skimage sobel axis=1", &gx, &want_gx, tol(&want_gx))?;
    check_close("gy vs 4·skimage sobel axis=0", &gy, &want_gy, tol(&want_gy))?;
    let eps = brain_core::ops::SOBEL_EPS;
    let want_m: Vec<f64> = c
        .t("skimage_magnitude_constant")
        .iter()
        .map(|v| (32.0 * v * v + eps).sqrt())
        .collect();
    check_close("magnitude vs skimage sobel", &m, &want_m, tol(&want_m))?;
    let interior = |v: &[f64]| -> Vec<f64> {
        (1..h - 1)
            .flat_map(|i| (1..w - 1).map(move |j| (i, j)))
            .map(|(i, j)| v[i * w + j])
            .collect()
    };
    let want_gx = interior(&scaled("sobel_v", 4.0));
    let want_gy = interior(&scaled("sobel_h", 4.0));
    check_close(
        "gx interior vs 4·skimage sobel_v",
        &interior(&gx),
        &want_gx,
        tol(&want_gx),
    )?;
    check_close(
        "gy interior vs 4·skimage sobel_h",
        &interior(&gy),
        &want_gy,
        tol(&want_gy),
    )
}
