//! Bias over `[outer, channels, inner]` (`kernels/bias.cu`): `y += bias` broadcast, and
//! `dbias += Σ_{o,i} dy` (a column reduction when inner = 1, a plane reduction else).

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u32_dim, u64_of};
use crate::module_cache::Family;
use brain_core::Result;
use cudarc::driver::LaunchConfig;

/// `y[o,c,i] += bias[c]`.
pub(crate) fn bias_add(
    dev: &Device,
    y: &mut CudaBuffer,
    bias: &CudaBuffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    let _ = outer; // y.len() = outer·channels·inner: the kernel walks y
    let n = y.len();
    let (y, bias) = (dev.ptr_mut(y)?, dev.ptr(bias)?);
    if n == 0 {
        return Ok(());
    }
    let (len, channels, inner) = (u64_of(n), u64_of(channels), u64_of(inner));
    launch_kernel!(dev, Family::Bias, "bias_add_f32", launch::elementwise(n);
        y, bias, len, channels, inner)
}

/// `dbias[c] += Σ_{o,i} dy[o,c,i]`.
pub(crate) fn bias_backward(
    dev: &Device,
    dy: &CudaBuffer,
    dbias: &mut CudaBuffer,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    const OP: &str = "bias_backward";
    let (dy, dbias) = (dev.ptr(dy)?, dev.ptr_mut(dbias)?);
    if outer == 0 || channels == 0 || inner == 0 {
        return Ok(()); // nothing to add
    }
    if inner == 1 {
        let cfg = LaunchConfig {
            grid_dim: (u32_dim(OP, "channels / 32", channels.div_ceil(32))?, 1, 1),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let (rows, channels) = (u64_of(outer), u64_of(channels));
        launch_kernel!(dev, Family::Bias, "bias_backward_rows_f32", cfg; dy, dbias, rows, channels)
    } else {
        let cfg = launch::blocks(channels, launch::BLOCK);
        let (outer, channels, inner) = (u64_of(outer), u64_of(channels), u64_of(inner));
        launch_kernel!(dev, Family::Bias, "bias_backward_planes_f32", cfg;
            dy, dbias, outer, channels, inner)
    }
}
