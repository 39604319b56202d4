//! Two-way identification (Brain-Diffuser / MindEye's "2-way" metric on feature
//! vectors of an image network, e.g. AlexNet, Inception, CLIP).
//!
//! With `corr[i][j] = r(pred_i, target_j)` (Pearson), prediction `i` wins against
//! candidate `j ≠ i` when `corr[i][i] > corr[i][j]` (strictly; a tie loses). The
//! per-sample score is the fraction of the `n − 1` candidates it wins against and the
//! metric is their mean: a **fraction in [0, 1]** (×100 for the percent the papers
//! print; chance is 0.5). This equals MindEye's vectorised
//! `np.sum(r < np.diag(r), 0) / (n − 1)` with `r = np.corrcoef(true, pred)[:n, n:]`.
//!
//! NaN (a constant feature vector, or NaN features) propagates: a sample whose row of
//! `corr` holds a NaN scores NaN, and so does the mean. (numpy would silently count
//! each comparison with NaN as lost.)

use super::check;
use super::correlation::correlation_matrix;
use crate::element::Element;
use crate::error::Result;
use alloc::vec::Vec;

/// Per-sample two-way scores and their mean, both fractions in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct TwoWay {
    /// Fraction of the other `n − 1` targets that prediction `i` is closer to its own.
    pub per_sample: Vec<f64>,
    /// Mean of `per_sample`.
    pub mean: f64,
}

/// Two-way identification of `pred` against `target`, both `[n, d]` row-major.
///
/// Errors: `n < 2` (no competitor), `d == 0`, or a buffer of the wrong length.
pub fn two_way_identification<T: Element>(
    pred: &[T],
    target: &[T],
    n: usize,
    d: usize,
) -> Result<TwoWay> {
    const OP: &str = "two_way_identification";
    check::matrix(OP, "pred", pred.len(), n, d)?;
    check::matrix(OP, "target", target.len(), n, d)?;
    check::at_least(OP, "samples", n, 2)?;
    let corr = correlation_matrix(pred, target, n, n, d)?;
    let per_sample: Vec<f64> = corr
        .chunks_exact(n)
        .enumerate()
        .map(|(i, row)| {
            let own = row[i];
            if row.iter().any(|v| v.is_nan()) {
                return f64::NAN;
            }
            let wins = row
                .iter()
                .enumerate()
                .filter(|&(j, &v)| j != i && own > v)
                .count();
            wins as f64 / (n - 1) as f64
        })
        .collect();
    let mean = per_sample.iter().sum::<f64>() / n as f64;
    Ok(TwoWay { per_sample, mean })
}
