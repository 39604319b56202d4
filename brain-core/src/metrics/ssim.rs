//! SSIM (Wang et al. 2004) as scikit-image computes it, with MindEye's settings by
//! default, and the column-wise variant behind Brain-Diffuser's published numbers.
//!
//! # Definition (scikit-image ≥ 0.20, [`SsimVariant::Skimage2d`])
//!
//! `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
//! use_sample_covariance=False, data_range=1.0)` on 2-D grayscale images `[h, w]`:
//! - `G·z` is `scipy.ndimage.gaussian_filter(z, sigma, truncate)`: a separable 1-D
//!   window `g[k] ∝ exp(−k²/2σ²)`, `k = −r..=r`, `r = ⌊truncate·σ + 0.5⌋` (σ = 1.5,
//!   truncate 3.5 → r = 5, 11 taps), normalised to sum 1, applied along rows (axis
//!   0) then columns (axis 1) with mode `reflect` (half-sample symmetric:
//!   `… c b a | a b c … x y z | z y x …`);
//! - `μa = G·a`, `μb = G·b`, `σa² = c·(G·a² − μa²)`, `σb² = c·(G·b² − μb²)`,
//!   `σab = c·(G·ab − μa·μb)` with `c = 1` (population covariance; `c = N/(N − 1)`,
//!   `N = win^ndim`, with `sample_covariance`);
//! - `S = (2μaμb + C1)(2σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))`,
//!   `C1 = (K1·L)²`, `C2 = (K2·L)²`, K1 = 0.01, K2 = 0.03, L = `data_range` = 1;
//! - the score is the mean of `S` cropped by `r` pixels at every border
//!   (`S[r:-r, r:-r]`); the full map is returned too.
//!
//! Images smaller than the window (`h` or `w` < 2r + 1) are rejected, as scikit-image
//! does ("win_size exceeds image extent").
//!
//! # Brain-Diffuser's variant ([`SsimVariant::Skimage017Columns`])
//!
//! Brain-Diffuser called scikit-image 0.17's `structural_similarity(gray_a, gray_b,
//! multichannel=True, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//! data_range=1.0)` on **2-D** grayscale images. `multichannel=True` made 0.17 treat
//! the last axis (the `w` columns) as channels: it computed a **1-D** SSIM along each
//! column (Gaussian filter along axis 0 only, same window and reflect mode, `N = win`
//! for the sample-covariance factor), cropped `r` samples at both ends of each column
//! and averaged over columns. That equals the mean of this variant's map over
//! `S[r:-r, :]` (every column has the same length). It typically differs from the 2-D
//! SSIM by 0.01–0.06 on natural images; use it only to compare with Brain-Diffuser's
//! tables. Requires `h ≥ 2r + 1` only.
//!
//! # MindEye usage
//!
//! MindEye converts both RGB images to grayscale with scikit-image's `rgb2gray`
//! (`0.2125 R + 0.7154 G + 0.0721 B`, see [`rgb_to_gray`]) at 425×425 and averages the
//! 2-D SSIM over images: [`ssim_rgb_batch`].

use super::check;
use super::check::Wide;
use crate::check::{invalid, len, numel};
use crate::element::Element;
use crate::error::Result;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

/// Which scikit-image computation to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsimVariant {
    /// 2-D SSIM (scikit-image ≥ 0.20; MindEye).
    #[default]
    Skimage2d,
    /// Column-wise 1-D SSIM averaged over columns (scikit-image 0.17 with
    /// `multichannel=True` on a 2-D image; Brain-Diffuser).
    Skimage017Columns,
}

/// SSIM parameters (see the module documentation for what each one does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsimOptions {
    /// Standard deviation of the Gaussian window (1.5).
    pub sigma: f64,
    /// Window radius in standard deviations, `r = ⌊truncate·σ + 0.5⌋` (3.5).
    pub truncate: f64,
    /// Luminance constant factor (0.01).
    pub k1: f64,
    /// Contrast constant factor (0.03).
    pub k2: f64,
    /// Dynamic range of the pixel values (1 for images in [0, 1]).
    pub data_range: f64,
    /// Sample covariance (`N/(N − 1)` factor) instead of population (false).
    pub sample_covariance: bool,
    /// 2-D or Brain-Diffuser's column-wise computation.
    pub variant: SsimVariant,
}

