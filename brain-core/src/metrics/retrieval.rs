//! Top-1 retrieval over cosine similarity (MindEye's image / brain retrieval).
//!
//! Embeddings are flattened per sample (`[n, 257, 768]` is `[n, d = 257·768]`) and
//! L2-normalised, and `sim[i][j] = cos(pred_i, target_j)`.
//! - **forward** (pred → target): prediction `i` retrieves `argmax_j sim[i][j]`;
//!   correct when that is `i`.
//! - **backward** (target → pred): target `j` retrieves `argmax_i sim[i][j]`.
//!
//! Accuracies are fractions in [0, 1]. `argmax` returns the first maximum, as
//! `numpy.argmax` / `torch.argmax` do (and the first NaN if there is one). A zero
//! embedding has no direction: its similarities are NaN, and an accuracy computed
//! from a NaN similarity is NaN (propagated, never silently counted).
//!
//! MindEye reports the mean over 30 random subsets of 300 test samples
//! ([`retrieval_top1_subsets`] with [`SubsetSampling::MINDEYE`]); the subsets here are
//! drawn deterministically from [`crate::philox`] (see [`subset_indices`]), so the
//! numbers are reproducible on every machine but are not numpy's draws.

use super::check;
use super::correlation::{cross_dots, normalize_rows};
use crate::check::invalid;
use crate::element::Element;
use crate::error::Result;
use crate::philox;
use alloc::format;
use alloc::vec::Vec;

/// Full-set top-1 retrieval.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieval {
    /// Fraction of predictions whose most similar target is their own.
    pub forward: f64,
    /// Fraction of targets whose most similar prediction is their own.
    pub backward: f64,
    /// `argmax_j sim[i][j]` for each prediction `i`.
    pub fwd_argmax: Vec<usize>,
    /// `argmax_i sim[i][j]` for each target `j`.
    pub bwd_argmax: Vec<usize>,
}

/// How the random subsets are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubsetSampling {
    /// Number of subsets averaged over.
    pub subsets: usize,
    /// Samples per subset (drawn without replacement).
    pub size: usize,
    /// Philox seed.
    pub seed: u64,
}

impl SubsetSampling {
    /// MindEye's evaluation: 30 subsets of 300 (seed 0).
    pub const MINDEYE: SubsetSampling = SubsetSampling {
        subsets: 30,
        size: 300,
        seed: 0,
    };
}

impl Default for SubsetSampling {
    fn default() -> Self {
        Self::MINDEYE
    }
}

/// Retrieval averaged over random subsets.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsetRetrieval {
    /// Mean forward top-1 accuracy over the subsets.
    pub forward: f64,
    /// Mean backward top-1 accuracy over the subsets.
    pub backward: f64,
    /// Forward accuracy of each subset.
    pub per_subset_forward: Vec<f64>,
    /// Backward accuracy of each subset.
    pub per_subset_backward: Vec<f64>,
}

/// `sim[i·n + j] = cos(pred_i, target_j)` for `pred`, `target` `[n, d]` (`[n, n]`,
/// row-major). A zero row gives NaN similarities.
pub fn cosine_similarity_matrix<T: Element>(
    pred: &[T],
    target: &[T],
    n: usize,
    d: usize,
) -> Result<Vec<f64>> {
    const OP: &str = "cosine_similarity_matrix";
    check::matrix(OP, "pred", pred.len(), n, d)?;
    check::matrix(OP, "target", target.len(), n, d)?;
    Ok(cross_dots(
        &normalize_rows(pred, n, d),
        &normalize_rows(target, n, d),
        n,
        n,
        d,
    ))
}

/// First index of the maximum of `values` (numpy semantics: the first NaN wins).
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let (mut best_i, mut best) = (0usize, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v.is_nan() {
            return i;
        }
        if i == 0 || v > best {
            best_i = i;
            best = v;
        }
    }
    best_i
}

