//! Execution context and the small parallel helpers every kernel shares.
//!
//! A kernel receives an [`Exec`]: `par == false` means "run on the caller's thread,
//! touch no rayon API" (small problems, where waking the pool costs more than the
//! work); `par == true` means the kernel is already inside the backend's pool
//! (`ThreadPool::install`), so rayon's parallel iterators use exactly that pool.

use rayon::prelude::*;

/// Below this many elements, memory-bound kernels (add, copy, bias, …) run on the
/// caller's thread. Waking the pool costs ~10 µs; measured on a 2-core EPYC VM, axpy
/// through a 2-thread pool was 2.5× slower than on the caller at 64 Ki elements and
/// broke even at 256 Ki.
pub const SEQ_MEM: usize = 1 << 18;
/// The same for compute-bound element-wise kernels (erf/exp, Philox, sqrt): at
/// 2–5 ns per element, 16 Ki elements are worth more than the wake-up.
pub const SEQ_COMPUTE: usize = 1 << 14;
/// Smallest chunk handed to one task by a memory-bound kernel.
pub const MIN_CHUNK_MEM: usize = 1 << 14;
/// Smallest chunk handed to one task by a compute-bound kernel.
pub const MIN_CHUNK_COMPUTE: usize = 1 << 11;

/// How a kernel runs.
#[derive(Debug, Clone, Copy)]
pub struct Exec {
    /// Inside the pool with parallel iterators allowed.
    pub par: bool,
    /// Threads of the pool (1 when sequential).
    pub threads: usize,
}

impl Exec {
    /// Sequential execution on the caller's thread.
    pub const SEQ: Exec = Exec {
        par: false,
        threads: 1,
    };

    /// Chunk length for splitting `len` items: about four chunks per thread (load
    /// balance), at least `min`, a multiple of `align` (≥ 1).
    pub fn chunk(&self, len: usize, min: usize, align: usize) -> usize {
        let align = align.max(1);
        let target = len.div_ceil(self.threads.max(1) * 4).max(min).max(1);
        target.div_ceil(align) * align
    }

    /// Minimum number of items of `item_len` elements per task so a task holds at
    /// least `min_elems` elements.
    pub fn min_items(item_len: usize, min_elems: usize) -> usize {
        min_elems.div_ceil(item_len.max(1)).max(1)
    }
}

/// Run `f(start, chunk)` over consecutive chunks of `out` (in parallel when `ex.par`);
/// `start` is the index of the chunk's first element. Sequentially the whole slice is
/// one chunk.
pub fn for_chunks_mut<T, F>(ex: Exec, out: &mut [T], min_chunk: usize, align: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    let chunk = ex.chunk(out.len(), min_chunk, align);
    if ex.par && out.len() > chunk {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i * chunk, c));
    } else {
        f(0, out);
    }
}

/// Σ x accumulated in f64 over 8 independent lanes (vectorises; exact enough for
/// any length a kernel sees).
#[inline(always)]
pub fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] += c[l] as f64;
        }
    }
    let mut tail = 0f64;
    for &v in it.remainder() {
        tail += v as f64;
    }
    reduce8(acc) + tail
}

/// Σ (x − m)² in f64 over 8 lanes, with `m` in f64 (two-pass variance).
#[inline(always)]
pub fn sum_sq_dev_f64(x: &[f32], m: f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            let d = c[l] as f64 - m;
            acc[l] += d * d;
        }
    }
    let mut tail = 0f64;
    for &v in it.remainder() {
        let d = v as f64 - m;
        tail += d * d;
    }
    reduce8(acc) + tail
}

/// Σ x² in f64 over 8 lanes.
#[inline(always)]
pub fn sum_sq_f64(x: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            let v = c[l] as f64;
            acc[l] += v * v;
        }
    }
    let mut tail = 0f64;
    for &v in it.remainder() {
        let v = v as f64;
        tail += v * v;
    }
    reduce8(acc) + tail
}

/// Pairwise sum of 8 lanes.
#[inline(always)]
pub fn reduce8(a: [f64; 8]) -> f64 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// `acc[c] += x[c]` in f64 (one row of a column sum).
#[inline(always)]
pub fn add_row_f64(acc: &mut [f64], x: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v as f64;
    }
}

/// Column sums of `x[rows, cols]` (in f64), parallel over blocks of rows with one
/// partial per task, reduced at the end.
pub fn column_sums(ex: Exec, x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    if cols == 0 || rows == 0 {
        return vec![0.0; cols];
    }
    let x = &x[..rows * cols];
    if !ex.par {
        let mut acc = vec![0.0; cols];
        for row in x.chunks_exact(cols) {
            add_row_f64(&mut acc, row);
        }
        return acc;
    }
    let min_rows = Exec::min_items(cols, MIN_CHUNK_MEM);
    x.par_chunks_exact(cols)
        .with_min_len(min_rows)
        .fold(
            || vec![0.0f64; cols],
            |mut acc, row| {
                add_row_f64(&mut acc, row);
                acc
            },
        )
        .reduce_with(|mut a, b| {
            for (a, b) in a.iter_mut().zip(&b) {
                *a += b;
            }
            a
        })
        .unwrap_or_else(|| vec![0.0; cols])
}
