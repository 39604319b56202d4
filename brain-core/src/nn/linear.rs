//! `y[rows, out] = x[rows, in]·Wᵀ + b` in PyTorch's `[out, in]` layout.

use super::params::{GradsMut, Init, ParamId, ParamStore};
use crate::backend::Backend;
use crate::error::Result;
use alloc::format;

/// A fully connected layer with bias.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    /// `[d_out, d_in]`.
    pub weight: ParamId,
    /// `[d_out]`.
    pub bias: ParamId,
    /// Input features.
    pub d_in: usize,
    /// Output features.
    pub d_out: usize,
}

impl Linear {
    /// Registers `{name}.weight` and `{name}.bias`, PyTorch's default init
    /// (U(±1/√d_in) for both).
    pub fn new<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        d_in: usize,
        d_out: usize,
    ) -> Result<Self> {
        Self::with_shape(be, ps, name, d_in, d_out, &[d_out, d_in])
    }

    /// As [`Linear::new`] with the weight stored under another PyTorch shape of the
    /// same memory (a 1×1 convolution's `[out, in, 1, 1]`).
    pub fn with_shape<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        d_in: usize,
        d_out: usize,
        weight_shape: &[usize],
    ) -> Result<Self> {
        let bound = 1.0 / libm::sqrt(d_in as f64);
        let weight = ps.add(
            be,
            &format!("{name}.weight"),
            weight_shape,
            Init::Uniform { bound },
        )?;
        let bias = ps.add(
            be,
            &format!("{name}.bias"),
            &[d_out],
            Init::Uniform { bound },
        )?;
        Ok(Linear {
            weight,
            bias,
            d_in,
            d_out,
        })
    }

    /// Parameters: `d_out·(d_in + 1)`.
    pub fn param_count(&self) -> usize {
        self.d_out * (self.d_in + 1)
    }

    /// `y[rows, d_out]` (overwritten) from `x[rows, d_in]`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        x: &B::Buffer,
        y: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        be.linear_forward(
            x,
            &params[self.weight.0],
            Some(&params[self.bias.0]),
            y,
            rows,
            self.d_in,
            self.d_out,
        )
    }

    /// `dx` overwritten when given; weight and bias gradients accumulated.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        x: &B::Buffer,
        dy: &B::Buffer,
        dx: Option<&mut B::Buffer>,
        rows: usize,
    ) -> Result<()> {
        let (dw, db) = grads.two(self.weight, self.bias)?;
        be.linear_backward(
            dy,
            x,
            &params[self.weight.0],
            dx,
            Some(dw),
            Some(db),
            rows,
            self.d_in,
            self.d_out,
        )
    }
}