/// Top-1 retrieval over the whole set of `n` samples, `pred`, `target` `[n, d]`.
///
/// Errors: `n` or `d` zero, or a buffer of the wrong length.
pub fn retrieval_top1<T: Element>(
    pred: &[T],
    target: &[T],
    n: usize,
    d: usize,
) -> Result<Retrieval> {
    let sim = cosine_similarity_matrix(pred, target, n, d)?;
    let fwd_argmax: Vec<usize> = (0..n)
        .map(|i| argmax(sim[i * n..(i + 1) * n].iter().copied()))
        .collect();
    let bwd_argmax: Vec<usize> = (0..n)
        .map(|j| argmax((0..n).map(|i| sim[i * n + j])))
        .collect();
    let nan = sim.iter().any(|v| v.is_nan());
    let acc = |am: &[usize]| {
        if nan {
            f64::NAN
        } else {
            am.iter().enumerate().filter(|&(i, &a)| a == i).count() as f64 / n as f64
        }
    };
    Ok(Retrieval {
        forward: acc(&fwd_argmax),
        backward: acc(&bwd_argmax),
        fwd_argmax,
        bwd_argmax,
    })
}

/// The indices of subset `subset` of [`retrieval_top1_subsets`]: `size` distinct
/// indices of `0..n` by a partial Fisher–Yates shuffle of the identity, where step
/// `k` swaps position `k` with `k + ⌊w_k·(n − k) / 2³²⌋`, `w_k` being word `k` of the
/// Philox stream `(seed, offset = subset)`. (The bias of that multiply-shift is below
/// `n / 2³²`.) Panics only if `size > n`; the public entry point checks that.
pub fn subset_indices(n: usize, size: usize, seed: u64, subset: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    fill_subset(&mut perm, size, seed, subset);
    perm.truncate(size);
    perm
}

/// Partial Fisher–Yates of `perm` (reset to the identity first) into its first `size`.
fn fill_subset(perm: &mut [usize], size: usize, seed: u64, subset: usize) {
    let n = perm.len();
    for (i, p) in perm.iter_mut().enumerate() {
        *p = i;
    }
    for k in 0..size {
        let w = philox::word(seed, subset as u64, k as u64) as u64;
        let j = k + ((w * (n - k) as u64) >> 32) as usize;
        perm.swap(k, j);
    }
}

/// Top-1 retrieval averaged over `sampling.subsets` random subsets of
/// `sampling.size` samples each (MindEye: 30 × 300). Within a subset `S` the
/// candidates are only the members of `S`. The full `n × n` similarity matrix is
/// computed once and each subset reads its `size × size` block.
///
/// Errors: as [`retrieval_top1`], plus `size` zero or larger than `n`, or zero subsets.
pub fn retrieval_top1_subsets<T: Element>(
    pred: &[T],
    target: &[T],
    n: usize,
    d: usize,
    sampling: SubsetSampling,
) -> Result<SubsetRetrieval> {
    const OP: &str = "retrieval_top1_subsets";
    check::matrix(OP, "pred", pred.len(), n, d)?;
    check::matrix(OP, "target", target.len(), n, d)?;
    let SubsetSampling {
        subsets,
        size,
        seed,
    } = sampling;
    if size == 0 || size > n || subsets == 0 {
        return Err(invalid(
            OP,
            format!(
                "need 1 ≤ subset size ≤ n and at least one subset; got size {size}, n {n}, {subsets} subsets"
            ),
        ));
    }
    let sim = cosine_similarity_matrix(pred, target, n, d)?;
    let mut perm: Vec<usize> = (0..n).collect();
    let (mut per_f, mut per_b) = (Vec::with_capacity(subsets), Vec::with_capacity(subsets));
    for t in 0..subsets {
        fill_subset(&mut perm, size, seed, t);
        let s = &perm[..size];
        let mut nan = false;
        let (mut hit_f, mut hit_b) = (0usize, 0usize);
        for (a, &i) in s.iter().enumerate() {
            let row = &sim[i * n..(i + 1) * n];
            nan |= s.iter().any(|&j| row[j].is_nan());
            hit_f += (argmax(s.iter().map(|&j| row[j])) == a) as usize;
            hit_b += (argmax(s.iter().map(|&k| sim[k * n + i])) == a) as usize;
        }
        let acc = |h: usize| {
            if nan {
                f64::NAN
            } else {
                h as f64 / size as f64
            }
        };
        per_f.push(acc(hit_f));
        per_b.push(acc(hit_b));
    }
    Ok(SubsetRetrieval {
        forward: per_f.iter().sum::<f64>() / subsets as f64,
        backward: per_b.iter().sum::<f64>() / subsets as f64,
        per_subset_forward: per_f,
        per_subset_backward: per_b,
    })
}
