//! Element-wise kernels (`kernels/elementwise.cu`): add, scale, axpy, and the β·C
//! pass GEMM needs when k = 0. `fill` and `copy` are memory operations of
//! `src/device.rs`.

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

/// `C_b ← beta·C_b` for `batch` matrices of `mn` elements, `stride` apart, at device
/// address `c` (beta = 0 writes zeros). The whole of a GEMM with k = 0.
pub(crate) fn scale_matrices(
    dev: &Device,
    c: u64,
    beta: f32,
    mn: usize,
    stride: usize,
    batch: usize,
) -> Result<()> {
    let total = mn.saturating_mul(batch);
    if total == 0 || beta == 1.0 {
        return Ok(());
    }
    let (mn, stride, batch) = (u64_of(mn), u64_of(stride), u64_of(batch));
    launch_kernel!(dev, Family::Elementwise, "gemm_scale_c_f32", launch::elementwise(total);
        c, beta, mn, stride, batch)
}
