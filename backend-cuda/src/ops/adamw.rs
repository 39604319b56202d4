//! Fused multi-tensor AdamW (`kernels/adamw.cu`).
//!
//! The tensors go to the kernels as a table passed by value (kernel parameters, up to
//! [`TENSORS`] per launch), each block serving one [`CHUNK`] of one tensor, so a step
//! over a model costs a few launches however many tensors it has. With clipping (or
//! when the norm is wanted) the global gradient norm is computed on the device, in
//! f64 as backend-cpu does: per-chunk sums of squares into a scratch, one block for the
//! norm and the clip coefficient (and `grad_norm[0]`), then the update reads the
//! coefficient from device memory. Nothing waits for the device.

use super::norm::Scratch;
use crate::device::{CudaBuffer, Device};
use crate::launch::{launch_kernel, u32_dim, u64_of};
use crate::module_cache::Family;
use crate::CudaBackend;
use brain_core::ops::CLIP_NORM_EPS;
use brain_core::reference::adamw::AdamWScalars;
use brain_core::{AdamW, AdamWTensor, Result};
use cudarc::driver::{DeviceRepr, LaunchConfig};

const OP: &str = "adamw_step";
/// Tensors per launch (the kernels' `ADAMW_TENSORS`).
const TENSORS: usize = 48;
/// Elements per block (the kernels' `ADAMW_CHUNK`).
const CHUNK: usize = 4096;
/// Threads per block (the kernels' `ADAMW_THREADS`).
const THREADS: u32 = 256;

/// The kernels' `AdamwTable`, field for field.
#[repr(C)]
#[derive(Clone, Copy)]
struct Table {
    param: [u64; TENSORS],
    grad: [u64; TENSORS],
    exp_avg: [u64; TENSORS],
    exp_avg_sq: [u64; TENSORS],
    len: [u64; TENSORS],
    chunk_start: [u32; TENSORS + 1],
    count: u32,
}

// SAFETY: plain old data (integers only), `#[repr(C)]` with the layout of the C struct
// `AdamwTable` in kernels/adamw.cu: 5·48 u64 (offset 0, 8-aligned), then 49 + 1 u32;
// 2120 bytes, no padding on either side.
unsafe impl DeviceRepr for Table {}

const _: () = assert!(std::mem::size_of::<Table>() == 5 * 8 * TENSORS + 4 * (TENSORS + 2));

/// One tensor's device addresses and length.
#[derive(Clone, Copy)]
struct Tensor {
    param: u64,
    grad: u64,
    exp_avg: u64,
    exp_avg_sq: u64,
    len: usize,
}

/// One launch's table: up to [`TENSORS`] non-empty tensors, `blocks` chunks in all.
struct Launch {
    table: Table,
    blocks: u32,
}

/// Groups the non-empty tensors into launches.
fn launches(tensors: &[Tensor]) -> Result<Vec<Launch>> {
    let mut out = Vec::new();
    let nonempty: Vec<&Tensor> = tensors.iter().filter(|t| t.len > 0).collect();
    for group in nonempty.chunks(TENSORS) {
        let mut table = Table {
            param: [0; TENSORS],
            grad: [0; TENSORS],
            exp_avg: [0; TENSORS],
            exp_avg_sq: [0; TENSORS],
            len: [0; TENSORS],
            chunk_start: [0; TENSORS + 1],
            count: 0,
        };
        let mut blocks = 0usize;
        for (i, t) in group.iter().enumerate() {
            table.param[i] = t.param;
            table.grad[i] = t.grad;
            table.exp_avg[i] = t.exp_avg;
            table.exp_avg_sq[i] = t.exp_avg_sq;
            table.len[i] = u64_of(t.len);
            table.chunk_start[i] = u32_dim(OP, "chunks per launch", blocks)?;
            blocks += t.len.div_ceil(CHUNK);
        }
        // The grid of one launch: at most 2³¹ − 1 blocks.
        let blocks = u32_dim(OP, "chunks per launch", blocks)?;
        if blocks > i32::MAX as u32 {
            return Err(brain_core::BrainError::InvalidArgument {
                op: OP,
                reason: format!("{blocks} chunks exceed the CUDA grid limit"),
            });
        }
        table.chunk_start[group.len()] = blocks;
        table.count = group.len() as u32;
        out.push(Launch { table, blocks });
    }
    Ok(out)
}