impl SsimOptions {
    /// MindEye / scikit-image ≥ 0.20: Gaussian σ 1.5 (11 taps), K1 0.01, K2 0.03,
    /// population covariance, data range 1, 2-D.
    pub const MINDEYE: SsimOptions = SsimOptions {
        sigma: 1.5,
        truncate: 3.5,
        k1: 0.01,
        k2: 0.03,
        data_range: 1.0,
        sample_covariance: false,
        variant: SsimVariant::Skimage2d,
    };
    /// Brain-Diffuser: the same parameters, column-wise (scikit-image 0.17).
    pub const BRAIN_DIFFUSER: SsimOptions = SsimOptions {
        variant: SsimVariant::Skimage017Columns,
        ..Self::MINDEYE
    };

    /// Window radius `r = ⌊truncate·σ + 0.5⌋` (scipy's).
    pub fn radius(&self) -> usize {
        (self.truncate * self.sigma + 0.5) as usize
    }
}

impl Default for SsimOptions {
    fn default() -> Self {
        Self::MINDEYE
    }
}

/// The SSIM score and its full map.
#[derive(Debug, Clone, PartialEq)]
pub struct Ssim {
    /// Mean of the cropped map.
    pub mean: f64,
    /// Local SSIM `[h, w]` (uncropped, like scikit-image's `full=True`).
    pub map: Vec<f64>,
}

/// The normalised 1-D Gaussian window scipy's `gaussian_filter` applies:
/// `g[k] = exp(−(k − r)²/2σ²) / Σ`, `k = 0..=2r`.
pub fn gaussian_window(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as usize;
    let mut g: Vec<f64> = (0..2 * r + 1)
        .map(|k| {
            let x = k as f64 - r as f64;
            libm::exp(-0.5 / (sigma * sigma) * x * x)
        })
        .collect();
    let s: f64 = g.iter().sum();
    for v in &mut g {
        *v /= s;
    }
    g
}

fn check_options(op: &'static str, o: &SsimOptions) -> Result<()> {
    let ok = |v: f64| v.is_finite() && v >= 0.0;
    if !(o.sigma > 0.0) || !o.sigma.is_finite() || !ok(o.truncate) || !ok(o.k1) || !ok(o.k2) {
        return Err(invalid(
            op,
            format!(
                "need sigma > 0 and finite, truncate, K1, K2 ≥ 0 and finite; got sigma {}, truncate {}, K1 {}, K2 {}",
                o.sigma, o.truncate, o.k1, o.k2
            ),
        ));
    }
    if !(o.data_range > 0.0) || !o.data_range.is_finite() {
        return Err(invalid(
            op,
            format!(
                "data_range must be positive and finite, got {}",
                o.data_range
            ),
        ));
    }
    if o.truncate * o.sigma > 1e6 {
        return Err(invalid(
            op,
            format!(
                "window radius truncate·sigma = {} is absurd",
                o.truncate * o.sigma
            ),
        ));
    }
    Ok(())
}

fn check_image(op: &'static str, h: usize, w: usize, o: &SsimOptions) -> Result<()> {
    let win = 2 * o.radius() + 1;
    let too_small = match o.variant {
        SsimVariant::Skimage2d => h < win || w < win,
        SsimVariant::Skimage017Columns => h < win || w == 0,
    };
    if too_small {
        return Err(invalid(
            op,
            format!("image {h}×{w} is smaller than the {win}-tap window (win_size exceeds image extent)"),
        ));
    }
    Ok(())
}

/// Half-sample symmetric reflection of index `k` into `0..n`, for `−n ≤ k < 2n`.
#[inline]
fn reflect(k: isize, n: usize) -> usize {
    let n = n as isize;
    (if k < 0 {
        -k - 1
    } else if k >= n {
        2 * n - k - 1
    } else {
        k
    }) as usize
}

