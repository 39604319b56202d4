//! Philox fills and dropout (`kernels/dropout_random.cu`); the Philox helpers are in
//! `kernels/common.cuh`.
//!
//! Each kernel thread computes one Philox block (four words) and makes the elements of
//! those words: four uniforms, four normals (two Box–Muller pairs), eight 16-bit halves,
//! or four dropout factors. The words are those of `brain_core::philox` bit for bit, so
//! the uniforms, the halves and the dropout masks equal the reference's exactly.

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::{Dropout, Result};

/// Threads per block of the Philox kernels.
const THREADS: u32 = 256;

/// 1 when every address is 16-byte aligned (float4 accesses allowed), else 0.
fn vec4(ptrs: &[u64]) -> u32 {
    u32::from(ptrs.iter().all(|p| p % 16 == 0))
}

/// The launch of a kernel over `groups` Philox blocks.
fn cfg(groups: usize) -> cudarc::driver::LaunchConfig {
    launch::grid_1d(groups, THREADS)
}

/// `y = x·keep/(1−p)`, mask from Philox `(seed, offset)`.
pub(crate) fn dropout_forward(
    dev: &Device,
    d: &Dropout,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
) -> Result<()> {
    dropout(dev, d, x, y)
}

/// `dx = dy·keep/(1−p)`, the mask regenerated.
pub(crate) fn dropout_backward(
    dev: &Device,
    d: &Dropout,
    dy: &CudaBuffer,
    dx: &mut CudaBuffer,
) -> Result<()> {
    dropout(dev, d, dy, dx)
}

/// `out[i] = inp[i]·(keep_i ? 1/(1−p) : 0)`: the reference's forward, which is also its
/// backward (same mask).
fn dropout(dev: &Device, d: &Dropout, inp: &CudaBuffer, out: &mut CudaBuffer) -> Result<()> {
    let n = out.len();
    let (x, y) = (dev.ptr(inp)?, dev.ptr_mut(out)?);
    if n == 0 {
        return Ok(());
    }
    // Both as the reference: the threshold on the 24-bit integer, and 1/(1−p) in f64
    // rounded once.
    let threshold = d.threshold();
    let scale = d.keep_scale() as f32;
    let (len, seed, offset, vec) = (u64_of(n), d.seed, d.offset, vec4(&[x, y]));
    launch_kernel!(dev, Family::DropoutRandom, "dropout_f32", cfg(n.div_ceil(4));
        x, y, len, seed, offset, threshold, scale, vec)
}

/// Uniforms in [0, 1) from the top 24 bits of each word.
pub(crate) fn fill_uniform(
    dev: &Device,
    out: &mut CudaBuffer,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let n = out.len();
    let out = dev.ptr_mut(out)?;
    if n == 0 {
        return Ok(());
    }
    let (len, vec) = (u64_of(n), vec4(&[out]));
    launch_kernel!(dev, Family::DropoutRandom, "fill_uniform_f32", cfg(n.div_ceil(4));
        out, len, seed, offset, vec)
}

/// `mean + std·z`, Box–Muller on word pairs.
pub(crate) fn fill_normal(
    dev: &Device,
    out: &mut CudaBuffer,
    seed: u64,
    offset: u64,
    mean: f64,
    std: f64,
) -> Result<()> {
    let n = out.len();
    let out = dev.ptr_mut(out)?;
    if n == 0 {
        return Ok(());
    }
    let (len, mean, std, vec) = (u64_of(n), mean as f32, std as f32, vec4(&[out]));
    launch_kernel!(dev, Family::DropoutRandom, "fill_normal_f32", cfg(n.div_ceil(4));
        out, len, seed, offset, mean, std, vec)
}

/// `out[2i]`, `out[2i+1]` = high, low 16 bits of word `i` (`out.len()` even, checked).
pub(crate) fn philox_bits(
    dev: &Device,
    out: &mut CudaBuffer,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let n = out.len();
    let out = dev.ptr_mut(out)?;
    if n == 0 {
        return Ok(());
    }
    let (len, vec) = (u64_of(n), vec4(&[out]));
    launch_kernel!(dev, Family::DropoutRandom, "philox_bits_f32", cfg(n.div_ceil(8));
        out, len, seed, offset, vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float4_only_on_aligned_addresses() {
        assert_eq!(vec4(&[0, 256, 4096]), 1);
        assert_eq!(vec4(&[256, 260]), 0);
        assert_eq!(vec4(&[]), 1);
    }
}
