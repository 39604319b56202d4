//! Pearson correlation, correlation distance and Spearman's rank correlation.
//!
//! Every function reads its inputs as any [`Element`] and computes in f64 with two
//! passes (means first, then centred sums), so a large common offset does not cancel
//! the signal (`u + 1e3` correlates exactly like `u`).
//!
//! **Undefined cases.** A constant vector has zero variance and no correlation: the
//! result is NaN, as `numpy.corrcoef`, `scipy.stats.pearsonr` / `spearmanr` and
//! `scipy.spatial.distance.correlation` return (they also warn). NaN in the data
//! propagates to NaN. Empty inputs and length mismatches are errors.

use super::check;
use super::check::Wide;
use crate::element::Element;
use crate::error::Result;
use alloc::vec;
use alloc::vec::Vec;

/// Pearson's r of `x` and `y` (equal, non-zero lengths), clipped to [−1, 1] like
/// `numpy.corrcoef`. NaN when either vector is constant (see the module notes).
pub fn pearson<T: Element>(x: &[T], y: &[T]) -> Result<f64> {
    check::pair("pearson", x.len(), y.len())?;
    Ok(pearson_unchecked(x, y))
}

/// `r = Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)²·Σ(y−ȳ)²)`, clipped; the caller checked the lengths.
pub(crate) fn pearson_unchecked<T: Element>(x: &[T], y: &[T]) -> f64 {
    let (sxy, sxx, syy) = centred_sums(x, y);
    (sxy / libm::sqrt(sxx * syy)).clamp(-1.0, 1.0)
}

/// `(Σ(x−x̄)(y−ȳ), Σ(x−x̄)², Σ(y−ȳ)²)` in f64, two passes.
fn centred_sums<T: Element>(x: &[T], y: &[T]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let (mut mx, mut my) = (0.0f64, 0.0f64);
    for (a, b) in x.iter().zip(y) {
        mx += a.wide();
        my += b.wide();
    }
    mx /= n;
    my /= n;
    let (mut sxy, mut sxx, mut syy) = (0.0f64, 0.0f64, 0.0f64);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a.wide() - mx, b.wide() - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    (sxy, sxx, syy)
}

/// Correlation distance `1 − r(u, v)` in [0, 2], exactly as
/// `scipy.spatial.distance.correlation(u, v)` computes it: centre both vectors,
/// `1 − u·v / √((u·u)(v·v))`, clipped to [0, 2]. NaN for a constant vector.
pub fn correlation_distance<T: Element>(u: &[T], v: &[T]) -> Result<f64> {
    check::pair("correlation_distance", u.len(), v.len())?;
    let (uv, uu, vv) = centred_sums(u, v);
    Ok((1.0 - uv / libm::sqrt(uu * vv)).clamp(0.0, 2.0))
}

