//! Nearest and bilinear upsampling (`kernels/upsample.cu`).
//!
//! Forward: one thread per output (per four outputs, stored as a float4, when the
//! output rows allow it). Backward: one thread per input element gathers the outputs
//! that read it (bilinear: a window of about 2k + 2 outputs per axis, its column taps
//! computed once per thread when k ≤ 6), so it is deterministic (no atomics) and
//! overwrites `dx`. Every term is formed and added as the reference forms and adds it,
//! so both passes are bit-identical to brain-core's f32 reference. Index arithmetic is
//! 32-bit when the output has fewer than 2³¹ elements, 64-bit otherwise.

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::{Result, UpsampleMode, UpsampleShape};

/// Largest output length served by the 32-bit kernels: every index the kernels form
/// (including a tap window's end, at most twice the output length) fits in a u32.
const NARROW: usize = (1 << 31) - 1;

/// Largest factor whose bilinear tap windows fit the 16 cached columns of
/// `upsample_bilinear_backward_k6_f32`.
const CACHED_TAPS_MAX_FACTOR: usize = 6;

/// The kernel arguments shared by every upsample kernel.
struct Args {
    planes: u64,
    h: u64,
    w: u64,
    k: u64,
    /// 1/k rounded to f32, as the reference's `T::one() / T::from_f64(k)`.
    inv_k: f32,
    /// Output length (elements).
    out_len: usize,
}

impl Args {
    fn new(s: &UpsampleShape) -> Self {
        Args {
            planes: u64_of(s.batch * s.channels),
            h: u64_of(s.height),
            w: u64_of(s.width),
            k: u64_of(s.factor),
            inv_k: 1.0f32 / s.factor as f32,
            out_len: s.output_len(),
        }
    }

    fn narrow(&self) -> bool {
        self.out_len <= NARROW
    }
}

/// `[N,C,H,W] → [N,C,H·k,W·k]`.
pub(crate) fn upsample_forward(
    dev: &Device,
    mode: UpsampleMode,
    shape: &UpsampleShape,
    x: &CudaBuffer,
    y: &mut CudaBuffer,
) -> Result<()> {
    let (x, y) = (dev.ptr(x)?, dev.ptr_mut(y)?);
    let a = Args::new(shape);
    if a.out_len == 0 {
        return Ok(());
    }
    // float4 stores: whole groups of four outputs within a row, 16-byte aligned.
    let v4 = a.narrow() && (shape.width * shape.factor) % 4 == 0 && y % 16 == 0;
    let name = match (mode, a.narrow(), v4) {
        (UpsampleMode::Nearest, true, true) => "upsample_nearest_forward_v4_f32",
        (UpsampleMode::Nearest, true, false) => "upsample_nearest_forward_f32",
        (UpsampleMode::Nearest, false, _) => "upsample_nearest_forward_w_f32",
        (UpsampleMode::Bilinear, true, true) => "upsample_bilinear_forward_v4_f32",
        (UpsampleMode::Bilinear, true, false) => "upsample_bilinear_forward_f32",
        (UpsampleMode::Bilinear, false, _) => "upsample_bilinear_forward_w_f32",
    };
    let threads = if v4 { a.out_len / 4 } else { a.out_len };
    let cfg = launch::elementwise(threads);
    let Args {
        planes,
        h,
        w,
        k,
        inv_k,
        ..
    } = a;
    launch_kernel!(dev, Family::Upsample, name, cfg; x, y, planes, h, w, k, inv_k)
}

/// `dx` (overwritten) from `dy`.
pub(crate) fn upsample_backward(
    dev: &Device,
    mode: UpsampleMode,
    shape: &UpsampleShape,
    dy: &CudaBuffer,
    dx: &mut CudaBuffer,
) -> Result<()> {
    let n = dx.len();
    let (dy, dx) = (dev.ptr(dy)?, dev.ptr_mut(dx)?);
    let a = Args::new(shape);
    if n == 0 {
        return Ok(());
    }
    let name = match (mode, a.narrow()) {
        (UpsampleMode::Nearest, true) => "upsample_nearest_backward_f32",
        (UpsampleMode::Nearest, false) => "upsample_nearest_backward_w_f32",
        // Column taps cached in registers: every tap window has at most 16 columns.
        (UpsampleMode::Bilinear, true) if shape.factor <= CACHED_TAPS_MAX_FACTOR => {
            "upsample_bilinear_backward_k6_f32"
        }
        (UpsampleMode::Bilinear, true) => "upsample_bilinear_backward_f32",
        (UpsampleMode::Bilinear, false) => "upsample_bilinear_backward_w_f32",
    };
    let cfg = launch::elementwise(n);
    let Args {
        planes,
        h,
        w,
        k,
        inv_k,
        ..
    } = a;
    launch_kernel!(dev, Family::Upsample, name, cfg; dy, dx, planes, h, w, k, inv_k)
}
