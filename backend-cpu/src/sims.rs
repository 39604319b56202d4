//! The Sims token loss: cosine self-similarity profiles against the first token.
//!
//! Forward, one fused pass: per pair (b, j ≥ 1) one sweep over the four rows A[b,0],
//! A[b,j], B[b,0], B[b,j] gathers A₀·Aⱼ, ‖Aⱼ‖², B₀·Bⱼ, ‖Bⱼ‖² (f32 lanes flushed to f64
//! every 256 elements), token-0 norms are taken once per batch row beforehand, and
//! the pairs run in parallel with their (s_A − s_B)² summed in f64.
//!
//! Backward, parallel over batch rows and, inside each, over chunks of token rows:
//! per pair the same sweep gives s_A, s_B and g = 2·scale·(s_A − s_B)/(batch·(tokens−1)),
//! then a second sweep over the (L1-resident) rows writes
//! `dAⱼ += g/(m₀mⱼ)·A₀ − g·s_A/mⱼ²·Aⱼ` and gathers the token-0 term
//! Σⱼ g/(m₀mⱼ)·Aⱼ in a per-task f64 vector; chunk partials are reduced once and added
//! to dA₀ together with −(Σⱼ g·s_A)/m₀²·A₀ (likewise for B with −g). m = max(‖·‖, 1e-8);
//! a clamped norm passes no gradient. Token rows leave DRAM once: the second sweep
//! reads them from L1, and software prefetch keeps DRAM busy across the two phases.

use crate::par::{sum_sq_f64, Exec};
use crate::{CpuBackend, CpuBuffer};
use brain_core::{check, Result};
use rayon::prelude::*;

/// Norm clamp (as the reference).
const EPS: f64 = 1e-8;
/// Below this many input elements (per tensor) the kernels stay on the caller's thread.
const SEQ_SIMS: usize = 1 << 15;
/// Elements summed in f32 lanes before flushing into f64.
const BLOCK: usize = 256;
/// Smallest number of elements per parallel task.
const MIN_TASK: usize = 1 << 13;

