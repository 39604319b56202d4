//! Integer-factor upsampling on NCHW (nearest, and bilinear with align_corners =
//! false): the forward one invocation per output element, the backward one per input
//! element gathering the outputs that read it, so it is deterministic without atomics.

use crate::gpu::{Kernel, Params, Shader, READ_RW};
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::{check, Result, UpsampleMode, UpsampleShape};

static SHADER: Shader = shader!("upsample.wgsl");
const NEAREST_FORWARD: Kernel = Kernel::new(&SHADER, "nearest_forward", READ_RW);
const BILINEAR_FORWARD: Kernel = Kernel::new(&SHADER, "bilinear_forward", READ_RW);
const NEAREST_BACKWARD: Kernel = Kernel::new(&SHADER, "nearest_backward", READ_RW);
const BILINEAR_BACKWARD: Kernel = Kernel::new(&SHADER, "bilinear_backward", READ_RW);

/// The shape's words after `n` (see `struct Params` in upsample.wgsl); every index the
/// kernels form is below the output length, which must fit in 32 bits.
fn params(op: &'static str, s: &UpsampleShape) -> Result<Params> {
    // The output's length (and so every index) in 32 bits; (H + 2)·k and (W + 2)·k
    // bound the backward's loop ranges.
    Params::new()
        .u(op, s.output_len())?
        .u(op, s.height.saturating_add(2).saturating_mul(s.factor))?
        .u(op, s.width.saturating_add(2).saturating_mul(s.factor))?;
    Ok(Params::new()
        .u(op, s.height)?
        .u(op, s.width)?
        .u(op, s.factor)?
        .f(1.0 / s.factor as f64))
}

/// `y[N,C,H·k,W·k]` from `x[N,C,H,W]`.
pub(crate) fn upsample_forward(
    be: &WgpuBackend,
    mode: UpsampleMode,
    shape: &UpsampleShape,
    x: &WgpuBuffer,
    y: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "upsample_forward";
    check::upsample(OP, x.len, y.len, shape)?;
    let kernel = match mode {
        UpsampleMode::Nearest => NEAREST_FORWARD,
        UpsampleMode::Bilinear => BILINEAR_FORWARD,
    };
    if y.len == 0 {
        return Ok(());
    }
    let params = params(OP, shape)?;
    be.elementwise(OP, kernel, params, &[&x.buf, &y.buf], y.len)
}

/// `dx[N,C,H,W]` (overwritten) from `dy[N,C,H·k,W·k]`.
pub(crate) fn upsample_backward(
    be: &WgpuBackend,
    mode: UpsampleMode,
    shape: &UpsampleShape,
    dy: &WgpuBuffer,
    dx: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "upsample_backward";
    check::upsample(OP, dx.len, dy.len, shape)?;
    let kernel = match mode {
        UpsampleMode::Nearest => NEAREST_BACKWARD,
        UpsampleMode::Bilinear => BILINEAR_BACKWARD,
    };
    if dx.len == 0 {
        return Ok(());
    }
    let params = params(OP, shape)?;
    be.elementwise(OP, kernel, params, &[&dy.buf, &dx.buf], dx.len)
}
