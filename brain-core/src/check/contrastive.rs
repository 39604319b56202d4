//! Checks of the contrastive kernels: row L2 normalisation and SoftCLIP / InfoNCE on
//! `n×n` logits, plus the configuration of the composite contrastive loss.

use super::core::*;
use crate::error::Result;
use crate::ops::ContrastiveLoss;
use alloc::format;

/// A loss backward's `scale` (∂total/∂loss) must be finite.
fn finite_scale(op: &'static str, scale: f64) -> Result<()> {
    if scale.is_finite() {
        Ok(())
    } else {
        Err(invalid(op, format!("scale {scale} must be finite")))
    }
}

/// Row normalisation forward: `x`, `y` `[rows, cols]`, `norms` `[rows]`.
pub fn l2_normalize_rows_forward(
    x: usize,
    y: usize,
    norms: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "l2_normalize_rows_forward";
    let total = numel(OP, &[rows, cols])?;
    len(OP, "x", x, total)?;
    len(OP, "y", y, total)?;
    len(OP, "norms", norms, rows)
}

/// Row normalisation backward: `dy`, `x`, `dx` `[rows, cols]`, `norms` `[rows]`.
pub fn l2_normalize_rows_backward(
    dy: usize,
    x: usize,
    norms: usize,
    dx: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "l2_normalize_rows_backward";
    let total = numel(OP, &[rows, cols])?;
    len(OP, "dy", dy, total)?;
    len(OP, "x", x, total)?;
    len(OP, "norms", norms, rows)?;
    len(OP, "dx", dx, total)
}

/// The logits of a contrastive kernel: `n ≥ 1`, `logits_pt` `[n, n]`; SoftCLIP needs
/// `logits_tt` `[n, n]`; InfoNCE ignores it (but a given one must still be `[n, n]`).
/// Returns `n·n`.
fn logits(
    op: &'static str,
    kind: ContrastiveLoss,
    pt: usize,
    tt: Option<usize>,
    n: usize,
) -> Result<usize> {
    if n == 0 {
        return Err(invalid(op, "the mean over n = 0 rows is undefined".into()));
    }
    let nn = numel(op, &[n, n])?;
    len(op, "logits_pt", pt, nn)?;
    match (kind, tt) {
        (ContrastiveLoss::SoftClip, None) => Err(invalid(
            op,
            "SoftCLIP needs the target-target logits logits_tt".into(),
        )),
        (_, Some(tt)) => len(op, "logits_tt", tt, nn).map(|_| nn),
        (ContrastiveLoss::InfoNce, None) => Ok(nn),
    }
}

/// Contrastive forward: logits as above, `loss` `[1]`.
pub fn contrastive_forward(
    kind: ContrastiveLoss,
    logits_pt: usize,
    logits_tt: Option<usize>,
    n: usize,
    loss: usize,
) -> Result<()> {
    const OP: &str = "contrastive_forward";
    logits(OP, kind, logits_pt, logits_tt, n)?;
    len(OP, "loss", loss, 1)
}

/// Contrastive backward: logits as above, `dlogits_pt` `[n, n]`, `dlogits_tt` (when
/// given) `[n, n]`, finite `scale`.
pub fn contrastive_backward(
    kind: ContrastiveLoss,
    logits_pt: usize,
    logits_tt: Option<usize>,
    n: usize,
    scale: f64,
    dlogits_pt: usize,
    dlogits_tt: Option<usize>,
) -> Result<()> {
    const OP: &str = "contrastive_backward";
    let nn = logits(OP, kind, logits_pt, logits_tt, n)?;
    len(OP, "dlogits_pt", dlogits_pt, nn)?;
    if let Some(d) = dlogits_tt {
        len(OP, "dlogits_tt", d, nn)?;
    }
    finite_scale(OP, scale)
}

/// A positive, finite temperature.
fn temperature(op: &'static str, t: f64) -> Result<()> {
    if t > 0.0 && t.is_finite() {
        Ok(())
    } else {
        Err(invalid(
            op,
            format!("temperature {t} must be finite and positive"),
        ))
    }
}

/// Logits from Gram matrices: `g_pt` `[n, n]` (and `g_tt` for SoftCLIP), `p_sq`,
/// `t_sq` `[n]`, the logits as for [`contrastive_forward`], τ > 0.
pub fn clip_logits_forward(
    kind: ContrastiveLoss,
    g_pt: usize,
    g_tt: Option<usize>,
    p_sq: usize,
    t_sq: usize,
    n: usize,
    temperature_: f64,
    logits_pt: usize,
    logits_tt: Option<usize>,
) -> Result<()> {
    const OP: &str = "clip_logits_forward";
    let nn = logits(OP, kind, logits_pt, logits_tt, n)?;
    len(OP, "g_pt", g_pt, nn)?;
    match (kind, g_tt, logits_tt) {
        (ContrastiveLoss::SoftClip, Some(g), Some(_)) => len(OP, "g_tt", g, nn)?,
        (ContrastiveLoss::SoftClip, None, _) => {
            return Err(invalid(
                OP,
                "SoftCLIP needs the target Gram matrix g_tt".into(),
            ))
        }
        (ContrastiveLoss::InfoNce, None, None) => {}
        _ => {
            return Err(invalid(
                OP,
                "InfoNCE takes no target-target Gram matrix or logits".into(),
            ))
        }
    }
    len(OP, "p_sq", p_sq, n)?;
    len(OP, "t_sq", t_sq, n)?;
    temperature(OP, temperature_)
}

