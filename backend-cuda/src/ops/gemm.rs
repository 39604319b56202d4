//! GEMM through cuBLAS and the Linear layer on top of it.
//!
//! Not implemented yet: every function returns `BrainError::Unsupported`.
#![allow(unused_variables)]

use crate::device::{CudaBuffer, Device};
use crate::launch::not_yet;
use brain_core::{Gemm, Result};

/// `C = alpha·op(A)·op(B) + beta·C` for each matrix of the batch.
pub(crate) fn gemm(
    dev: &Device,
    g: &Gemm,
    a: &CudaBuffer,
    b: &CudaBuffer,
    c: &mut CudaBuffer,
) -> Result<()> {
    Err(not_yet("gemm"))
}

/// `y = x·Wᵀ + bias`.
pub(crate) fn linear_forward(
    dev: &Device,
    x: &CudaBuffer,
    weight: &CudaBuffer,
    bias: Option<&CudaBuffer>,
    y: &mut CudaBuffer,
    rows: usize,
    in_features: usize,
    out_features: usize,
) -> Result<()> {
    Err(not_yet("linear_forward"))
}

/// `dx = dy·W`, `dweight += dyᵀ·x`, `dbias += Σ_rows dy`.
pub(crate) fn linear_backward(
    dev: &Device,
    dy: &CudaBuffer,
    x: &CudaBuffer,
    weight: &CudaBuffer,
    dx: Option<&mut CudaBuffer>,
    dweight: Option<&mut CudaBuffer>,
    dbias: Option<&mut CudaBuffer>,
    rows: usize,
    in_features: usize,
    out_features: usize,
) -> Result<()> {
    Err(not_yet("linear_backward"))
}
