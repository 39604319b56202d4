//! Representational similarity analysis: representational dissimilarity matrices
//! (RDMs) and the Spearman correlation of two RDMs.
//!
//! `rdm[i][j] = 1 − r(x_i, x_j)` (Pearson r between the rows, i.e. stimuli) is
//! `1 − numpy.corrcoef(x)`; the diagonal is exactly 0 (NaN for a constant row). Two
//! RDMs are compared by Spearman's ρ of their strict upper triangles (`k = 1`, read
//! row by row: `(0,1), (0,2), …, (1,2), …`), as
//! `scipy.stats.spearmanr(rdm_x[iu], rdm_y[iu])` with `iu = numpy.triu_indices(n, 1)`.

use super::check;
use super::correlation::{gram_rows, pearson_unchecked, rankdata, standardize_rows};
use crate::element::Element;
use crate::error::Result;
use alloc::vec::Vec;

/// Both RDMs and their Spearman correlation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rsa {
    /// RDM of `x`, `[n, n]`.
    pub rdm_x: Vec<f64>,
    /// RDM of `y`, `[n, n]`.
    pub rdm_y: Vec<f64>,
    /// Spearman ρ of the upper triangles.
    pub rho: f64,
}

/// RDM of `x` `[n, d]`: `[n, n]`, `1 − r(x_i, x_j)` in [0, 2] (r clipped to [−1, 1]
/// like `numpy.corrcoef`).
///
/// Errors: `n` or `d` zero, or a buffer of the wrong length.
pub fn rdm<T: Element>(x: &[T], n: usize, d: usize) -> Result<Vec<f64>> {
    check::matrix("rdm", "x", x.len(), n, d)?;
    let z = standardize_rows(x, n, d);
    let mut r = gram_rows(&z, n, d);
    for i in 0..n {
        for j in 0..n {
            let v = r[i * n + j];
            r[i * n + j] = if i == j && !v.is_nan() {
                0.0
            } else {
                1.0 - v.clamp(-1.0, 1.0)
            };
        }
    }
    Ok(r)
}

/// The strict upper triangle of a row-major `[n, n]` matrix, row by row.
pub fn upper_triangle(m: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        out.extend_from_slice(&m[i * n + i + 1..(i + 1) * n]);
    }
    out
}

/// Spearman ρ between the strict upper triangles of two `[n, n]` RDMs.
///
/// Errors: `n < 2` (an empty triangle), or a buffer of the wrong length. With
/// `n = 2` the triangles hold one value each and ρ is NaN (undefined, as scipy).
pub fn rdm_spearman(rdm_x: &[f64], rdm_y: &[f64], n: usize) -> Result<f64> {
    const OP: &str = "rdm_spearman";
    check::matrix(OP, "rdm_x", rdm_x.len(), n, n)?;
    check::matrix(OP, "rdm_y", rdm_y.len(), n, n)?;
    check::at_least(OP, "samples", n, 2)?;
    let (a, b) = (upper_triangle(rdm_x, n), upper_triangle(rdm_y, n));
    Ok(pearson_unchecked(&rankdata(&a), &rankdata(&b)))
}

/// RSA of two representations of the same `n` stimuli, `x` `[n, d1]` and `y`
/// `[n, d2]`: both RDMs and the Spearman ρ of their upper triangles.
///
/// Errors: any dimension zero, `n < 2`, or a buffer of the wrong length.
pub fn rsa<T: Element>(x: &[T], y: &[T], n: usize, d1: usize, d2: usize) -> Result<Rsa> {
    const OP: &str = "rsa";
    check::matrix(OP, "x", x.len(), n, d1)?;
    check::matrix(OP, "y", y.len(), n, d2)?;
    check::at_least(OP, "samples", n, 2)?;
    let (rdm_x, rdm_y) = (rdm(x, n, d1)?, rdm(y, n, d2)?);
    let rho = rdm_spearman(&rdm_x, &rdm_y, n)?;
    Ok(Rsa { rdm_x, rdm_y, rho })
}
