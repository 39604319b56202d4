//! Checks of the similarity losses: MSE, linear CKA on Gram matrices, Sims.

use super::core::*;
use crate::error::Result;
use crate::ops::HsicEstimator;
use alloc::format;

/// A loss backward's `scale` (∂total/∂loss) must be finite.
fn loss_scale(op: &'static str, scale: f64) -> Result<()> {
    if scale.is_finite() {
        Ok(())
    } else {
        Err(invalid(op, format!("scale {scale} must be finite")))
    }
}

/// MSE forward: `a`, `b` of the same non-zero length, `loss` of one element.
pub fn mse_forward(a: usize, b: usize, loss: usize) -> Result<()> {
    const OP: &str = "mse_forward";
    if a == 0 {
        return Err(invalid(OP, "the mean of zero elements is undefined".into()));
    }
    len(OP, "b", b, a)?;
    len(OP, "loss", loss, 1)
}

/// MSE backward: `a`, `b` and the gradients given all of one non-zero length.
pub fn mse_backward(
    a: usize,
    b: usize,
    scale: f64,
    da: Option<usize>,
    db: Option<usize>,
) -> Result<()> {
    const OP: &str = "mse_backward";
    if a == 0 {
        return Err(invalid(OP, "the mean of zero elements is undefined".into()));
    }
    len(OP, "b", b, a)?;
    if let Some(da) = da {
        len(OP, "da", da, a)?;
    }
    if let Some(db) = db {
        len(OP, "db", db, a)?;
    }
    loss_scale(OP, scale)
}

/// Smallest `n` each HSIC estimator is defined for: the biased one divides by
/// (n−1)², the unbiased one by n(n−3) and (n−1)(n−2).
fn cka_n(op: &'static str, n: usize, estimator: HsicEstimator) -> Result<()> {
    match estimator {
        HsicEstimator::Biased if n < 2 => Err(invalid(
            op,
            format!("the biased HSIC needs n ≥ 2 samples (got n = {n})"),
        )),
        HsicEstimator::Unbiased if n < 4 => Err(invalid(
            op,
            format!("the unbiased HSIC needs n > 3 samples (got n = {n})"),
        )),
        _ => Ok(()),
    }
}

/// CKA forward on Gram matrices: `k`, `l` `[n, n]`, `out` `[1]` (the loss) or `[4]`
/// (the loss and the three HSIC values).
pub fn cka_grams_forward(
    k: usize,
    l: usize,
    n: usize,
    estimator: HsicEstimator,
    out: usize,
) -> Result<()> {
    const OP: &str = "cka_grams_forward";
    cka_n(OP, n, estimator)?;
    let nn = numel(OP, &[n, n])?;
    len(OP, "k", k, nn)?;
    len(OP, "l", l, nn)?;
    if out == 1 {
        Ok(())
    } else {
        len(OP, "out", out, 4)
    }
}

/// CKA backward on Gram matrices: `k`, `l` and the gradients given `[n, n]`.
pub fn cka_grams_backward(
    k: usize,
    l: usize,
    n: usize,
    estimator: HsicEstimator,
    scale: f64,
    dk: Option<usize>,
    dl: Option<usize>,
) -> Result<()> {
    const OP: &str = "cka_grams_backward";
    cka_n(OP, n, estimator)?;
    let nn = numel(OP, &[n, n])?;
    len(OP, "k", k, nn)?;
    len(OP, "l", l, nn)?;
    if let Some(dk) = dk {
        len(OP, "dk", dk, nn)?;
    }
    if let Some(dl) = dl {
        len(OP, "dl", dl, nn)?;
    }
    loss_scale(OP, scale)
}

/// Sims shape: `batch ≥ 1`, `tokens ≥ 2` (token 0 is compared with the others),
/// `dim ≥ 1`; returns `batch·tokens·dim`.
fn sims_shape(op: &'static str, batch: usize, tokens: usize, dim: usize) -> Result<usize> {
    if batch == 0 || tokens < 2 || dim == 0 {
        return Err(invalid(
            op,
            format!(
                "need batch ≥ 1, tokens ≥ 2, dim ≥ 1 (got batch {batch}, tokens {tokens}, dim {dim})"
            ),
        ));
    }
    numel(op, &[batch, tokens, dim])
}

/// Sims forward: `a`, `b` `[batch, tokens, dim]`, `loss` `[1]`.
pub fn sims_forward(
    a: usize,
    b: usize,
    batch: usize,
    tokens: usize,
    dim: usize,
    loss: usize,
) -> Result<()> {
    const OP: &str = "sims_forward";
    let total = sims_shape(OP, batch, tokens, dim)?;
    len(OP, "a", a, total)?;
    len(OP, "b", b, total)?;
    len(OP, "loss", loss, 1)
}

/// Sims backward: `a`, `b` and the gradients given `[batch, tokens, dim]`.
pub fn sims_backward(
    a: usize,
    b: usize,
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: f64,
    da: Option<usize>,
    db: Option<usize>,
) -> Result<()> {
    const OP: &str = "sims_backward";
    let total = sims_shape(OP, batch, tokens, dim)?;
    len(OP, "a", a, total)?;
    len(OP, "b", b, total)?;
    if let Some(da) = da {
        len(OP, "da", da, total)?;
    }
    if let Some(db) = db {
        len(OP, "db", db, total)?;
    }
    loss_scale(OP, scale)
}