/// Ranks 1..=n of `x`, ties sharing the average of the ranks they span
/// (`scipy.stats.rankdata(method="average")`). If any value is NaN every rank is NaN
/// (scipy's `nan_policy="propagate"`).
pub fn rankdata<T: Element>(x: &[T]) -> Vec<f64> {
    let n = x.len();
    if x.iter().any(|v| v.is_nan()) {
        return vec![f64::NAN; n];
    }
    let mut idx: Vec<usize> = (0..n).collect();
    // No NaN here, so partial_cmp is total.
    idx.sort_unstable_by(|&a, &b| {
        x[a].partial_cmp(&x[b])
            .unwrap_or(core::cmp::Ordering::Equal)
    });
    let mut ranks = vec![0.0f64; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        // Sorted positions i..=j hold equal values: ranks i+1 ..= j+1, average (i+j+2)/2.
        let r = (i + j + 2) as f64 / 2.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's ρ: Pearson's r of the average ranks (`scipy.stats.spearmanr(x, y)`
/// for two 1-D arrays). NaN when either vector is constant or holds a NaN.
pub fn spearman<T: Element>(x: &[T], y: &[T]) -> Result<f64> {
    check::pair("spearman", x.len(), y.len())?;
    Ok(pearson_unchecked(&rankdata(x), &rankdata(y)))
}

/// Pearson correlations between every row of `a` `[na, d]` and every row of `b`
/// `[nb, d]`: `corr[i·nb + j] = r(a_i, b_j)` (`[na, nb]`, row-major). A constant row
/// yields a NaN row or column. O(na·nb·d) after O((na + nb)·d) standardisation.
pub fn correlation_matrix<T: Element>(
    a: &[T],
    b: &[T],
    na: usize,
    nb: usize,
    d: usize,
) -> Result<Vec<f64>> {
    const OP: &str = "correlation_matrix";
    check::matrix(OP, "a", a.len(), na, d)?;
    check::matrix(OP, "b", b.len(), nb, d)?;
    let (za, zb) = (standardize_rows(a, na, d), standardize_rows(b, nb, d));
    let mut c = cross_dots(&za, &zb, na, nb, d);
    for v in &mut c {
        *v = v.clamp(-1.0, 1.0);
    }
    Ok(c)
}

/// Rows of `x` `[n, d]` centred and scaled to unit Euclidean norm, in f64, so that
/// `r(x_i, y_j) = z_i·z_j`. A constant row becomes NaN (0/0), as numpy would give.
pub(crate) fn standardize_rows<T: Element>(x: &[T], n: usize, d: usize) -> Vec<f64> {
    let mut z = vec![0.0f64; n * d];
    for (zr, xr) in z.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let mut m = 0.0f64;
        for (zv, xv) in zr.iter_mut().zip(xr) {
            *zv = xv.wide();
            m += *zv;
        }
        m /= d as f64;
        let mut ss = 0.0f64;
        for zv in zr.iter_mut() {
            *zv -= m;
            ss += *zv * *zv;
        }
        let inv = 1.0 / libm::sqrt(ss);
        for zv in zr.iter_mut() {
            // 0·∞ = NaN for a constant row: r is undefined there.
            *zv = if ss == 0.0 { f64::NAN } else { *zv * inv };
        }
    }
    z
}

/// Rows of `x` `[n, d]` in f64 scaled to unit norm (cosine similarity as a dot
/// product). A zero row becomes NaN (0/0: cosine similarity is undefined).
pub(crate) fn normalize_rows<T: Element>(x: &[T], n: usize, d: usize) -> Vec<f64> {
    let mut z = vec![0.0f64; n * d];
    for (zr, xr) in z.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let mut ss = 0.0f64;
        for (zv, xv) in zr.iter_mut().zip(xr) {
            *zv = xv.wide();
            ss += *zv * *zv;
        }
        let inv = 1.0 / libm::sqrt(ss);
        for zv in zr.iter_mut() {
            *zv = if ss == 0.0 { f64::NAN } else { *zv * inv };
        }
    }
    z
}

/// Lanes per accumulator: independent partial sums the compiler keeps in vector
/// registers (f64 addition is not reassociated for us).
const LANES: usize = 4;

/// `a · b` with [`LANES`] partial sums.
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Four dot products `a_r · b` sharing each load of `b`.
#[inline]
fn dot4(a: [&[f64]; 4], b: &[f64]) -> [f64; 4] {
    let mut acc = [[0.0f64; LANES]; 4];
    let d = b.len();
    let split = d - d % LANES;
    let (mut bs, mut rows) = (&b[..split], a.map(|x| &x[..split]));
    while let Some((bv, rest)) = bs.split_first_chunk::<LANES>() {
        bs = rest;
        for r in 0..4 {
            if let Some((av, rest)) = rows[r].split_first_chunk::<LANES>() {
                rows[r] = rest;
                for l in 0..LANES {
                    acc[r][l] += av[l] * bv[l];
                }
            }
        }
    }
    let mut out = [0.0f64; 4];
    for r in 0..4 {
        let tail: f64 = a[r][split..]
            .iter()
            .zip(&b[split..])
            .map(|(x, y)| x * y)
            .sum();
        out[r] = acc[r].iter().sum::<f64>() + tail;
    }
    out
}

/// `out[i·nb + j] = a_i · b_j` for row-major `a` `[na, d]`, `b` `[nb, d]`.
///
/// Four rows of `a` share each streamed row of `b`, each dot product with four lane
/// partial sums (16 independent accumulators); rows stay contiguous in the inner loop.
pub(crate) fn cross_dots(a: &[f64], b: &[f64], na: usize, nb: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; na * nb];
    let mut i = 0;
    while i + 4 <= na {
        let rows = [
            &a[i * d..(i + 1) * d],
            &a[(i + 1) * d..(i + 2) * d],
            &a[(i + 2) * d..(i + 3) * d],
            &a[(i + 3) * d..(i + 4) * d],
        ];
        for (j, bj) in b.chunks_exact(d).enumerate() {
            let s = dot4(rows, bj);
            for r in 0..4 {
                out[(i + r) * nb + j] = s[r];
            }
        }
        i += 4;
    }
    for i in i..na {
        let ai = &a[i * d..(i + 1) * d];
        for (j, bj) in b.chunks_exact(d).enumerate() {
            out[i * nb + j] = dot(ai, bj);
        }
    }
    out
}

/// `a·aᵀ` `[n, n]` for row-major `a` `[n, d]`: the lower triangle from [`cross_dots`]'
/// kernels (half the work), mirrored, so the result is exactly symmetric.
pub(crate) fn gram_rows(a: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; n * n];
    let row = |k: usize| &a[k * d..(k + 1) * d];
    let mut i = 0;
    while i + 4 <= n {
        let rows = [row(i), row(i + 1), row(i + 2), row(i + 3)];
        // Columns j < i + 4 cover the lower triangle of these four rows (and a few
        // entries above the diagonal, overwritten by the mirror below).
        for j in 0..i + 4 {
            let s = dot4(rows, row(j));
            for r in 0..4 {
                out[(i + r) * n + j] = s[r];
            }
        }
        i += 4;
    }
    for i in i..n {
        for j in 0..=i {
            out[i * n + j] = dot(row(i), row(j));
        }
    }
    for i in 0..n {
        for j in i + 1..n {
            out[i * n + j] = out[j * n + i];
        }
    }
    out
}
