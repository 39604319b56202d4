//! LayerNorm over the last dimension and GroupNorm over NCHW, PyTorch semantics
//! (biased variance, eps 1e-5, affine weight 1 and bias 0 at start).

use super::params::{GradsMut, Init, ParamId, ParamStore};
use crate::backend::Backend;
use crate::error::Result;
use crate::ops::GroupNormShape;
use alloc::format;

/// PyTorch's default eps for both norms.
pub const NORM_EPS: f64 = 1e-5;

/// Per-row (LayerNorm) or per-(sample, group) (GroupNorm) statistics saved by the
/// forward pass for the backward pass.
pub struct NormStats<B: Backend> {
    /// Means.
    pub mean: B::Buffer,
    /// 1/√(var + eps).
    pub rstd: B::Buffer,
}

impl<B: Backend> NormStats<B> {
    /// Room for `len` statistics.
    pub fn new(be: &B, len: usize) -> Result<Self> {
        Ok(NormStats {
            mean: be.alloc(len)?,
            rstd: be.alloc(len)?,
        })
    }
}

fn affine<B: Backend>(
    be: &B,
    ps: &mut ParamStore<B>,
    name: &str,
    dim: usize,
) -> Result<(ParamId, ParamId)> {
    let w = ps.add(be, &format!("{name}.weight"), &[dim], Init::Constant(1.0))?;
    let b = ps.add(be, &format!("{name}.bias"), &[dim], Init::Constant(0.0))?;
    Ok((w, b))
}

/// LayerNorm over the last `dim` features.
#[derive(Debug, Clone, Copy)]
pub struct LayerNorm {
    /// γ `[dim]`.
    pub weight: ParamId,
    /// β `[dim]`.
    pub bias: ParamId,
    /// Normalised width.
    pub dim: usize,
}

impl LayerNorm {
    /// Registers `{name}.weight` (ones) and `{name}.bias` (zeros).
    pub fn new<B: Backend>(be: &B, ps: &mut ParamStore<B>, name: &str, dim: usize) -> Result<Self> {
        let (weight, bias) = affine(be, ps, name, dim)?;
        Ok(LayerNorm { weight, bias, dim })
    }

    /// `y[rows, dim]` from `x`; `stats` holds `rows` entries.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        x: &B::Buffer,
        y: &mut B::Buffer,
        stats: &mut NormStats<B>,
        rows: usize,
    ) -> Result<()> {
        be.layernorm_forward(
            x,
            &params[self.weight.0],
            &params[self.bias.0],
            y,
            &mut stats.mean,
            &mut stats.rstd,
            rows,
            self.dim,
            NORM_EPS,
        )
    }

    /// `dx` overwritten, γ and β gradients accumulated.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        x: &B::Buffer,
        stats: &NormStats<B>,
        dy: &B::Buffer,
        dx: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        let (dg, db) = grads.two(self.weight, self.bias)?;
        be.layernorm_backward(
            dy,
            x,
            &params[self.weight.0],
            &stats.mean,
            &stats.rstd,
            dx,
            dg,
            db,
            rows,
            self.dim,
        )
    }
}

/// GroupNorm with a per-channel affine.
#[derive(Debug, Clone, Copy)]
pub struct GroupNorm {
    /// γ `[channels]`.
    pub weight: ParamId,
    /// β `[channels]`.
    pub bias: ParamId,
    /// C.
    pub channels: usize,
    /// G (divides C).
    pub groups: usize,
    /// H·W.
    pub spatial: usize,
}

impl GroupNorm {
    /// Registers `{name}.weight` (ones) and `{name}.bias` (zeros).
    pub fn new<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        channels: usize,
        groups: usize,
        spatial: usize,
    ) -> Result<Self> {
        if groups == 0 || channels % groups != 0 {
            return Err(crate::check::invalid(
                "GroupNorm::new",
                format!("{channels} channels do not split into {groups} groups"),
            ));
        }
        let (weight, bias) = affine(be, ps, name, channels)?;
        Ok(GroupNorm {
            weight,
            bias,
            channels,
            groups,
            spatial,
        })
    }

    fn shape(&self, batch: usize) -> GroupNormShape {
        GroupNormShape {
            batch,
            channels: self.channels,
            spatial: self.spatial,
            groups: self.groups,
        }
    }

    /// `y[batch, C, spatial]` from `x`; `stats` holds `batch·groups` entries.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        x: &B::Buffer,
        y: &mut B::Buffer,
        stats: &mut NormStats<B>,
        batch: usize,
    ) -> Result<()> {
        be.groupnorm_forward(
            x,
            &params[self.weight.0],
            &params[self.bias.0],
            y,
            &mut stats.mean,
            &mut stats.rstd,
            &self.shape(batch),
            NORM_EPS,
        )
    }

    /// `dx` overwritten, γ and β gradients accumulated.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        x: &B::Buffer,
        stats: &NormStats<B>,
        dy: &B::Buffer,
        dx: &mut B::Buffer,
        batch: usize,
    ) -> Result<()> {
        let (dg, db) = grads.two(self.weight, self.bias)?;
        be.groupnorm_backward(
            dy,
            x,
            &params[self.weight.0],
            &stats.mean,
            &stats.rstd,
            dx,
            dg,
            db,
            &self.shape(batch),
        )
    }
}
