//! Sobel and the Sobel loss on NCHW (`kernels/sobel.cu`).
//!
//! Every kernel works on 32 × 32 output tiles of one plane per 256-thread block
//! (grid-stride over the tiles of all planes), staged in shared memory with a zero
//! halo that is the zero padding:
//! - `sobel_forward`: one pass, x in, gx, gy, magnitude out.
//! - `sobel_backward`: one pass; the effective gradients D = dg + (dmag/|g|)·g of the
//!   tile and its ring are formed in shared memory (from an x tile with halo 2 when
//!   dmagnitude is given), then gathered as dx = −(Sx(Dx) + Sy(Dy)). Without any
//!   output gradient dx is filled with zeros.
//! - `sobel_loss_forward`: the per-pixel terms summed per thread, per block (tree),
//!   then over the blocks' partials by one block that divides by N into the
//!   1-element loss (a single block writes it directly). The block count depends on
//!   the shape only, so the result is deterministic.
//! - `sobel_loss_backward`: one pass; the loss's effective gradients from pred and
//!   target tiles with halo 2, gathered and accumulated onto dpred and dtarget.

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u64_of};
use crate::module_cache::Family;
use brain_core::ops::SOBEL_EPS;
use brain_core::{BrainError, ImageShape, Result, SobelLossForm};
use cudarc::driver::LaunchConfig;

/// Output tile (`SOBEL_TW`, `SOBEL_TH` in `kernels/sobel.cu`).
const TILE_W: usize = 32;
const TILE_H: usize = 32;
/// Threads per block (`SOBEL_THREADS`).
const THREADS: u32 = 256;
/// Most blocks of the loss's first pass (each leaves one partial sum).
const LOSS_BLOCKS: usize = 2048;
/// Threads of the block that sums the partials.
const FINISH_THREADS: u32 = 1024;
/// Largest height or width: the kernels index rows and columns with `int`, tiles
/// rounded up included.
const MAX_DIM: usize = (i32::MAX as usize) - 2 * TILE_W;

/// ε of the magnitude, rounded once to f32.
const EPS: f32 = SOBEL_EPS as f32;

/// The tiles of a shape, as the kernels take them.
struct Tiling {
    tiles: u64,
    tiles_x: u32,
    tiles_y: u32,
    h: i32,
    w: i32,
    /// Number of tiles (a usize, for grid sizes).
    count: usize,
}

impl Tiling {
    /// `None` for an empty image.
    fn new(op: &'static str, s: &ImageShape) -> Result<Option<Tiling>> {
        // (not `s.is_empty()`: N·C·H·W may overflow before the checks below)
        if [s.batch, s.channels, s.height, s.width].contains(&0) {
            return Ok(None);
        }
        for (what, v) in [("height", s.height), ("width", s.width)] {
            if v > MAX_DIM {
                return Err(BrainError::InvalidArgument {
                    op,
                    reason: format!("{what} = {v} exceeds the CUDA kernels' limit {MAX_DIM}"),
                });
            }
        }
        let (tx, ty) = (s.width.div_ceil(TILE_W), s.height.div_ceil(TILE_H));
        let count = s
            .batch
            .checked_mul(s.channels)
            .and_then(|p| p.checked_mul(tx))
            .and_then(|p| p.checked_mul(ty))
            .ok_or(BrainError::SizeOverflow { op })?;
        // tx·ty must fit the kernels' u32 tile index within a plane
        let per_plane = tx.checked_mul(ty).filter(|&v| v <= u32::MAX as usize);
        if per_plane.is_none() {
            return Err(BrainError::InvalidArgument {
                op,
                reason: format!(
                    "a {}×{} plane has more than 2^32 tiles of {TILE_H}×{TILE_W}",
                    s.height, s.width
                ),
            });
        }
        Ok(Some(Tiling {
            tiles: u64_of(count),
            tiles_x: tx as u32,
            tiles_y: ty as u32,
            h: s.height as i32,
            w: s.width as i32,
            count,
        }))
    }

    /// One block per tile, at most [`launch::MAX_GRID`] (blocks loop over tiles).
    fn config(&self) -> LaunchConfig {
        launch::blocks(self.count, THREADS)
    }
}

/// gx, gy and √(gx² + gy² + 1e-6), zero padding 1.
pub(crate) fn sobel_forward(
    dev: &Device,
    x: &CudaBuffer,
    shape: &ImageShape,
    gx: &mut CudaBuffer,
    gy: &mut CudaBuffer,
    magnitude: &mut CudaBuffer,
) -> Result<()> {
    const OP: &str = "sobel_forward";
    let (x, gx, gy, mag) = (
        dev.ptr(x)?,
        dev.ptr_mut(gx)?,
        dev.ptr_mut(gy)?,
        dev.ptr_mut(magnitude)?,
    );
    let Some(t) = Tiling::new(OP, shape)? else {
        return Ok(());
    };
    let (tiles, tiles_x, tiles_y, h, w, eps) = (t.tiles, t.tiles_x, t.tiles_y, t.h, t.w, EPS);
    launch_kernel!(dev, Family::Sobel, "sobel_forward_f32", t.config();
        x, gx, gy, mag, tiles, tiles_x, tiles_y, h, w, eps)
}