/// [A₀·Aⱼ, Aⱼ·Aⱼ, B₀·Bⱼ, Bⱼ·Bⱼ] over rows of equal length: AVX2 + FMA where the CPU
/// has them, portable lanes otherwise. `pf`: rows the caller reads next, prefetched
/// during the sweep (may be empty).
#[inline(always)]
fn dots4(a0: &[f32], aj: &[f32], b0: &[f32], bj: &[f32], pf: [&[f32]; 2]) -> [f64; 4] {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        let n = a0.len();
        let (aj, b0, bj) = (&aj[..n], &b0[..n], &bj[..n]);
        // SAFETY: AVX2 and FMA are present; all four rows hold n elements.
        return unsafe { x86::dots4(a0, aj, b0, bj, pf) };
    }
    let _ = pf;
    dots4_portable(a0, aj, b0, bj)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::BLOCK;
    use core::arch::x86_64::*;

    /// Sum of 8 lanes in f64.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum_f64(v: __m256) -> f64 {
        let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
        let s = _mm256_add_pd(lo, hi);
        let mut out = [0f64; 4];
        _mm256_storeu_pd(out.as_mut_ptr(), s);
        (out[0] + out[1]) + (out[2] + out[3])
    }

    /// `update`: callers guarantee `v`, `x0`, `xj` hold `dx.len()` elements.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn update(
        dx: &mut [f32],
        v: &mut [f64],
        x0: &[f32],
        xj: &[f32],
        p: f64,
        q: f64,
        pf: &[f32],
    ) {
        let n = dx.len();
        let (ppf, npf) = (pf.as_ptr(), pf.len());
        let (pd, pv, p0, pj) = (dx.as_mut_ptr(), v.as_mut_ptr(), x0.as_ptr(), xj.as_ptr());
        let (pf, qf) = (_mm256_set1_ps(p as f32), _mm256_set1_ps(q as f32));
        let p64 = _mm256_set1_pd(p);
        let mut i = 0;
        while i + 8 <= n {
            if i < npf {
                _mm_prefetch::<_MM_HINT_T0>(ppf.add(i) as *const i8);
            }
            let u0 = _mm256_loadu_ps(p0.add(i));
            let uj = _mm256_loadu_ps(pj.add(i));
            let d = _mm256_loadu_ps(pd.add(i));
            // d + (p·u0 + q·uj), the portable version's order
            let t = _mm256_fmadd_ps(qf, uj, _mm256_mul_ps(pf, u0));
            _mm256_storeu_ps(pd.add(i), _mm256_add_ps(d, t));
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(uj));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(uj));
            let v0 = _mm256_loadu_pd(pv.add(i));
            let v1 = _mm256_loadu_pd(pv.add(i + 4));
            _mm256_storeu_pd(pv.add(i), _mm256_fmadd_pd(p64, lo, v0));
            _mm256_storeu_pd(pv.add(i + 4), _mm256_fmadd_pd(p64, hi, v1));
            i += 8;
        }
        let (pf, qf) = (p as f32, q as f32);
        for i in i..n {
            *pd.add(i) += pf * *p0.add(i) + qf * *pj.add(i);
            *pv.add(i) += p * *pj.add(i) as f64;
        }
    }

    /// `dots4` with 8 f32 FMA accumulators (two per quantity), flushed into f64
    /// every `BLOCK` elements. Callers guarantee all rows hold `a0.len()` elements.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dots4(
        a0: &[f32],
        aj: &[f32],
        b0: &[f32],
        bj: &[f32],
        pf: [&[f32]; 2],
    ) -> [f64; 4] {
        let n = a0.len();
        let (pf0, pf1) = (pf[0].as_ptr(), pf[1].as_ptr());
        let (nf0, nf1) = (pf[0].len(), pf[1].len());
        let (pa0, paj, pb0, pbj) = (a0.as_ptr(), aj.as_ptr(), b0.as_ptr(), bj.as_ptr());
        let mut tot = [0f64; 4];
        let mut start = 0;
        while start < n {
            let end = (start + BLOCK).min(n);
            let z = _mm256_setzero_ps();
            let mut acc = [z; 8];
            let mut i = start;
            while i + 16 <= end {
                // One line of each row read next per 16 elements.
                if i < nf0 {
                    _mm_prefetch::<_MM_HINT_T0>(pf0.add(i) as *const i8);
                }
                if i < nf1 {
                    _mm_prefetch::<_MM_HINT_T0>(pf1.add(i) as *const i8);
                }
                for h in 0..2 {
                    let o = i + 8 * h;
                    let x0 = _mm256_loadu_ps(pa0.add(o));
                    let xj = _mm256_loadu_ps(paj.add(o));
                    let y0 = _mm256_loadu_ps(pb0.add(o));
                    let yj = _mm256_loadu_ps(pbj.add(o));
                    acc[h] = _mm256_fmadd_ps(x0, xj, acc[h]);
                    acc[2 + h] = _mm256_fmadd_ps(xj, xj, acc[2 + h]);
                    acc[4 + h] = _mm256_fmadd_ps(y0, yj, acc[4 + h]);
                    acc[6 + h] = _mm256_fmadd_ps(yj, yj, acc[6 + h]);
                }
                i += 16;
            }
            let mut block = [0f64; 4];
            for q in 0..4 {
                block[q] = hsum_f64(_mm256_add_ps(acc[2 * q], acc[2 * q + 1]));
            }
            for i in i..end {
                let (x0, xj, y0, yj) = (*pa0.add(i), *paj.add(i), *pb0.add(i), *pbj.add(i));
                block[0] += (x0 * xj) as f64;
                block[1] += (xj * xj) as f64;
                block[2] += (y0 * yj) as f64;
                block[3] += (yj * yj) as f64;
            }
            for q in 0..4 {
                tot[q] += block[q];
            }
            start = end;
        }
        tot
    }
}

