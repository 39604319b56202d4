//! Linear CKA on Gram matrices (`kernels/cka.cu`).
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`. To
//! implement: write the kernels in `kernels/cka.cu`, launch them here with
//! `launch_kernel!` (see `ops/elementwise.rs` for the pattern and `ops/mod.rs` for
//! the contract), remove the `allow` below.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{HsicEstimator, Result};

/// `out[0] = 1 − CKA`; with 4 elements also the three HSIC values.
pub(crate) fn cka_grams_forward(
    dev: &Device,
    k: &CudaBuffer,
    l: &CudaBuffer,
    n: usize,
    estimator: HsicEstimator,
    out: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("cka_grams_forward"))
}

/// Gradient of `scale·(1 − CKA)` w.r.t. K and L, symmetrised, overwritten.
pub(crate) fn cka_grams_backward(
    dev: &Device,
    k: &CudaBuffer,
    l: &CudaBuffer,
    n: usize,
    estimator: HsicEstimator,
    scale: f64,
    dk: Option<&mut CudaBuffer>,
    dl: Option<&mut CudaBuffer>,
) -> Result<()> {
    Err(not_yet("cka_grams_backward"))
}
