//! A 1×1 convolution on NCHW maps (`Conv2d(C → C', kernel 1)`): per sample
//! `y[C', HW] = W[C', C]·x[C, HW] + b`, so strided-batched GEMMs with the weight
//! broadcast (stride 0) over the batch.

use super::linear::Linear;
use super::params::{GradsMut, ParamStore};
use crate::backend::Backend;
use crate::error::Result;
use crate::ops::Gemm;

/// `Conv2d(c_in → c_out, kernel 1)` with bias; weight stored `[c_out, c_in, 1, 1]`.
#[derive(Debug, Clone, Copy)]
pub struct ChannelMix {
    /// Weight and bias, the weight `[c_out, c_in]` in memory.
    pub linear: Linear,
    /// H·W.
    pub spatial: usize,
}

/// Scratch of a [`ChannelMix`] backward pass for one batch size.
pub struct ChannelMixScratch<B: Backend> {
    /// Per-sample weight gradients `[batch, c_out, c_in]`.
    per_sample: B::Buffer,
    /// Ones `[batch]`, to sum them with one GEMM.
    ones: B::Buffer,
}

impl<B: Backend> ChannelMixScratch<B> {
    /// For `batch` samples.
    pub fn new(be: &B, mix: &ChannelMix, batch: usize) -> Result<Self> {
        let mut ones = be.alloc(batch)?;
        be.fill(&mut ones, 1.0)?;
        Ok(ChannelMixScratch {
            per_sample: be.alloc(batch * mix.linear.d_out * mix.linear.d_in)?,
            ones,
        })
    }
}

impl ChannelMix {
    /// Registers `{name}.weight` `[c_out, c_in, 1, 1]` and `{name}.bias` `[c_out]`.
    pub fn new<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        c_in: usize,
        c_out: usize,
        spatial: usize,
    ) -> Result<Self> {
        Ok(ChannelMix {
            linear: Linear::with_shape(be, ps, name, c_in, c_out, &[c_out, c_in, 1, 1])?,
            spatial,
        })
    }

    /// `y[batch, c_out, HW]` from `x[batch, c_in, HW]`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        x: &B::Buffer,
        y: &mut B::Buffer,
        batch: usize,
    ) -> Result<()> {
        let (ci, co, hw) = (self.linear.d_in, self.linear.d_out, self.spatial);
        let g = Gemm::new(co, hw, ci).batched(batch, 0, ci * hw, co * hw);
        be.gemm(&g, &params[self.linear.weight.0], x, y)?;
        be.bias_add(y, &params[self.linear.bias.0], batch, co, hw)
    }

    /// `dx` overwritten; weight and bias gradients accumulated.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        x: &B::Buffer,
        dy: &B::Buffer,
        dx: &mut B::Buffer,
        scratch: &mut ChannelMixScratch<B>,
        batch: usize,
    ) -> Result<()> {
        let (ci, co, hw) = (self.linear.d_in, self.linear.d_out, self.spatial);
        // dx_n[C, HW] = Wᵀ[C, C'] · dy_n[C', HW]
        let gx = Gemm::new(ci, hw, co)
            .trans(true, false)
            .batched(batch, 0, co * hw, ci * hw);
        be.gemm(&gx, &params[self.linear.weight.0], dy, dx)?;
        // dW_n[C', C] = dy_n[C', HW] · x_nᵀ, then dW += Σ_n dW_n as ones[1, N] · dW_all[N, C'·C].
        let gw = Gemm::new(co, ci, hw)
            .trans(false, true)
            .batched(batch, co * hw, ci * hw, co * ci);
        be.gemm(&gw, dy, x, &mut scratch.per_sample)?;
        let (dw, db) = grads.two(self.linear.weight, self.linear.bias)?;
        let sum = Gemm::new(1, co * ci, batch).scale(1.0, 1.0);
        be.gemm(&sum, &scratch.ones, &scratch.per_sample, dw)?;
        be.bias_backward(dy, db, batch, co, hw)
    }
}