/// [A₀·Aⱼ, Aⱼ·Aⱼ, B₀·Bⱼ, Bⱼ·Bⱼ] over rows of equal length, portable.
#[inline(always)]
fn dots4_portable(a0: &[f32], aj: &[f32], b0: &[f32], bj: &[f32]) -> [f64; 4] {
    let n = a0.len();
    let (aj, b0, bj) = (&aj[..n], &b0[..n], &bj[..n]);
    let mut tot = [0f64; 4];
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        let mut acc = [[0f32; 8]; 4];
        let main = start + (end - start) / 8 * 8;
        // Fixed-size windows (no bounds checks inside, so the loop vectorises).
        let (mut ra, mut rj) = (&a0[start..main], &aj[start..main]);
        let (mut rb, mut rk) = (&b0[start..main], &bj[start..main]);
        while let (Some((x0, na)), Some((xj, nj)), Some((y0, nb)), Some((yj, nk))) = (
            ra.split_first_chunk::<8>(),
            rj.split_first_chunk::<8>(),
            rb.split_first_chunk::<8>(),
            rk.split_first_chunk::<8>(),
        ) {
            (ra, rj, rb, rk) = (na, nj, nb, nk);
            for l in 0..8 {
                acc[0][l] += x0[l] * xj[l];
                acc[1][l] += xj[l] * xj[l];
                acc[2][l] += y0[l] * yj[l];
                acc[3][l] += yj[l] * yj[l];
            }
        }
        for (t, i) in (main..end).enumerate() {
            acc[0][t] += a0[i] * aj[i];
            acc[1][t] += aj[i] * aj[i];
            acc[2][t] += b0[i] * bj[i];
            acc[3][t] += bj[i] * bj[i];
        }
        for q in 0..4 {
            tot[q] += acc[q].iter().map(|&v| v as f64).sum::<f64>();
        }
        start = end;
    }
    tot
}

/// Norms of token 0 of every batch row of x[batch, tokens, dim].
fn first_norms(x: &[f32], tokens: usize, dim: usize) -> Vec<f64> {
    x.chunks_exact(tokens * dim)
        .map(|r| sum_sq_f64(&r[..dim]).sqrt())
        .collect()
}

/// (s_A, s_B, m_Aⱼ, m_Bⱼ, whether ‖Aⱼ‖ > ε, whether ‖Bⱼ‖ > ε) of one pair.
#[inline(always)]
fn pair(
    a0: &[f32],
    aj: &[f32],
    b0: &[f32],
    bj: &[f32],
    ma0: f64,
    mb0: f64,
    pf: [&[f32]; 2],
) -> (f64, f64, f64, f64, bool, bool) {
    let [da, na, db, nb] = dots4(a0, aj, b0, bj, pf);
    let (na, nb) = (na.sqrt(), nb.sqrt());
    let (maj, mbj) = (na.max(EPS), nb.max(EPS));
    (
        da / (ma0 * maj),
        db / (mb0 * mbj),
        maj,
        mbj,
        na > EPS,
        nb > EPS,
    )
}

/// `Backend::sims_forward` on the CPU.
pub(crate) fn sims_forward(
    be: &CpuBackend,
    a: &CpuBuffer,
    b: &CpuBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
    loss: &mut CpuBuffer,
) -> Result<()> {
    check::sims_forward(a.len(), b.len(), batch, tokens, dim, loss.len())?;
    let (a, b) = (a.as_slice(), b.as_slice());
    let pairs = batch * (tokens - 1);
    let sum = be.exec(a.len(), SEQ_SIMS, |ex| {
        let ma0: Vec<f64> = first_norms(a, tokens, dim)
            .iter()
            .map(|v| v.max(EPS))
            .collect();
        let mb0: Vec<f64> = first_norms(b, tokens, dim)
            .iter()
            .map(|v| v.max(EPS))
            .collect();
        let one = |p: usize| {
            let (bi, j) = (p / (tokens - 1), p % (tokens - 1) + 1);
            let (o0, oj) = (bi * tokens * dim, (bi * tokens + j) * dim);
            let (sa, sb, ..) = pair(
                &a[o0..o0 + dim],
                &a[oj..oj + dim],
                &b[o0..o0 + dim],
                &b[oj..oj + dim],
                ma0[bi],
                mb0[bi],
                [&[], &[]],
            );
            (sa - sb) * (sa - sb)
        };
        if ex.par {
            (0..pairs)
                .into_par_iter()
                .with_min_len(Exec::min_items(2 * dim, MIN_TASK))
                .map(one)
                .sum::<f64>()
        } else {
            (0..pairs).map(one).sum::<f64>()
        }
    });
    loss.as_mut_slice()[0] = (sum / pairs as f64) as f32;
    Ok(())
}