fn grid(blocks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One AdamW step over all tensors; the global gradient norm (before clipping) into
/// `grad_norm[0]` when given, on the device.
pub(crate) fn adamw_step(
    dev: &Device,
    cfg: &AdamW,
    tensors: &mut [AdamWTensor<'_, CudaBackend>],
    grad_norm: Option<&mut CudaBuffer>,
) -> Result<()> {
    let mut list = Vec::with_capacity(tensors.len());
    for t in tensors.iter_mut() {
        list.push(Tensor {
            param: dev.ptr_mut(t.param)?,
            grad: dev.ptr(t.grad)?,
            exp_avg: dev.ptr_mut(t.exp_avg)?,
            exp_avg_sq: dev.ptr_mut(t.exp_avg_sq)?,
            len: t.param.len(),
        });
    }
    let grad_norm = match grad_norm {
        Some(b) => Some(dev.ptr_mut(b)?),
        None => None,
    };
    let groups = launches(&list)?;

    // Global norm and clip coefficient: stat = [norm, clip] on the device.
    let stat = if cfg.max_grad_norm.is_some() || grad_norm.is_some() {
        let total: usize = groups.iter().map(|l| l.blocks as usize).sum();
        // f64 partials, one per chunk (two f32 slots each).
        let partials = Scratch::new(dev, OP, 2 * total.max(1))?;
        let pp = partials.ptr(dev);
        let mut base = 0u64;
        for l in &groups {
            let table = l.table;
            launch_kernel!(dev, Family::Adamw, "adamw_sumsq_f32", grid(l.blocks);
                table, pp, base)?;
            base += u64::from(l.blocks);
        }
        let stat = Scratch::new(dev, OP, 2)?;
        let sp = stat.ptr(dev);
        let count = u64_of(total);
        let gn = grad_norm.unwrap_or(0);
        let (clip_on, max_norm) = match cfg.max_grad_norm {
            Some(c) => (1u32, c as f32),
            None => (0u32, 0.0f32),
        };
        let clip_eps = CLIP_NORM_EPS as f32;
        let one_block = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        launch_kernel!(dev, Family::Adamw, "adamw_finish_f32", one_block;
            pp, count, sp, gn, clip_on, max_norm, clip_eps)?;
        Some(stat)
    } else {
        None
    };

    // The update, reading the clip coefficient from stat[1] (null: no clipping).
    let sp = match (&stat, cfg.max_grad_norm) {
        (Some(s), Some(_)) => s.ptr(dev),
        _ => 0u64,
    };
    let s = AdamWScalars::<f32>::new(cfg);
    let (decay, step_size, inv_sqrt_bc2, eps, beta1, beta2) = (
        s.decay,
        s.step_size,
        s.inv_sqrt_bc2,
        s.eps,
        s.beta1,
        s.beta2,
    );
    // 1 − β in f32, as the reference's `one - s.beta1`.
    let (omb1, omb2) = (1.0f32 - beta1, 1.0f32 - beta2);
    for l in &groups {
        let table = l.table;
        launch_kernel!(dev, Family::Adamw, "adamw_update_f32", grid(l.blocks);
            table, sp, decay, step_size, inv_sqrt_bc2, eps, beta1, beta2, omb1, omb2)?;
    }
    // `stat` and the partials are freed in stream order, after the kernels using them.
    drop(stat);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(len: usize) -> Tensor {
        Tensor {
            param: 256,
            grad: 512,
            exp_avg: 768,
            exp_avg_sq: 1024,
            len,
        }
    }

    #[test]
    fn tensors_pack_into_launches_of_chunks() {
        let list: Vec<Tensor> = (0..100).map(|i| t(if i == 5 { 0 } else { 5000 })).collect();
        let l = launches(&list).expect("fits");
        // 99 non-empty tensors: 48 + 48 + 3, two chunks each.
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].table.count, 48);
        assert_eq!(l[2].table.count, 3);
        assert_eq!(l[0].blocks, 96);
        assert_eq!(&l[0].table.chunk_start[..3], &[0, 2, 4]);
        assert_eq!(l[0].table.chunk_start[48], 96);
        assert_eq!(l[2].blocks, 6);
        assert!(launches(&[t(0)]).expect("empty").is_empty());
    }
}
