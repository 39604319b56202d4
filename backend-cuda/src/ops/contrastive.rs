//! Row L2 normalisation and the contrastive kernels (`kernels/contrastive.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/contrastive.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{ContrastiveLoss, Result};

/// `y = x / max(‖x‖, 1e-12)` per row; saves `norms`.
pub(crate) fn l2_normalize_rows_forward(
    dev: &Device,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
    norms: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    Err(not_yet("l2_normalize_rows_forward"))
}

/// `dx` (overwritten) through the row normalisation.
pub(crate) fn l2_normalize_rows_backward(
    dev: &Device,
    dy: &CudaBuffer,
    x: &CudaBuffer,
    norms: &CudaBuffer,
    dx: &mut CudaBuffer,
    rows: usize,
    cols: usize,
) -> Result<()> {
    Err(not_yet("l2_normalize_rows_backward"))
}

/// SoftCLIP / InfoNCE loss from `n×n` logits.
pub(crate) fn contrastive_forward(
    dev: &Device,
    kind: ContrastiveLoss,
    logits_pt: &CudaBuffer,
    logits_tt: Option<&CudaBuffer>,
    n: usize,
    loss: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("contrastive_forward"))
}

/// Gradients of `scale·loss` w.r.t. the logits (overwritten).
pub(crate) fn contrastive_backward(
    dev: &Device,
    kind: ContrastiveLoss,
    logits_pt: &CudaBuffer,
    logits_tt: Option<&CudaBuffer>,
    n: usize,
    scale: f64,
    dlogits_pt: &mut CudaBuffer,
    dlogits_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("contrastive_backward"))
}

/// Logits of row-normalised inputs from the raw Gram matrices.
pub(crate) fn clip_logits_forward(
    dev: &Device,
    kind: ContrastiveLoss,
    g_pt: &CudaBuffer,
    g_tt: Option<&CudaBuffer>,
    p_sq: &CudaBuffer,
    t_sq: &CudaBuffer,
    n: usize,
    temperature: f64,
    logits_pt: &mut CudaBuffer,
    logits_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("clip_logits_forward"))
}

/// Backward through `clip_logits_forward` as `n×n` coefficients (overwritten).
pub(crate) fn clip_logits_backward(
    dev: &Device,
    kind: ContrastiveLoss,
    logits_pt: &CudaBuffer,
    logits_tt: Option<&CudaBuffer>,
    dlogits_pt: &CudaBuffer,
    dlogits_tt: Option<&CudaBuffer>,
    p_sq: &CudaBuffer,
    t_sq: &CudaBuffer,
    n: usize,
    temperature: f64,
    w_pt: &mut CudaBuffer,
    d_p: Option<&mut CudaBuffer>,
    w_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("clip_logits_backward"))
}

/// Squared row norms and Gram matrices of the raw inputs (overwritten).
pub(crate) fn clip_grams_forward(
    dev: &Device,
    kind: ContrastiveLoss,
    preds: &CudaBuffer,
    targets: &CudaBuffer,
    n: usize,
    d: usize,
    p_sq: &mut CudaBuffer,
    t_sq: &mut CudaBuffer,
    g_pt: &mut CudaBuffer,
    g_tt: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("clip_grams_forward"))
}

/// `dpreds += w_pt·T + d_p·P`, `dtargets += w_ptᵀ·P + w_tt·T` (accumulated).
pub(crate) fn clip_inputs_backward(
    dev: &Device,
    kind: ContrastiveLoss,
    w_pt: &CudaBuffer,
    d_p: &CudaBuffer,
    w_tt: &CudaBuffer,
    preds: &CudaBuffer,
    targets: &CudaBuffer,
    n: usize,
    d: usize,
    dpreds: Option<&mut CudaBuffer>,
    dtargets: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("clip_inputs_backward"))
}