/// `dst = g ⋆ src` along axis 0 (down the columns) of `[h, w]`, reflect borders.
/// Row-wise axpy: each output row accumulates `2r + 1` contiguous input rows.
fn filter_rows(src: &[f64], dst: &mut [f64], h: usize, w: usize, g: &[f64]) {
    let r = (g.len() / 2) as isize;
    for (i, out) in dst.chunks_exact_mut(w).enumerate() {
        out.fill(0.0);
        for (k, &gk) in g.iter().enumerate() {
            let si = reflect(i as isize + k as isize - r, h);
            for (o, &s) in out.iter_mut().zip(&src[si * w..(si + 1) * w]) {
                *o += gk * s;
            }
        }
    }
}

/// `dst = g ⋆ src` along axis 1 (along each row) of `[h, w]`, reflect borders, via a
/// padded copy of the row in `pad` (`w + 2r` long).
fn filter_cols(src: &[f64], dst: &mut [f64], w: usize, g: &[f64], pad: &mut [f64]) {
    let r = g.len() / 2;
    for (row, out) in src.chunks_exact(w).zip(dst.chunks_exact_mut(w)) {
        for (p, v) in pad.iter_mut().enumerate() {
            *v = row[reflect(p as isize - r as isize, w)];
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o = g.iter().zip(&pad[j..j + g.len()]).map(|(a, b)| a * b).sum();
        }
    }
}

/// SSIM of two grayscale images `a`, `b` `[h, w]` (row-major).
///
/// Errors: a buffer that is not `h·w` long, an image smaller than the window, or
/// invalid options. NaN pixels give NaN in their window of the map and a NaN mean.
pub fn ssim<T: Element>(a: &[T], b: &[T], h: usize, w: usize, opts: &SsimOptions) -> Result<Ssim> {
    const OP: &str = "ssim";
    check_options(OP, opts)?;
    check::matrix(OP, "a", a.len(), h, w)?;
    check::matrix(OP, "b", b.len(), h, w)?;
    check_image(OP, h, w, opts)?;
    Ok(ssim_unchecked(a, b, h, w, opts))
}

fn ssim_unchecked<T: Element>(a: &[T], b: &[T], h: usize, w: usize, o: &SsimOptions) -> Ssim {
    let g = gaussian_window(o.sigma, o.truncate);
    let r = g.len() / 2;
    let two_d = o.variant == SsimVariant::Skimage2d;
    let hw = h * w;
    // The five filtered fields: a, b, a², b², ab.
    let mut fields = vec![0.0f64; 5 * hw];
    {
        let (fa, rest) = fields.split_at_mut(hw);
        let (fb, rest) = rest.split_at_mut(hw);
        let (faa, rest) = rest.split_at_mut(hw);
        let (fbb, fab) = rest.split_at_mut(hw);
        for i in 0..hw {
            let (x, y) = (a[i].wide(), b[i].wide());
            fa[i] = x;
            fb[i] = y;
            faa[i] = x * x;
            fbb[i] = y * y;
            fab[i] = x * y;
        }
    }
    let mut tmp = vec![0.0f64; hw];
    let mut pad = vec![0.0f64; w + 2 * r];
    for f in fields.chunks_exact_mut(hw) {
        filter_rows(f, &mut tmp, h, w, &g);
        if two_d {
            filter_cols(&tmp, f, w, &g, &mut pad);
        } else {
            f.copy_from_slice(&tmp);
        }
    }
    let ndim = if two_d { 2 } else { 1 };
    let np = libm::pow((2 * r + 1) as f64, ndim as f64);
    let cov = if o.sample_covariance {
        np / (np - 1.0)
    } else {
        1.0
    };
    let c1 = (o.k1 * o.data_range) * (o.k1 * o.data_range);
    let c2 = (o.k2 * o.data_range) * (o.k2 * o.data_range);
    let mut map = tmp; // reuse
    for i in 0..hw {
        let (ux, uy) = (fields[i], fields[hw + i]);
        let (uxx, uyy, uxy) = (fields[2 * hw + i], fields[3 * hw + i], fields[4 * hw + i]);
        let vx = cov * (uxx - ux * ux);
        let vy = cov * (uyy - uy * uy);
        let vxy = cov * (uxy - ux * uy);
        let num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2);
        let den = (ux * ux + uy * uy + c1) * (vx + vy + c2);
        map[i] = num / den;
    }
    let (c0, c1w) = if two_d { (r, w - r) } else { (0, w) };
    let mut sum = 0.0f64;
    for row in map[r * w..(h - r) * w].chunks_exact(w) {
        sum += row[c0..c1w].iter().sum::<f64>();
    }
    let mean = sum / ((h - 2 * r) * (c1w - c0)) as f64;
    Ssim { mean, map }
}

