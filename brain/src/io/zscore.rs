//! Per-voxel z-scoring with the statistics of the training trials only (Brain-Diffuser's
//! choice), applied unchanged to the test trials so nothing of the test set leaks into
//! the model. Sums are taken in `f64`: NSD has ~9000 training trials per voxel, and an
//! `f32` running sum loses digits long before that.

use crate::error::{Error, Result};
use brain_core::BrainError;

/// Mean and standard deviation (population, `ddof = 0` as `np.std`) per column.
#[derive(Debug, Clone, PartialEq)]
pub struct ZScore {
    /// Mean per column.
    pub mean: Vec<f64>,
    /// Standard deviation per column; 1 where the column is constant.
    pub std: Vec<f64>,
    /// Columns that were constant over the training trials.
    pub constant: usize,
}

fn invalid(reason: String) -> Error {
    Error::Core(BrainError::InvalidArgument {
        op: "ZScore",
        reason,
    })
}

impl ZScore {
    /// Statistics of `data` `[n, width]` (row-major), `n ≥ 1`.
    ///
    /// A column with the same value in every row (a dead voxel, or one the mask reaches
    /// but the scanner does not) gets std 1 instead of 0: its z-scores are then 0 on the
    /// training trials and the plain deviation on the test trials, where 0/0 would put
    /// NaN into every gradient that touches it.
    pub fn fit(data: &[f32], width: usize) -> Result<ZScore> {
        if width == 0 || data.is_empty() || data.len() % width != 0 {
            return Err(invalid(format!(
                "cannot fit {} values as rows of width {width}",
                data.len()
            )));
        }
        let n = data.len() / width;
        let mut sum = vec![0.0f64; width];
        let mut lo = data[..width].to_vec();
        let mut hi = lo.clone();
        for row in data.chunks_exact(width) {
            for (j, &v) in row.iter().enumerate() {
                sum[j] += v as f64;
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        // Two passes: the deviations from the mean, not E[x²] − E[x]², which cancels.
        let mut ss = vec![0.0f64; width];
        for row in data.chunks_exact(width) {
            for (j, &v) in row.iter().enumerate() {
                let d = v as f64 - mean[j];
                ss[j] += d * d;
            }
        }
        let mut constant = 0;
        let mut mean = mean;
        let std = (0..width)
            .map(|j| {
                let s = (ss[j] / n as f64).sqrt();
                if lo[j] == hi[j] || s.is_nan() || s <= 0.0 {
                    constant += 1;
                    // Exactly the value, so the training rows become exactly 0.
                    mean[j] = lo[j] as f64;
                    1.0
                } else {
                    s
                }
            })
            .collect();
        Ok(ZScore {
            mean,
            std,
            constant,
        })
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// `(x − mean) / std` in place over rows of `data`.
    pub fn apply(&self, data: &mut [f32]) -> Result<()> {
        let w = self.width();
        if w == 0 || data.len() % w != 0 {
            return Err(invalid(format!(
                "{} values are not rows of the {w} columns the statistics were fitted on",
                data.len()
            )));
        }
        let inv: Vec<f64> = self.std.iter().map(|s| 1.0 / s).collect();
        for row in data.chunks_exact_mut(w) {
            for ((v, m), i) in row.iter_mut().zip(&self.mean).zip(&inv) {
                *v = ((*v as f64 - m) * i) as f32;
            }
        }
        Ok(())
    }
}