/// Backward through [`clip_logits_forward`]: logits and their gradients `[n, n]`
/// (`dlogits_tt` needs `logits_tt`), `p_sq`, `t_sq` `[n]`, outputs `[n, n]`.
pub fn clip_logits_backward(
    kind: ContrastiveLoss,
    logits_pt: usize,
    logits_tt: Option<usize>,
    dlogits_pt: usize,
    dlogits_tt: Option<usize>,
    p_sq: usize,
    t_sq: usize,
    n: usize,
    temperature_: f64,
    w_pt: usize,
    d_p: Option<usize>,
    w_tt: Option<usize>,
) -> Result<()> {
    const OP: &str = "clip_logits_backward";
    let nn = logits(OP, kind, logits_pt, logits_tt, n)?;
    len(OP, "dlogits_pt", dlogits_pt, nn)?;
    if let Some(d) = dlogits_tt {
        if logits_tt.is_none() {
            return Err(invalid(OP, "dlogits_tt needs logits_tt".into()));
        }
        len(OP, "dlogits_tt", d, nn)?;
    }
    len(OP, "p_sq", p_sq, n)?;
    len(OP, "t_sq", t_sq, n)?;
    len(OP, "w_pt", w_pt, nn)?;
    if let Some(d) = d_p {
        len(OP, "d_p", d, nn)?;
    }
    if let Some(w) = w_tt {
        len(OP, "w_tt", w, nn)?;
    }
    temperature(OP, temperature_)
}

/// The Gram pass of the composite loss: `preds`, `targets` `[n, d]`, `p_sq`, `t_sq`
/// `[n]`, `g_pt` `[n, n]`, and `g_tt` `[n, n]` exactly for SoftCLIP.
pub fn clip_grams_forward(
    kind: ContrastiveLoss,
    preds: usize,
    targets: usize,
    n: usize,
    d: usize,
    p_sq: usize,
    t_sq: usize,
    g_pt: usize,
    g_tt: Option<usize>,
) -> Result<()> {
    const OP: &str = "clip_grams_forward";
    let nd = numel(OP, &[n, d])?;
    let nn = numel(OP, &[n, n])?;
    len(OP, "preds", preds, nd)?;
    len(OP, "targets", targets, nd)?;
    len(OP, "p_sq", p_sq, n)?;
    len(OP, "t_sq", t_sq, n)?;
    len(OP, "g_pt", g_pt, nn)?;
    match (kind, g_tt) {
        (ContrastiveLoss::SoftClip, Some(g)) => len(OP, "g_tt", g, nn),
        (ContrastiveLoss::SoftClip, None) => Err(invalid(
            OP,
            "SoftCLIP needs the target Gram matrix g_tt".into(),
        )),
        (ContrastiveLoss::InfoNce, None) => Ok(()),
        (ContrastiveLoss::InfoNce, Some(_)) => Err(invalid(
            OP,
            "InfoNCE takes no target-target Gram matrix".into(),
        )),
    }
}

/// The input gradients of the composite loss: coefficients `w_pt`, `d_p`, `w_tt`
/// `[n, n]`, `preds`, `targets` and the gradients `[n, d]`.
pub fn clip_inputs_backward(
    w_pt: usize,
    d_p: usize,
    w_tt: usize,
    preds: usize,
    targets: usize,
    n: usize,
    d: usize,
    dpreds: Option<usize>,
    dtargets: Option<usize>,
) -> Result<()> {
    const OP: &str = "clip_inputs_backward";
    let nd = numel(OP, &[n, d])?;
    let nn = numel(OP, &[n, n])?;
    len(OP, "w_pt", w_pt, nn)?;
    len(OP, "d_p", d_p, nn)?;
    len(OP, "w_tt", w_tt, nn)?;
    len(OP, "preds", preds, nd)?;
    len(OP, "targets", targets, nd)?;
    if let Some(g) = dpreds {
        len(OP, "dpreds", g, nd)?;
    }
    if let Some(g) = dtargets {
        len(OP, "dtargets", g, nd)?;
    }
    Ok(())
}

/// Configuration of the composite contrastive loss: `n ≥ 1` rows of `d ≥ 1` features
/// and a finite temperature `τ > 0`.
pub fn contrastive_loss_config(n: usize, d: usize, temperature: f64) -> Result<()> {
    const OP: &str = "ClipLoss::new";
    if n == 0 || d == 0 {
        return Err(invalid(
            OP,
            format!("need n ≥ 1 rows and d ≥ 1 features (got n = {n}, d = {d})"),
        ));
    }
    numel(OP, &[n, d])?;
    numel(OP, &[n, n])?;
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(invalid(
            OP,
            format!("temperature {temperature} must be finite and positive"),
        ));
    }
    Ok(())
}