/// A chunk's contribution to token 0: Σ g/(m₀mⱼ)·xⱼ (f64 vector) and Σ g·s, for A and B.
struct Partial {
    va: Vec<f64>,
    vb: Vec<f64>,
    sa: f64,
    sb: f64,
}

impl Partial {
    fn merge(mut self, o: Partial) -> Partial {
        for (x, y) in self.va.iter_mut().zip(&o.va) {
            *x += y;
        }
        for (x, y) in self.vb.iter_mut().zip(&o.vb) {
            *x += y;
        }
        self.sa += o.sa;
        self.sb += o.sb;
        self
    }
}

/// Everything one batch row's backward reads.
#[derive(Clone, Copy)]
struct Row<'a> {
    a: &'a [f32],
    b: &'a [f32],
    dim: usize,
    ma0: f64,
    mb0: f64,
    c: f64,
}

/// dx += p·x₀ + q·xⱼ on one token row, and v += p·xⱼ: AVX2 + FMA where the CPU has
/// them, portable otherwise. `pf`: a row the caller reads next (prefetched; may be empty).
#[inline(always)]
fn update(dx: &mut [f32], v: &mut [f64], x0: &[f32], xj: &[f32], p: f64, q: f64, pf: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        let n = dx.len();
        let (v, x0, xj) = (&mut v[..n], &x0[..n], &xj[..n]);
        // SAFETY: AVX2 and FMA are present; all four rows hold n elements.
        return unsafe { x86::update(dx, v, x0, xj, p, q, pf) };
    }
    let _ = pf;
    update_portable(dx, v, x0, xj, p, q)
}

/// `update`, portable.
#[inline(always)]
fn update_portable(dx: &mut [f32], v: &mut [f64], x0: &[f32], xj: &[f32], p: f64, q: f64) {
    let (pf, qf) = (p as f32, q as f32);
    for (d, (&u0, &uj)) in dx.iter_mut().zip(x0.iter().zip(xj)) {
        *d += pf * u0 + qf * uj;
    }
    for (v, &uj) in v.iter_mut().zip(xj) {
        *v += p * uj as f64;
    }
}