/// `dx` (overwritten) from any of the output gradients.
pub(crate) fn sobel_backward(
    dev: &Device,
    x: &CudaBuffer,
    shape: &ImageShape,
    dgx: Option<&CudaBuffer>,
    dgy: Option<&CudaBuffer>,
    dmagnitude: Option<&CudaBuffer>,
    dx: &mut CudaBuffer,
) -> Result<()> {
    const OP: &str = "sobel_backward";
    let opt = |b: Option<&CudaBuffer>| b.map_or(Ok(0), |b| dev.ptr(b));
    let (xp, dgxp, dgyp, dmp) = (dev.ptr(x)?, opt(dgx)?, opt(dgy)?, opt(dmagnitude)?);
    let Some(t) = Tiling::new(OP, shape)? else {
        return dev.ptr_mut(dx).map(|_| ());
    };
    if dgx.is_none() && dgy.is_none() && dmagnitude.is_none() {
        return dev.fill(dx, 0.0); // no gradient flows back
    }
    let dxp = dev.ptr_mut(dx)?;
    let mut use_ = 0u32;
    if dgx.is_some() {
        use_ |= 1;
    }
    if dgy.is_some() {
        use_ |= 2;
    }
    let name = if dmagnitude.is_some() {
        "sobel_backward_dm_f32"
    } else {
        "sobel_backward_f32"
    };
    let (tiles, tiles_x, tiles_y, h, w, eps) = (t.tiles, t.tiles_x, t.tiles_y, t.h, t.w, EPS);
    launch_kernel!(dev, Family::Sobel, name, t.config();
        xp, dgxp, dgyp, dmp, dxp, tiles, tiles_x, tiles_y, h, w, eps, use_)
}

/// Fused Sobel loss between `pred` and `target`.
pub(crate) fn sobel_loss_forward(
    dev: &Device,
    pred: &CudaBuffer,
    target: &CudaBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    loss: &mut CudaBuffer,
) -> Result<()> {
    const OP: &str = "sobel_loss_forward";
    let (pred, target, loss) = (dev.ptr(pred)?, dev.ptr(target)?, dev.ptr_mut(loss)?);
    // the check rejects an empty image (the mean is undefined)
    let Some(t) = Tiling::new(OP, shape)? else {
        return Err(BrainError::Backend(format!(
            "cuda: {OP}: empty image after the checks (a bug in backend-cuda)"
        )));
    };
    let n = shape.len() as f32;
    let blocks = t.count.min(LOSS_BLOCKS);
    let name = match form {
        SobelLossForm::Magnitude => "sobel_loss_terms_magnitude_f32",
        SobelLossForm::Components => "sobel_loss_terms_components_f32",
    };
    let cfg = launch::blocks(blocks, THREADS);
    let (tiles, tiles_x, tiles_y, h, w, eps) = (t.tiles, t.tiles_x, t.tiles_y, t.h, t.w, EPS);
    if blocks == 1 {
        let partials = 0u64; // the single block writes the loss
        return launch_kernel!(dev, Family::Sobel, name, cfg;
            pred, target, partials, loss, tiles, tiles_x, tiles_y, h, w, eps, n);
    }
    let mut parts = dev.alloc_zeros(blocks)?;
    let partials = dev.ptr_mut(&mut parts)?;
    launch_kernel!(dev, Family::Sobel, name, cfg;
        pred, target, partials, loss, tiles, tiles_x, tiles_y, h, w, eps, n)?;
    let count = blocks as u32; // ≤ LOSS_BLOCKS
    let finish = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (FINISH_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    launch_kernel!(dev, Family::Sobel, "sobel_loss_finish_f32", finish;
        partials, loss, count, n)
    // `parts` is freed here, in stream order after the launch that reads it
}

/// `dpred`, `dtarget` accumulated with the gradient of `scale·loss`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sobel_loss_backward(
    dev: &Device,
    pred: &CudaBuffer,
    target: &CudaBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    scale: f64,
    dpred: Option<&mut CudaBuffer>,
    dtarget: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "sobel_loss_backward";
    let (pred, target) = (dev.ptr(pred)?, dev.ptr(target)?);
    let mut want = 0u32;
    let dpred = match dpred {
        Some(b) => {
            want |= 1;
            dev.ptr_mut(b)?
        }
        None => 0,
    };
    let dtarget = match dtarget {
        Some(b) => {
            want |= 2;
            dev.ptr_mut(b)?
        }
        None => 0,
    };
    let Some(t) = Tiling::new(OP, shape)? else {
        return Ok(());
    };
    if want == 0 {
        return Ok(());
    }
    // c = 2·scale/N in f64, rounded once
    let c = (2.0 * scale / shape.len() as f64) as f32;
    let name = match form {
        SobelLossForm::Magnitude => "sobel_loss_backward_magnitude_f32",
        SobelLossForm::Components => "sobel_loss_backward_components_f32",
    };
    let (tiles, tiles_x, tiles_y, h, w, eps) = (t.tiles, t.tiles_x, t.tiles_y, t.h, t.w, EPS);
    launch_kernel!(dev, Family::Sobel, name, t.config();
        pred, target, dpred, dtarget, tiles, tiles_x, tiles_y, h, w, eps, c, want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(batch: usize, channels: usize, height: usize, width: usize) -> ImageShape {
        ImageShape {
            batch,
            channels,
            height,
            width,
        }
    }

    #[test]
    fn tiling_covers_the_planes() {
        let t = Tiling::new("t", &shape(2, 3, 33, 65)).unwrap().unwrap();
        assert_eq!(
            (t.tiles_x, t.tiles_y, t.tiles, t.h, t.w),
            (3, 2, 36, 33, 65)
        );
        assert!(Tiling::new("t", &shape(2, 0, 5, 5)).unwrap().is_none());
        assert!(matches!(
            Tiling::new("t", &shape(1, 1, 1, usize::MAX)),
            Err(BrainError::InvalidArgument { .. })
        ));
        assert!(matches!(
            Tiling::new("t", &shape(usize::MAX, 2, 1, 1)),
            Err(BrainError::SizeOverflow { .. })
        ));
    }
}
