//! Bias over the channel dim of `[outer, channels, inner]`: the add, and the gradient
//! sum (one workgroup per channel); both chunked past the storage binding limit.

use crate::gpu::{Kernel, Params, Part, Shader, READ_RW};
use crate::{WgpuBackend, WgpuBuffer, WG};
use brain_core::{check, BrainError, Result};

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

/// `y[o,c,i] += bias[c]`, arguments already checked. A `y` larger than one storage
/// binding is processed in element ranges (the chunk's offset gives the channel).
pub(crate) fn add_unchecked(
    be: &WgpuBackend,
    op: &'static str,
    y: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    let n = outer
        .checked_mul(channels)
        .and_then(|v| v.checked_mul(inner))
        .ok_or(BrainError::SizeOverflow { op })?;
    Params::new().u(op, n)?; // element indices of the whole tensor must fit 32 bits
    let parts = [Part::Whole(bias), Part::Rows(y, 1)];
    be.gpu.dispatch_rows(op, BIAS_ADD, &parts, n, |first, len| {
        let params = Params::new()
            .u(op, len)?
            .u(op, channels)?
            .u(op, inner)?
            .u(op, outer)?
            .u(op, first)?;
        Ok((params, (len as u64).div_ceil(WG)))
    })
}

/// `dbias[c] += Σ dy[o,c,i]`, arguments already checked. A `dy` larger than one
/// storage binding is summed in ranges of `outer` (each adds its share to dbias).
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
    let row = channels
        .checked_mul(inner)
        .ok_or(BrainError::SizeOverflow { op })?;
    let n = outer
        .checked_mul(row)
        .ok_or(BrainError::SizeOverflow { op })?;
    Params::new().u(op, n)?;
    let parts = [Part::Rows(dy, row), Part::Whole(dbias)];
    be.gpu
        .dispatch_rows(op, BIAS_BACKWARD, &parts, outer, |_, rows| {
            let params = Params::new()
                .u(op, rows * row)?
                .u(op, channels)?
                .u(op, inner)?
                .u(op, rows)?
                .u(op, 0)?;
            // One workgroup per channel.
            Ok((params, channels as u64))
        })
}