/// Memory layout of an RGB image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelLayout {
    /// `[3, h, w]` (PyTorch; MindEye's tensors).
    Chw,
    /// `[h, w, 3]` (numpy / PIL; scikit-image's `rgb2gray` input).
    Hwc,
}

/// scikit-image's `rgb2gray` weights (ITU-R 601-ish, as `skimage.color` states them).
pub const RGB_TO_GRAY: [f64; 3] = [0.2125, 0.7154, 0.0721];

/// Grayscale `[h, w]` of an RGB image in `layout`:
/// `0.2125 R + 0.7154 G + 0.0721 B` (`skimage.color.rgb2gray`).
///
/// Errors: a buffer that is not `3·h·w` long, or `h`/`w` zero.
pub fn rgb_to_gray<T: Element>(
    rgb: &[T],
    h: usize,
    w: usize,
    layout: ChannelLayout,
) -> Result<Vec<f64>> {
    const OP: &str = "rgb_to_gray";
    check::matrix(OP, "rgb", rgb.len(), h, numel(OP, &[3, w])?)?;
    Ok(gray_unchecked(rgb, h * w, layout))
}

fn gray_unchecked<T: Element>(rgb: &[T], hw: usize, layout: ChannelLayout) -> Vec<f64> {
    let [wr, wg, wb] = RGB_TO_GRAY;
    match layout {
        ChannelLayout::Chw => (0..hw)
            .map(|p| wr * rgb[p].wide() + wg * rgb[hw + p].wide() + wb * rgb[2 * hw + p].wide())
            .collect(),
        ChannelLayout::Hwc => rgb
            .chunks_exact(3)
            .map(|px| wr * px[0].wide() + wg * px[1].wide() + wb * px[2].wide())
            .collect(),
    }
}

/// Per-image SSIM and its mean.
#[derive(Debug, Clone, PartialEq)]
pub struct SsimBatch {
    /// SSIM of each image pair.
    pub per_image: Vec<f64>,
    /// Mean over images.
    pub mean: f64,
}

/// MindEye's SSIM evaluation: `pred` and `target` hold `n` RGB images `[n, 3, h, w]`
/// (or `[n, h, w, 3]` with [`ChannelLayout::Hwc`]), each converted with
/// [`rgb_to_gray`] and scored with [`ssim`]; the result is the mean over images
/// (MindEye resizes to 425×425 first; that is the caller's job).
///
/// Errors: as [`ssim`], with buffers of `n·3·h·w`.
pub fn ssim_rgb_batch<T: Element>(
    pred: &[T],
    target: &[T],
    n: usize,
    h: usize,
    w: usize,
    layout: ChannelLayout,
    opts: &SsimOptions,
) -> Result<SsimBatch> {
    const OP: &str = "ssim_rgb_batch";
    check_options(OP, opts)?;
    let img = numel(OP, &[3, h, w])?;
    check::matrix(OP, "pred", pred.len(), n, img)?;
    len(OP, "target", target.len(), pred.len())?;
    check_image(OP, h, w, opts)?;
    let per_image: Vec<f64> = pred
        .chunks_exact(img)
        .zip(target.chunks_exact(img))
        .map(|(p, t)| {
            let (gp, gt) = (
                gray_unchecked(p, h * w, layout),
                gray_unchecked(t, h * w, layout),
            );
            ssim_unchecked(&gp, &gt, h, w, opts).mean
        })
        .collect();
    let mean = per_image.iter().sum::<f64>() / n as f64;
    Ok(SsimBatch { per_image, mean })
}
