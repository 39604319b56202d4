//! Activations (`kernels/activation.cu`): GELU (erf and tanh forms) and SiLU, forward
//! and backward, one kernel each.

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::{Activation, Result};

fn kernel(act: Activation, forward: bool) -> &'static str {
    match (act, forward) {
        (Activation::GeluErf, true) => "gelu_erf_forward_f32",
        (Activation::GeluErf, false) => "gelu_erf_backward_f32",
        (Activation::GeluTanh, true) => "gelu_tanh_forward_f32",
        (Activation::GeluTanh, false) => "gelu_tanh_backward_f32",
        (Activation::Silu, true) => "silu_forward_f32",
        (Activation::Silu, false) => "silu_backward_f32",
    }
}

/// `y = f(x)`.
pub(crate) fn activation_forward(
    dev: &Device,
    act: Activation,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
) -> Result<()> {
    let n = y.len();
    let (x, y) = (dev.ptr(x)?, dev.ptr_mut(y)?);
    if n == 0 {
        return Ok(());
    }
    let len = u64_of(n);
    launch_kernel!(dev, Family::Activation, kernel(act, true), launch::elementwise(n); x, y, len)
}

/// `dx = dy·f'(x)`.
pub(crate) fn activation_backward(
    dev: &Device,
    act: Activation,
    x: &CudaBuffer,
    dy: &CudaBuffer,
    dx: &mut CudaBuffer,
) -> Result<()> {
    let n = dx.len();
    let (x, dy, dx) = (dev.ptr(x)?, dev.ptr(dy)?, dev.ptr_mut(dx)?);
    if n == 0 {
        return Ok(());
    }
    let len = u64_of(n);
    launch_kernel!(dev, Family::Activation, kernel(act, false), launch::elementwise(n);
        x, dy, dx, len)
}
