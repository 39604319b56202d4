//! The MLP unit `Dropout(act(LayerNorm(Linear(x))))` both papers build from, and the
//! residual block `x + unit(x)` of their backbones.

use super::linear::Linear;
use super::norm::{LayerNorm, NormStats};
use super::params::{GradsMut, ParamStore};
use super::Mode;
use crate::backend::Backend;
use crate::error::Result;
use crate::ops::Activation;
use alloc::format;

/// `Dropout(act(LayerNorm(Linear(x))))`: an encoder / embedding (`Embed` in
/// docs/models.md) or the body of a residual block.
#[derive(Debug, Clone, Copy)]
pub struct MlpUnit {
    /// `{name}.linear`.
    pub linear: Linear,
    /// `{name}.norm`.
    pub norm: LayerNorm,
    /// The non-linearity.
    pub act: Activation,
    /// Dropout probability.
    pub p: f64,
    /// Dropout call site (see [`Mode::dropout`]).
    pub site: u64,
}

/// What an [`MlpUnit`] keeps for its backward pass, for one batch size.
pub struct UnitActs<B: Backend> {
    /// Linear output.
    pub lin: B::Buffer,
    /// LayerNorm output.
    pub ln: B::Buffer,
    /// LayerNorm statistics.
    pub stats: NormStats<B>,
    /// Activation output.
    pub act: B::Buffer,
    /// Dropout output: the unit's output.
    pub out: B::Buffer,
}

impl<B: Backend> UnitActs<B> {
    /// Buffers for `rows` rows of width `dim`.
    pub fn new(be: &B, rows: usize, dim: usize) -> Result<Self> {
        Ok(UnitActs {
            lin: be.alloc(rows * dim)?,
            ln: be.alloc(rows * dim)?,
            stats: NormStats::new(be, rows)?,
            act: be.alloc(rows * dim)?,
            out: be.alloc(rows * dim)?,
        })
    }
}

impl MlpUnit {
    /// Registers `{name}.linear.*` `[d_out, d_in]` and `{name}.norm.*` `[d_out]`.
    pub fn new<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        d_in: usize,
        d_out: usize,
        act: Activation,
        p: f64,
        site: u64,
    ) -> Result<Self> {
        Ok(MlpUnit {
            linear: Linear::new(be, ps, &format!("{name}.linear"), d_in, d_out)?,
            norm: LayerNorm::new(be, ps, &format!("{name}.norm"), d_out)?,
            act,
            p,
            site,
        })
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.linear.d_out
    }

    /// `acts.out[rows, d_out]` from `x[rows, d_in]`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        mode: Mode,
        x: &B::Buffer,
        acts: &mut UnitActs<B>,
        rows: usize,
    ) -> Result<()> {
        self.linear.forward(be, params, x, &mut acts.lin, rows)?;
        self.norm
            .forward(be, params, &acts.lin, &mut acts.ln, &mut acts.stats, rows)?;
        be.activation_forward(self.act, &acts.ln, &mut acts.act)?;
        match mode.dropout(self.p, self.site) {
            Some(d) => be.dropout_forward(&d, &acts.act, &mut acts.out),
            None => be.copy(&acts.act, &mut acts.out),
        }
    }

    /// Backward from `d_out`; `dx` (overwritten) when the input needs a gradient.
    /// `s1`, `s2` are scratch buffers of `rows·d_out` elements.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        mode: Mode,
        x: &B::Buffer,
        acts: &UnitActs<B>,
        d_out: &B::Buffer,
        s1: &mut B::Buffer,
        s2: &mut B::Buffer,
        dx: Option<&mut B::Buffer>,
        rows: usize,
    ) -> Result<()> {
        match mode.dropout(self.p, self.site) {
            Some(d) => be.dropout_backward(&d, d_out, s1)?,
            None => be.copy(d_out, s1)?,
        }
        be.activation_backward(self.act, &acts.ln, s1, s2)?;
        self.norm
            .backward(be, params, grads, &acts.lin, &acts.stats, s2, s1, rows)?;
        self.linear.backward(be, params, grads, x, s1, dx, rows)
    }
}

/// `x + MlpUnit(x)` at constant width.
#[derive(Debug, Clone, Copy)]
pub struct ResidualBlock {
    /// The body.
    pub unit: MlpUnit,
}

/// Activations of a [`ResidualBlock`].
pub struct ResidualActs<B: Backend> {
    /// The body's.
    pub unit: UnitActs<B>,
    /// `x + body(x)`.
    pub out: B::Buffer,
}

impl<B: Backend> ResidualActs<B> {
    /// Buffers for `rows` rows of width `dim`.
    pub fn new(be: &B, rows: usize, dim: usize) -> Result<Self> {
        Ok(ResidualActs {
            unit: UnitActs::new(be, rows, dim)?,
            out: be.alloc(rows * dim)?,
        })
    }
}

impl ResidualBlock {
    /// Registers `{name}.linear.*` `[dim, dim]` and `{name}.norm.*`.
    pub fn new<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        dim: usize,
        act: Activation,
        p: f64,
        site: u64,
    ) -> Result<Self> {
        Ok(ResidualBlock {
            unit: MlpUnit::new(be, ps, name, dim, dim, act, p, site)?,
        })
    }

    /// `acts.out = x + body(x)`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        mode: Mode,
        x: &B::Buffer,
        acts: &mut ResidualActs<B>,
        rows: usize,
    ) -> Result<()> {
        self.unit
            .forward(be, params, mode, x, &mut acts.unit, rows)?;
        be.add(x, &acts.unit.out, &mut acts.out)
    }

    /// `dx = d_out + body'(x)ᵀ·d_out` (overwritten; `dx` must not be `d_out`).
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        mode: Mode,
        x: &B::Buffer,
        acts: &ResidualActs<B>,
        d_out: &B::Buffer,
        s1: &mut B::Buffer,
        s2: &mut B::Buffer,
        dx: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        self.unit.backward(
            be,
            params,
            grads,
            mode,
            x,
            &acts.unit,
            d_out,
            s1,
            s2,
            Some(&mut *dx),
            rows,
        )?;
        be.axpy(1.0, d_out, dx)
    }
}
