//! contrastive kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn l2_normalize_rows_forward(
    _be: &WgpuBackend,
    _x: &WgpuBuffer,
    _y: &mut WgpuBuffer,
    _norms: &mut WgpuBuffer,
    _rows: usize,
    _cols: usize,
) -> Result<()> {
    Err(not_yet("l2_normalize_rows_forward"))
}

pub(crate) fn l2_normalize_rows_backward(
    _be: &WgpuBackend,
    _dy: &WgpuBuffer,
    _x: &WgpuBuffer,
    _norms: &WgpuBuffer,
    _dx: &mut WgpuBuffer,
    _rows: usize,
    _cols: usize,
) -> Result<()> {
    Err(not_yet("l2_normalize_rows_backward"))
}

pub(crate) fn contrastive_forward(
    _be: &WgpuBackend,
    _kind: ContrastiveLoss,
    _logits_pt: &WgpuBuffer,
    _logits_tt: Option<&WgpuBuffer>,
    _n: usize,
    _loss: &mut WgpuBuffer,
) -> Result<()> {
    Err(not_yet("contrastive_forward"))
}

pub(crate) fn contrastive_backward(
    _be: &WgpuBackend,
    _kind: ContrastiveLoss,
    _logits_pt: &WgpuBuffer,
    _logits_tt: Option<&WgpuBuffer>,
    _n: usize,
    _scale: f64,
    _dlogits_pt: &mut WgpuBuffer,
    _dlogits_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("contrastive_backward"))
}

pub(crate) fn clip_logits_forward(
    _be: &WgpuBackend,
    _kind: ContrastiveLoss,
    _g_pt: &WgpuBuffer,
    _g_tt: Option<&WgpuBuffer>,
    _p_sq: &WgpuBuffer,
    _t_sq: &WgpuBuffer,
    _n: usize,
    _temperature: f64,
    _logits_pt: &mut WgpuBuffer,
    _logits_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("clip_logits_forward"))
}

pub(crate) fn clip_logits_backward(
    _be: &WgpuBackend,
    _kind: ContrastiveLoss,
    _logits_pt: &WgpuBuffer,
    _logits_tt: Option<&WgpuBuffer>,
    _dlogits_pt: &WgpuBuffer,
    _dlogits_tt: Option<&WgpuBuffer>,
    _p_sq: &WgpuBuffer,
    _t_sq: &WgpuBuffer,
    _n: usize,
    _temperature: f64,
    _w_pt: &mut WgpuBuffer,
    _d_p: Option<&mut WgpuBuffer>,
    _w_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("clip_logits_backward"))
}

pub(crate) fn clip_grams_forward(
    _be: &WgpuBackend,
    _kind: ContrastiveLoss,
    _preds: &WgpuBuffer,
    _targets: &WgpuBuffer,
    _n: usize,
    _d: usize,
    _p_sq: &mut WgpuBuffer,
    _t_sq: &mut WgpuBuffer,
    _g_pt: &mut WgpuBuffer,
    _g_tt: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("clip_grams_forward"))
}

pub(crate) fn clip_inputs_backward(
    _be: &WgpuBackend,
    _kind: ContrastiveLoss,
    _w_pt: &WgpuBuffer,
    _d_p: &WgpuBuffer,
    _w_tt: &WgpuBuffer,
    _preds: &WgpuBuffer,
    _targets: &WgpuBuffer,
    _n: usize,
    _d: usize,
    _dpreds: Option<&mut WgpuBuffer>,
    _dtargets: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("clip_inputs_backward"))
}