/// Token rows `j0..j0 + n` (n = rows in the chunk) of one batch row: writes their
/// gradients (when given) and returns the chunk's token-0 partial.
fn chunk_backward(
    r: Row<'_>,
    j0: usize,
    n: usize,
    mut da: Option<&mut [f32]>,
    mut db: Option<&mut [f32]>,
) -> Partial {
    let dim = r.dim;
    let (a0, b0) = (&r.a[..dim], &r.b[..dim]);
    let mut part = Partial {
        va: vec![0.0; if da.is_some() { dim } else { 0 }],
        vb: vec![0.0; if db.is_some() { dim } else { 0 }],
        sa: 0.0,
        sb: 0.0,
    };
    for t in 0..n {
        let j = j0 + t;
        let (aj, bj) = (&r.a[j * dim..(j + 1) * dim], &r.b[j * dim..(j + 1) * dim]);
        // The gradient rows stream in during the sweep and the next token rows while
        // the gradients are written: left to the hardware prefetchers, each phase
        // waits for its first lines (measured 3.05 against 3.9 ms at 32 × 257 × 768;
        // two rows ahead was slower, 4.3 ms).
        let row = t * dim..(t + 1) * dim;
        let pf = [
            da.as_deref().map_or(&[][..], |d| &d[row.clone()]),
            db.as_deref().map_or(&[][..], |d| &d[row.clone()]),
        ];
        let (sa, sb, maj, mbj, la, lb) = pair(a0, aj, b0, bj, r.ma0, r.mb0, pf);
        let next = if t + 1 < n {
            (j + 1) * dim..(j + 2) * dim
        } else {
            0..0
        };
        let g = r.c * (sa - sb);
        if let Some(da) = da.as_deref_mut() {
            let p = g / (r.ma0 * maj);
            let q = if la { -g * sa / (maj * maj) } else { 0.0 };
            let pf = &r.a[next.clone()];
            update(&mut da[row.clone()], &mut part.va, a0, aj, p, q, pf);
            part.sa += g * sa;
        }
        if let Some(db) = db.as_deref_mut() {
            let p = -g / (r.mb0 * mbj);
            let q = if lb { g * sb / (mbj * mbj) } else { 0.0 };
            update(&mut db[row], &mut part.vb, b0, bj, p, q, &r.b[next]);
            part.sb -= g * sb;
        }
    }
    part
}

/// dx₀ += v − live₀·(Σ g·s)/m₀²·x₀.
fn finish_first(dx0: &mut [f32], x0: &[f32], v: &[f64], gs: f64, m0: f64, live: bool) {
    let q = if live { -gs / (m0 * m0) } else { 0.0 };
    for ((d, &x), &v) in dx0.iter_mut().zip(x0).zip(v) {
        *d += (v + q * x as f64) as f32;
    }
}

/// Split an optional buffer into `n` consecutive optional pieces of `len` elements.
fn pieces(x: Option<&mut [f32]>, len: usize, n: usize) -> Vec<Option<&mut [f32]>> {
    match x {
        Some(x) => x.chunks_mut(len).map(Some).collect(),
        None => (0..n).map(|_| None).collect(),
    }
}

/// An optional buffer split into its first `dim` elements and the rest.
#[allow(clippy::type_complexity)]
fn split_first(x: Option<&mut [f32]>, dim: usize) -> (Option<&mut [f32]>, Option<&mut [f32]>) {
    match x {
        Some(x) => {
            let (x0, rest) = x.split_at_mut(dim);
            (Some(x0), Some(rest))
        }
        None => (None, None),
    }
}

/// One batch row: token rows 1.. in chunks of `rows` (in parallel when `ex.par`),
/// then token 0.
fn batch_backward(
    ex: Exec,
    r: Row<'_>,
    tokens: usize,
    rows: usize,
    da: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
    norms0: (f64, f64),
) {
    let dim = r.dim;
    let (da0, da_rest) = split_first(da, dim);
    let (db0, db_rest) = split_first(db, dim);
    let nchunks = (tokens - 1).div_ceil(rows);
    let tasks: Vec<_> = pieces(da_rest, rows * dim, nchunks)
        .into_iter()
        .zip(pieces(db_rest, rows * dim, nchunks))
        .enumerate()
        .collect();
    let run = |(c, (da, db)): (usize, (Option<&mut [f32]>, Option<&mut [f32]>))| {
        let j0 = 1 + c * rows;
        chunk_backward(r, j0, rows.min(tokens - j0), da, db)
    };
    let part = if ex.par && nchunks > 1 {
        tasks.into_par_iter().map(run).reduce_with(Partial::merge)
    } else {
        tasks.into_iter().map(run).reduce(Partial::merge)
    };
    if let Some(part) = part {
        if let Some(da0) = da0 {
            finish_first(da0, &r.a[..dim], &part.va, part.sa, r.ma0, norms0.0 > EPS);
        }
        if let Some(db0) = db0 {
            finish_first(db0, &r.b[..dim], &part.vb, part.sb, r.mb0, norms0.1 > EPS);
        }
    }
}

