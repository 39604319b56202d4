//! PixCorr: the mean over images of Pearson's r between the flattened pixels of each
//! reconstruction and its ground truth.
//!
//! MindEye computes it on RGB images resized to 425×425 (`[n, 3, 425, 425]`); this
//! function takes any per-image size and layout (the caller resizes), since r of the
//! flattened image does not depend on the order of the pixels as long as both images
//! use the same one.

use super::check;
use super::correlation::pearson_unchecked;
use crate::element::Element;
use crate::error::Result;
use alloc::vec::Vec;

/// Per-image correlations and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct PixCorr {
    /// `r[i]` = Pearson r of the flattened `pred[i]` and `target[i]` (NaN for a
    /// constant image, as `numpy.corrcoef` gives).
    pub per_image: Vec<f64>,
    /// Mean of `per_image` (NaN if any is NaN).
    pub mean: f64,
}

/// PixCorr of `pred` and `target`, both `[n, pixels]` (e.g. `pixels = 3·425·425`).
///
/// Errors: `n` or `pixels` zero, or a buffer of the wrong length.
pub fn pixcorr<T: Element>(pred: &[T], target: &[T], n: usize, pixels: usize) -> Result<PixCorr> {
    const OP: &str = "pixcorr";
    check::matrix(OP, "pred", pred.len(), n, pixels)?;
    check::matrix(OP, "target", target.len(), n, pixels)?;
    let per_image: Vec<f64> = pred
        .chunks_exact(pixels)
        .zip(target.chunks_exact(pixels))
        .map(|(p, t)| pearson_unchecked(p, t))
        .collect();
    let mean = per_image.iter().sum::<f64>() / n as f64;
    Ok(PixCorr { per_image, mean })
}
