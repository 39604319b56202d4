//! Element-wise kernels (`kernels/elementwise.cu`): add, scale, axpy. `fill` and
//! `copy` are memory operations of `src/device.rs`.

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::Result;

/// `out = a + b`.
pub(crate) fn add(
    dev: &Device,
    a: &CudaBuffer,
    b: &CudaBuffer,
    out: &mut CudaBuffer,
) -> Result<()> {
    let n = out.len();
    let (a, b, out) = (dev.ptr(a)?, dev.ptr(b)?, dev.ptr_mut(out)?);
    if n == 0 {
        return Ok(());
    }
    let len = u64_of(n);
    launch_kernel!(dev, Family::Elementwise, "add_f32", launch::elementwise(n); a, b, out, len)
}

/// `x ← alpha·x`.
pub(crate) fn scale(dev: &Device, x: &mut CudaBuffer, alpha: f64) -> Result<()> {
    let n = x.len();
    let x = dev.ptr_mut(x)?;
    if n == 0 {
        return Ok(());
    }
    let (alpha, len) = (alpha as f32, u64_of(n));
    launch_kernel!(dev, Family::Elementwise, "scale_f32", launch::elementwise(n); x, alpha, len)
}

/// `y ← alpha·x + y`.
pub(crate) fn axpy(dev: &Device, alpha: f64, x: &CudaBuffer, y: &mut CudaBuffer) -> Result<()> {
    let n = y.len();
    let (x, y) = (dev.ptr(x)?, dev.ptr_mut(y)?);
    if n == 0 {
        return Ok(());
    }
    let (alpha, len) = (alpha as f32, u64_of(n));
    launch_kernel!(dev, Family::Elementwise, "axpy_f32", launch::elementwise(n); alpha, x, y, len)
}