/// `Backend::sims_backward` on the CPU.
pub(crate) fn sims_backward(
    be: &CpuBackend,
    a: &CpuBuffer,
    b: &CpuBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: f64,
    da: Option<&mut CpuBuffer>,
    db: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::sims_backward(
        a.len(),
        b.len(),
        batch,
        tokens,
        dim,
        scale,
        da.as_deref().map(CpuBuffer::len),
        db.as_deref().map(CpuBuffer::len),
    )?;
    if da.is_none() && db.is_none() {
        return Ok(());
    }
    let (a, b) = (a.as_slice(), b.as_slice());
    let pairs = batch * (tokens - 1);
    let c = 2.0 * (scale as f32 as f64) / pairs as f64;
    let (da, db) = (
        da.map(CpuBuffer::as_mut_slice),
        db.map(CpuBuffer::as_mut_slice),
    );
    be.exec(a.len(), SEQ_SIMS, |ex| {
        let na0 = first_norms(a, tokens, dim);
        let nb0 = first_norms(b, tokens, dim);
        let row_len = tokens * dim;
        // About four tasks per thread over all pairs, each of at least MIN_TASK elements.
        let rows = if ex.par {
            pairs
                .div_ceil(4 * ex.threads)
                .max(Exec::min_items(2 * dim, MIN_TASK))
                .min(tokens - 1)
        } else {
            tokens - 1
        };
        let per_batch: Vec<_> = pieces(da, row_len, batch)
            .into_iter()
            .zip(pieces(db, row_len, batch))
            .enumerate()
            .collect();
        let run = |(bi, (da, db)): (usize, (Option<&mut [f32]>, Option<&mut [f32]>))| {
            let r = Row {
                a: &a[bi * row_len..(bi + 1) * row_len],
                b: &b[bi * row_len..(bi + 1) * row_len],
                dim,
                ma0: na0[bi].max(EPS),
                mb0: nb0[bi].max(EPS),
                c,
            };
            batch_backward(ex, r, tokens, rows, da, db, (na0[bi], nb0[bi]));
        };
        if ex.par {
            per_batch.into_par_iter().for_each(run);
        } else {
            per_batch.into_iter().for_each(run);
        }
    });
    Ok(())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn row(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// The AVX2 kernels against the portable ones (which CPUs without AVX2 run), at
    /// lengths covering the 16-wide body, the scalar tail and several f64 flushes.
    #[test]
    fn avx2_matches_portable() {
        if !crate::simd::has_avx2_fma() {
            println!("skipped: sims avx2_matches_portable: no AVX2/FMA on this CPU");
            return;
        }
        for n in [1, 7, 16, 23, 255, 256, 257, 768, 1000] {
            let (a0, aj, b0, bj) = (row(n, 1), row(n, 2), row(n, 3), row(n, 4));
            // SAFETY: AVX2/FMA checked; equal lengths.
            let fast = unsafe { x86::dots4(&a0, &aj, &b0, &bj, [&b0, &[]]) };
            let slow = dots4_portable(&a0, &aj, &b0, &bj);
            for q in 0..4 {
                let tol = 1e-6 * (n as f64) * slow[1].abs().max(slow[3].abs()).max(1.0);
                assert!(
                    (fast[q] - slow[q]).abs() <= tol,
                    "n {n} q {q}: {fast:?} vs {slow:?}"
                );
            }
            let (mut d1, mut d2) = (row(n, 5), row(n, 5));
            let (mut v1, mut v2) = (vec![0.5f64; n], vec![0.5f64; n]);
            // SAFETY: as above.
            unsafe { x86::update(&mut d1, &mut v1, &a0, &aj, 0.3, -1.7, &b0) };
            update_portable(&mut d2, &mut v2, &a0, &aj, 0.3, -1.7);
            for i in 0..n {
                assert!(
                    (d1[i] - d2[i]).abs() <= 4.0 * f32::EPSILON * 4.0,
                    "dx[{i}] n {n}"
                );
                assert!((v1[i] - v2[i]).abs() <= 1e-15, "v[{i}] n {n}");
            }
        }
    }
}
