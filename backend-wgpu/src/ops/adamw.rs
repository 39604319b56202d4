//! adamw kernels on wgpu: not written yet (issue 6).

use crate::{not_yet, WgpuBackend, WgpuBuffer};
use brain_core::*;

pub(crate) fn adamw_step(
    _be: &WgpuBackend,
    _cfg: &AdamW,
    _tensors: &mut [AdamWTensor<'_, WgpuBackend>],
    _grad_norm: Option<&mut WgpuBuffer>,
) -> Result<()> {
    Err(not_yet("adamw_step"))
}
