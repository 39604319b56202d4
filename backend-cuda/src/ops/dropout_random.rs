//! Philox fills and dropout (`kernels/dropout_random.cu`); the Philox helpers are in `kernels/common.cuh`.
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/dropout_random.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{Dropout, Result};

/// `y = x·keep/(1−p)`, mask from Philox `(seed, offset)`.
pub(crate) fn dropout_forward(
    dev: &Device,
    d: &Dropout,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("dropout_forward"))
}

/// `dx = dy·keep/(1−p)`, the mask regenerated.
pub(crate) fn dropout_backward(
    dev: &Device,
    d: &Dropout,
    dy: &CudaBuffer,
    dx: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("dropout_backward"))
}

/// Uniforms in [0, 1) from the top 24 bits of each word.
pub(crate) fn fill_uniform(
    dev: &Device,
    out: &mut CudaBuffer,
    seed: u64,
    offset: u64,
) -> Result<()> {
    Err(not_yet("fill_uniform"))
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
    Err(not_yet("fill_normal"))
}

/// `out[2i]`, `out[2i+1]` = high, low 16 bits of word `i` (`out.len()` even, checked).
pub(crate) fn philox_bits(
    dev: &Device,
    out: &mut CudaBuffer,
    seed: u64,
    offset: u64,
) -> Result<()> {
    Err(not_yet("philox_bits"))
}
