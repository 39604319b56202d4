//! Mean squared error: one fused pass, parallel over chunks.
//!
//! Forward: Σ(a − b)² in f64 lanes per chunk, chunk partials summed in f64, divided
//! by N and rounded once. Backward: one pass writing both `da += c·(a − b)` and
//! `db −= c·(a − b)`, c = 2·scale/N rounded to f32 once.

use crate::par::{reduce8, Exec, MIN_CHUNK_MEM, SEQ_MEM};
use crate::{CpuBackend, CpuBuffer};
use brain_core::{check, Result};
use rayon::prelude::*;

/// Σ (a − b)² in f64 over 8 lanes.
#[inline(always)]
fn sum_sq_diff_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut ia = a.chunks_exact(8);
    let mut ib = b.chunks_exact(8);
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for l in 0..8 {
            let d = (ca[l] - cb[l]) as f64;
            acc[l] += d * d;
        }
    }
    let mut tail = 0f64;
    for (&x, &y) in ia.remainder().iter().zip(ib.remainder()) {
        let d = (x - y) as f64;
        tail += d * d;
    }
    reduce8(acc) + tail
}

/// Σ (a − b)² over the whole slices, parallel over chunks when `ex.par`.
fn sum_sq_diff(ex: Exec, a: &[f32], b: &[f32]) -> f64 {
    let chunk = ex.chunk(a.len(), MIN_CHUNK_MEM, 64);
    if ex.par && a.len() > chunk {
        a.par_chunks(chunk)
            .zip(b.par_chunks(chunk))
            .map(|(a, b)| sum_sq_diff_f64(a, b))
            .sum()
    } else {
        sum_sq_diff_f64(a, b)
    }
}

/// `Backend::mse_forward` on the CPU.
pub(crate) fn mse_forward(
    be: &CpuBackend,
    a: &CpuBuffer,
    b: &CpuBuffer,
    loss: &mut CpuBuffer,
) -> Result<()> {
    check::mse_forward(a.len(), b.len(), loss.len())?;
    let (a, b) = (a.as_slice(), b.as_slice());
    let s = be.exec(a.len(), SEQ_MEM, |ex| sum_sq_diff(ex, a, b));
    loss.as_mut_slice()[0] = (s / a.len() as f64) as f32;
    Ok(())
}

/// da += c·(a − b), db −= c·(a − b) on one chunk (either may be absent).
#[inline(always)]
fn backward_chunk(a: &[f32], b: &[f32], c: f32, da: Option<&mut [f32]>, db: Option<&mut [f32]>) {
    match (da, db) {
        (Some(da), Some(db)) => {
            for (((da, db), &x), &y) in da.iter_mut().zip(db.iter_mut()).zip(a).zip(b) {
                let g = c * (x - y);
                *da += g;
                *db -= g;
            }
        }
        (Some(da), None) => {
            for ((da, &x), &y) in da.iter_mut().zip(a).zip(b) {
                *da += c * (x - y);
            }
        }
        (None, Some(db)) => {
            for ((db, &x), &y) in db.iter_mut().zip(a).zip(b) {
                *db -= c * (x - y);
            }
        }
        (None, None) => {}
    }
}

/// `Backend::mse_backward` on the CPU.
pub(crate) fn mse_backward(
    be: &CpuBackend,
    a: &CpuBuffer,
    b: &CpuBuffer,
    scale: f64,
    da: Option<&mut CpuBuffer>,
    db: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::mse_backward(
        a.len(),
        b.len(),
        scale,
        da.as_deref().map(CpuBuffer::len),
        db.as_deref().map(CpuBuffer::len),
    )?;
    let (a, b) = (a.as_slice(), b.as_slice());
    let n = a.len();
    let c = (2.0 * scale / n as f64) as f32;
    let da = da.map(CpuBuffer::as_mut_slice);
    let db = db.map(CpuBuffer::as_mut_slice);
    if da.is_none() && db.is_none() {
        return Ok(());
    }
    be.exec(n, SEQ_MEM, |ex| {
        let chunk = ex.chunk(n, MIN_CHUNK_MEM, 64);
        if !ex.par || n <= chunk {
            backward_chunk(a, b, c, da, db);
            return;
        }
        let ab = a.par_chunks(chunk).zip(b.par_chunks(chunk));
        match (da, db) {
            (Some(da), Some(db)) => ab
                .zip(da.par_chunks_mut(chunk).zip(db.par_chunks_mut(chunk)))
                .for_each(|((a, b), (da, db))| backward_chunk(a, b, c, Some(da), Some(db))),
            (Some(da), None) => ab
                .zip(da.par_chunks_mut(chunk))
                .for_each(|((a, b), da)| backward_chunk(a, b, c, Some(da), None)),
            (None, Some(db)) => ab
                .zip(db.par_chunks_mut(chunk))
                .for_each(|((a, b), db)| backward_chunk(a, b, c, None, Some(db))),
            (None, None) => {}
        }
    });
    Ok(())
}
