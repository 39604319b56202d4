//! Bias over the channel dim of `[outer, channels, inner]`: the add, and the gradient
//! sum (one workgroup per channel).

use crate::gpu::{Kernel, Params, Shader, READ_RW};
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::{check, Result};

static SHADER: Shader = shader!("bias.wgsl");
const BIAS_ADD: Kernel = Kernel::new(&SHADER, "bias_add", READ_RW);
const BIAS_BACKWARD: Kernel = Kernel::new(&SHADER, "bias_backward", READ_RW);

/// `y[o,c,i] += bias[c]`.
pub(crate) fn bias_add(
    be: &WgpuBackend,
    y: &mut WgpuBuffer,
    b: &WgpuBuffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    check::bias("bias_add", y.len, b.len, outer, channels, inner)?;
    add_unchecked(be, "bias_add", &y.buf, &b.buf, outer, channels, inner)
}

/// `dbias[c] += Σ_{o,i} dy[o,c,i]`.
pub(crate) fn bias_backward(
    be: &WgpuBackend,
    dy: &WgpuBuffer,
    db: &mut WgpuBuffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    check::bias("bias_backward", dy.len, db.len, outer, channels, inner)?;
    backward_unchecked(
        be,
        "bias_backward",
        &dy.buf,
        &db.buf,
        outer,
        channels,
        inner,
    )
}

/// `y[o,c,i] += bias[c]`, arguments already checked.
pub(crate) fn add_unchecked(
    be: &WgpuBackend,
    op: &'static str,
    y: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    let n = outer * channels * inner;
    let params = Params::new().u(op, channels)?.u(op, inner)?.u(op, outer)?;
    be.elementwise(op, BIAS_ADD, params, &[bias, y], n)
}

/// `dbias[c] += Σ dy[o,c,i]`, arguments already checked.
pub(crate) fn backward_unchecked(
    be: &WgpuBackend,
    op: &'static str,
    dy: &wgpu::Buffer,
    dbias: &wgpu::Buffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    if outer == 0 || inner == 0 {
        return Ok(()); // an empty sum adds nothing
    }
    let params = Params::new()
        .u(op, outer * channels * inner)?
        .u(op, channels)?
        .u(op, inner)?
        .u(op, outer)?;
    // One workgroup per channel.
    be.gpu
        .dispatch(op, BIAS_BACKWARD, &params, &[dy, dbias], channels as u64)
}
