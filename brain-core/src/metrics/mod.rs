//! Evaluation metrics and representational analysis (MindEye / Brain-Diffuser
//! conventions, SPEC §7).
//!
//! Host-side functions over downloaded data (any [`Element`](crate::Element) slice,
//! computed in f64): they run once per evaluation, so they are plain, single-threaded
//! and allocate their working matrices once.
//!
//! | metric | function | definition |
//! |---|---|---|
//! | PixCorr | [`pixcorr()`] | mean Pearson r of flattened pixels |
//! | SSIM | [`ssim()`], [`ssim_rgb_batch`] | scikit-image ≥ 0.20 (MindEye); 0.17 column-wise option (Brain-Diffuser) |
//! | two-way identification | [`two_way_identification`] | fraction of `j ≠ i` with `r(p_i, t_i) > r(p_i, t_j)` |
//! | top-1 retrieval | [`retrieval_top1`], [`retrieval_top1_subsets`] | cosine similarity, both directions; 30 × 300 subsets |
//! | correlation | [`pearson`], [`spearman`], [`correlation_distance`], [`correlation_matrix`] | numpy / scipy semantics |
//! | RSA | [`rdm`], [`rsa()`], [`rdm_spearman`] | RDM = 1 − r between rows; Spearman of upper triangles |
//! | CKA | [`cka_matrix()`], [`linear_cka`] | linear CKA, biased HSIC, via `n × n` Gram matrices |
//!
//! Scores are fractions (two-way, retrieval) or correlations, never percents.
//! Conventions for undefined values: a constant vector has no correlation and a zero
//! vector no direction, so those give NaN, as numpy / scipy do; NaN in the data
//! propagates to the score. Empty inputs, mismatched lengths and out-of-domain
//! options are typed errors ([`BrainError`](crate::BrainError)).
//!
//! ```
//! use brain_core::metrics::{pixcorr, ssim, two_way_identification, retrieval_top1, SsimOptions};
//!
//! # fn main() -> Result<(), brain_core::BrainError> {
//! // Two 16×16 grayscale images: SSIM of an image with itself is 1.
//! let img: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32) / 100.0).collect();
//! let s = ssim(&img, &img, 16, 16, &SsimOptions::MINDEYE)?;
//! assert!((s.mean - 1.0).abs() < 1e-12);
//!
//! // PixCorr of 2 images of 4 pixels each.
//! let pred = [0.1f32, 0.2, 0.3, 0.4, 1.0, 0.0, 1.0, 0.0];
//! let truth = [0.2f32, 0.4, 0.6, 0.8, 0.0, 1.0, 0.0, 1.0];
//! assert!((pixcorr(&pred, &truth, 2, 4)?.mean - 0.0).abs() < 1e-6); // (1 + (−1)) / 2
//!
//! // A perfect predictor wins every two-way comparison and retrieves every sample.
//! let feats: Vec<f64> = (0..5 * 8).map(|i| ((i * i) % 11) as f64).collect();
//! assert_eq!(two_way_identification(&feats, &feats, 5, 8)?.mean, 1.0);
//! let r = retrieval_top1(&feats, &feats, 5, 8)?;
//! assert_eq!((r.forward, r.backward), (1.0, 1.0));
//!
//! // Bad shapes are errors, not panics.
//! assert!(pixcorr(&pred, &truth, 3, 4).is_err());
//! # Ok(())
//! # }
//! ```

mod check;
pub mod cka_matrix;
pub mod correlation;
pub mod identification;
pub mod pixcorr;
pub mod retrieval;
pub mod rsa;
pub mod ssim;

pub use cka_matrix::{centered_gram, cka_matrix, linear_cka, Layer};
pub use correlation::{correlation_distance, correlation_matrix, pearson, rankdata, spearman};
pub use identification::{two_way_identification, TwoWay};
pub use pixcorr::{pixcorr, PixCorr};
pub use retrieval::{
    cosine_similarity_matrix, retrieval_top1, retrieval_top1_subsets, subset_indices, Retrieval,
    SubsetRetrieval, SubsetSampling,
};
pub use rsa::{rdm, rdm_spearman, rsa, upper_triangle, Rsa};
pub use ssim::{
    gaussian_window, rgb_to_gray, ssim, ssim_rgb_batch, ChannelLayout, Ssim, SsimBatch,
    SsimOptions, SsimVariant, RGB_TO_GRAY,
};
