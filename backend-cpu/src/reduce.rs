//! Row reductions: sum, mean, max (NaN-propagating), logsumexp.
//!
//! Parallel over rows; when there are fewer rows than threads and rows are long,
//! each row is split into chunks whose partial results are combined instead.
//! Sums accumulate in f64 lanes and are rounded once.

use crate::par::{reduce8, sum_f64, sum_sq_f64, Exec, MIN_CHUNK_MEM};
use brain_core::ops::RowReduce;
use rayon::prelude::*;

/// (max ignoring NaN, whether a NaN was seen); a NaN anywhere makes the result NaN.
#[inline(always)]
fn max_partial(x: &[f32]) -> (f32, bool) {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut nan = [false; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            let v = c[l];
            nan[l] |= v.is_nan();
            m[l] = if v > m[l] { v } else { m[l] };
        }
    }
    let mut mm = f32::NEG_INFINITY;
    let mut any = nan.iter().any(|&b| b);
    for &v in m.iter().chain(it.remainder()) {
        any |= v.is_nan();
        if v > mm {
            mm = v;
        }
    }
    (mm, any)
}

#[inline(always)]
fn finish_max((m, nan): (f32, bool)) -> f32 {
    if nan {
        f32::NAN
    } else {
        m
    }
}

#[inline(always)]
fn combine_max(a: (f32, bool), b: (f32, bool)) -> (f32, bool) {
    (if b.0 > a.0 { b.0 } else { a.0 }, a.1 | b.1)
}

/// Σ exp(x − m) in f64 (exp in f32, as the reference's f32 path).
#[inline(always)]
fn sum_exp(x: &[f32], m: f32) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for l in 0..8 {
            acc[l] += (c[l] - m).exp() as f64;
        }
    }
    let mut t = 0f64;
    for &v in it.remainder() {
        t += (v - m).exp() as f64;
    }
    reduce8(acc) + t
}

/// One row, optionally split across the pool (`ex.par`).
fn reduce_row(ex: Exec, op: RowReduce, x: &[f32]) -> f32 {
    let chunk = ex.chunk(x.len(), MIN_CHUNK_MEM, 64);
    let split = ex.par && x.len() > chunk;
    let sum = |x: &[f32]| {
        if split {
            x.par_chunks(chunk).map(sum_f64).sum::<f64>()
        } else {
            sum_f64(x)
        }
    };
    let max = |x: &[f32]| {
        if split {
            x.par_chunks(chunk)
                .map(max_partial)
                .reduce(|| (f32::NEG_INFINITY, false), combine_max)
        } else {
            max_partial(x)
        }
    };
    match op {
        RowReduce::Sum => sum(x) as f32,
        RowReduce::SumSquares => {
            if split {
                x.par_chunks(chunk).map(sum_sq_f64).sum::<f64>() as f32
            } else {
                sum_sq_f64(x) as f32
            }
        }
        RowReduce::Mean => (sum(x) / x.len() as f64) as f32,
        RowReduce::Max => finish_max(max(x)),
        RowReduce::LogSumExp => {
            let m = finish_max(max(x));
            if m.is_infinite() {
                // all −∞ gives −∞; any +∞ gives +∞ (as the reference)
                return m;
            }
            let s = if split {
                x.par_chunks(chunk).map(|c| sum_exp(c, m)).sum::<f64>()
            } else {
                sum_exp(x, m)
            };
            (m as f64 + s.ln()) as f32
        }
    }
}

/// out[r] = reduce(x[r, :]).
pub fn reduce_rows(ex: Exec, op: RowReduce, out: &mut [f32], x: &[f32], rows: usize, cols: usize) {
    if rows == 0 {
        return;
    }
    if ex.par && rows >= ex.threads {
        out.par_iter_mut()
            .zip(x.par_chunks_exact(cols))
            .with_min_len(Exec::min_items(cols, MIN_CHUNK_MEM))
            .for_each(|(o, r)| *o = reduce_row(Exec::SEQ, op, r));
    } else {
        for (o, r) in out.iter_mut().zip(x.chunks_exact(cols)) {
            *o = reduce_row(ex, op, r);
        }
    }
}
