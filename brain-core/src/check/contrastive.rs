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
