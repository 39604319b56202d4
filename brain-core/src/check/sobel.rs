//! Checks of the Sobel kernels and the Sobel loss on NCHW tensors.

use super::core::*;
use crate::error::Result;
use crate::ops::ImageShape;
use alloc::format;

/// N·C·H·W with overflow reported.
fn image_len(op: &'static str, s: &ImageShape) -> Result<usize> {
    numel(op, &[s.batch, s.channels, s.height, s.width])
}

/// Sobel forward: `x`, `gx`, `gy`, `magnitude` all `[N, C, H, W]`.
pub fn sobel_forward(
    x: usize,
    shape: &ImageShape,
    gx: usize,
    gy: usize,
    magnitude: usize,
) -> Result<()> {
    const OP: &str = "sobel_forward";
    let total = image_len(OP, shape)?;
    len(OP, "x", x, total)?;
    len(OP, "gx", gx, total)?;
    len(OP, "gy", gy, total)?;
    len(OP, "magnitude", magnitude, total)
}

/// Sobel backward: `x`, `dx` and each given output gradient `[N, C, H, W]`.
pub fn sobel_backward(
    x: usize,
    shape: &ImageShape,
    dgx: Option<usize>,
    dgy: Option<usize>,
    dmagnitude: Option<usize>,
    dx: usize,
) -> Result<()> {
    const OP: &str = "sobel_backward";
    let total = image_len(OP, shape)?;
    len(OP, "x", x, total)?;
    if let Some(d) = dgx {
        len(OP, "dgx", d, total)?;
    }
    if let Some(d) = dgy {
        len(OP, "dgy", d, total)?;
    }
    if let Some(d) = dmagnitude {
        len(OP, "dmagnitude", d, total)?;
    }
    len(OP, "dx", dx, total)
}

/// The loss's inputs: non-empty, `pred` and `target` `[N, C, H, W]`; returns N·C·H·W.
fn loss_inputs(op: &'static str, pred: usize, target: usize, s: &ImageShape) -> Result<usize> {
    let total = image_len(op, s)?;
    if total == 0 {
        return Err(invalid(
            op,
            format!("the mean over an empty image {s:?} is undefined"),
        ));
    }
    len(op, "pred", pred, total)?;
    len(op, "target", target, total)?;
    Ok(total)
}

/// Sobel loss forward: `pred`, `target` `[N, C, H, W]` (non-empty), `loss` `[1]`.
pub fn sobel_loss_forward(
    pred: usize,
    target: usize,
    shape: &ImageShape,
    loss: usize,
) -> Result<()> {
    const OP: &str = "sobel_loss_forward";
    loss_inputs(OP, pred, target, shape)?;
    len(OP, "loss", loss, 1)
}

/// Sobel loss backward: `pred`, `target` and the given gradients `[N, C, H, W]`,
/// finite `scale`.
pub fn sobel_loss_backward(
    pred: usize,
    target: usize,
    shape: &ImageShape,
    scale: f64,
    dpred: Option<usize>,
    dtarget: Option<usize>,
) -> Result<()> {
    const OP: &str = "sobel_loss_backward";
    let total = loss_inputs(OP, pred, target, shape)?;
    if let Some(d) = dpred {
        len(OP, "dpred", d, total)?;
    }
    if let Some(d) = dtarget {
        len(OP, "dtarget", d, total)?;
    }
    if !scale.is_finite() {
        return Err(invalid(OP, format!("scale {scale} must be finite")));
    }
    Ok(())
}
