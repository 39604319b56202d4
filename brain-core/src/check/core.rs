//! Checks of the foundation kernels (GEMM, Linear, norms, dropout, upsampling, AdamW)
//! and the helpers every check uses.

use crate::error::{BrainError, Result};
use crate::ops::{AdamW, Dropout, Gemm, GroupNormShape, UpsampleShape};
use alloc::format;

/// `a·b·…` with overflow reported as an error.
pub fn numel(op: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(BrainError::SizeOverflow { op })
}

/// Fail unless `got == expected`.
pub fn len(op: &'static str, arg: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(BrainError::ShapeMismatch {
            op,
            arg,
            expected,
            got,
        })
    }
}

/// An [`BrainError::InvalidArgument`].
pub fn invalid(op: &'static str, reason: alloc::string::String) -> BrainError {
    BrainError::InvalidArgument { op, reason }
}

/// GEMM: every matrix of the batch must lie inside its buffer.
pub fn gemm(g: &Gemm, a: usize, b: usize, c: usize) -> Result<()> {
    const OP: &str = "gemm";
    if g.batch == 0 || g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let need = |arg: &'static str, stride: usize, mat: usize, got: usize| -> Result<()> {
        let last = numel(OP, &[g.batch - 1, stride])?;
        let end = last
            .checked_add(mat)
            .ok_or(BrainError::SizeOverflow { op: OP })?;
        if got < end {
            return Err(BrainError::ShapeMismatch {
                op: OP,
                arg,
                expected: end,
                got,
            });
        }
        Ok(())
    };
    need("a", g.stride_a, numel(OP, &[g.m, g.k])?, a)?;
    need("b", g.stride_b, numel(OP, &[g.k, g.n])?, b)?;
    let mn = numel(OP, &[g.m, g.n])?;
    need("c", g.stride_c, mn, c)?;
    if g.batch > 1 && g.stride_c < mn {
        return Err(invalid(
            OP,
            format!(
                "stride_c {} < m·n {}: C matrices would overlap",
                g.stride_c, mn
            ),
        ));
    }
    if !g.alpha.is_finite() || !g.beta.is_finite() {
        return Err(invalid(
            OP,
            format!("alpha {} and beta {} must be finite", g.alpha, g.beta),
        ));
    }
    Ok(())
}

/// Linear forward: x `[rows, in]`, weight `[out, in]`, bias `[out]`, y `[rows, out]`.
pub fn linear(
    op: &'static str,
    x: usize,
    w: usize,
    bias: Option<usize>,
    y: usize,
    rows: usize,
    in_f: usize,
    out_f: usize,
) -> Result<()> {
    len(op, "x", x, numel(op, &[rows, in_f])?)?;
    len(op, "weight", w, numel(op, &[out_f, in_f])?)?;
    if let Some(b) = bias {
        len(op, "bias", b, out_f)?;
    }
    len(op, "y", y, numel(op, &[rows, out_f])?)
}

/// Bias over `[outer, channels, inner]`.
pub fn bias(
    op: &'static str,
    y: usize,
    b: usize,
    outer: usize,
    channels: usize,
    inner: usize,
) -> Result<()> {
    len(op, "y", y, numel(op, &[outer, channels, inner])?)?;
    len(op, "bias", b, channels)
}

/// Layer norm over `[rows, cols]`.
pub fn layernorm(
    op: &'static str,
    x: usize,
    gamma: usize,
    beta: usize,
    stats: (usize, usize),
    rows: usize,
    cols: usize,
) -> Result<()> {
    if cols == 0 {
        return Err(invalid(op, "cols must be at least 1".into()));
    }
    len(op, "x", x, numel(op, &[rows, cols])?)?;
    len(op, "gamma", gamma, cols)?;
    len(op, "beta", beta, cols)?;
    len(op, "mean", stats.0, rows)?;
    len(op, "rstd", stats.1, rows)
}

/// Group norm over NCHW.
pub fn groupnorm(
    op: &'static str,
    x: usize,
    gamma: usize,
    beta: usize,
    stats: (usize, usize),
    s: &GroupNormShape,
) -> Result<()> {
    if s.groups == 0 || s.channels % s.groups != 0 {
        return Err(invalid(
            op,
            format!(
                "channels {} must be a positive multiple of groups {}",
                s.channels, s.groups
            ),
        ));
    }
    if s.spatial == 0 {
        return Err(invalid(op, "spatial size must be at least 1".into()));
    }
    len(op, "x", x, numel(op, &[s.batch, s.channels, s.spatial])?)?;
    len(op, "gamma", gamma, s.channels)?;
    len(op, "beta", beta, s.channels)?;
    let ng = numel(op, &[s.batch, s.groups])?;
    len(op, "mean", stats.0, ng)?;
    len(op, "rstd", stats.1, ng)
}

/// Dropout probability in [0, 1).
pub fn dropout(op: &'static str, d: &Dropout) -> Result<()> {
    if !(d.p >= 0.0 && d.p < 1.0) {
        return Err(invalid(
            op,
            format!("dropout probability {} must be in [0, 1)", d.p),
        ));
    }
    Ok(())
}

/// Upsample: factor ≥ 1, lengths match.
pub fn upsample(op: &'static str, x: usize, y: usize, s: &UpsampleShape) -> Result<()> {
    if s.factor == 0 {
        return Err(invalid(op, "upsampling factor must be at least 1".into()));
    }
    let input = numel(op, &[s.batch, s.channels, s.height, s.width])?;
    len(op, "x", x, input)?;
    len(op, "y", y, numel(op, &[input, s.factor, s.factor])?)
}

/// Row reductions over `[rows, cols]`.
pub fn reduce_rows(op: &'static str, x: usize, out: usize, rows: usize, cols: usize) -> Result<()> {
    if cols == 0 {
        return Err(invalid(op, "cols must be at least 1".into()));
    }
    len(op, "x", x, numel(op, &[rows, cols])?)?;
    len(op, "out", out, rows)
}

/// AdamW hyper-parameters.
pub fn adamw(cfg: &AdamW) -> Result<()> {
    const OP: &str = "adamw_step";
    if cfg.step == 0 {
        return Err(invalid(OP, "step counts from 1".into()));
    }
    if !(0.0..1.0).contains(&cfg.beta1) || !(0.0..1.0).contains(&cfg.beta2) {
        return Err(invalid(
            OP,
            format!("betas ({}, {}) must lie in [0, 1)", cfg.beta1, cfg.beta2),
        ));
    }
    if !(cfg.lr >= 0.0) || !(cfg.eps > 0.0) || !(cfg.weight_decay >= 0.0) {
        return Err(invalid(
            OP,
            format!(
                "lr {}, eps {}, weight_decay {}: need lr ≥ 0, eps > 0, wd ≥ 0",
                cfg.lr, cfg.eps, cfg.weight_decay
            ),
        ));
    }
    if let Some(c) = cfg.max_grad_norm {
        if !(c > 0.0) {
            return Err(invalid(OP, format!("max_grad_norm {c} must be positive")));
        }
    }
    Ok(())
}
