//! Token heads: hidden state → `[tokens, dim]` embeddings, directly (`Linear(h → T·D)`)
//! or through a low-rank token projection (`Linear(h → T·r)`, then `Linear(r → D)` on
//! every token), which cuts the head from h·T·D to h·T·r + r·D weights.

use super::linear::Linear;
use super::params::{GradsMut, ParamStore};
use crate::backend::Backend;
use crate::error::Result;
use alloc::format;

fn wrong_acts() -> crate::BrainError {
    crate::check::invalid("Head", "HeadActs were built for a direct head".into())
}

/// A token head.
#[derive(Debug, Clone, Copy)]
pub enum Head {
    /// `{name}`: `Linear(h → T·D)`.
    Direct {
        /// The projection.
        linear: Linear,
        /// T.
        tokens: usize,
    },
    /// `{name}.proj`: `Linear(h → T·r)`; `{name}.token`: `Linear(r → D)` per token.
    LowRank {
        /// Hidden → per-token codes.
        proj: Linear,
        /// Code → embedding, shared by every token.
        token: Linear,
        /// T.
        tokens: usize,
    },
}

/// Intermediate of a low-rank head (empty for a direct one).
pub struct HeadActs<B: Backend> {
    /// `[rows, T·r]` codes.
    codes: Option<B::Buffer>,
    /// Their gradient.
    dcodes: Option<B::Buffer>,
}

impl<B: Backend> HeadActs<B> {
    /// Buffers for `rows` rows.
    pub fn new(be: &B, head: &Head, rows: usize) -> Result<Self> {
        Ok(match head {
            Head::Direct { .. } => HeadActs {
                codes: None,
                dcodes: None,
            },
            Head::LowRank { proj, .. } => HeadActs {
                codes: Some(be.alloc(rows * proj.d_out)?),
                dcodes: Some(be.alloc(rows * proj.d_out)?),
            },
        })
    }
}

impl Head {
    /// `rank = None`: direct; `Some(r)`: low-rank.
    pub fn new<B: Backend>(
        be: &B,
        ps: &mut ParamStore<B>,
        name: &str,
        hidden: usize,
        tokens: usize,
        dim: usize,
        rank: Option<usize>,
    ) -> Result<Self> {
        Ok(match rank {
            None => Head::Direct {
                linear: Linear::new(be, ps, name, hidden, tokens * dim)?,
                tokens,
            },
            Some(r) => Head::LowRank {
                proj: Linear::new(be, ps, &format!("{name}.proj"), hidden, tokens * r)?,
                token: Linear::new(be, ps, &format!("{name}.token"), r, dim)?,
                tokens,
            },
        })
    }

    /// Output elements per row: T·D.
    pub fn out_width(&self) -> usize {
        match self {
            Head::Direct { linear, .. } => linear.d_out,
            Head::LowRank { token, tokens, .. } => tokens * token.d_out,
        }
    }

    /// `y[rows, T·D]` from `x[rows, h]`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        x: &B::Buffer,
        acts: &mut HeadActs<B>,
        y: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        match self {
            Head::Direct { linear, .. } => linear.forward(be, params, x, y, rows),
            Head::LowRank {
                proj,
                token,
                tokens,
            } => {
                let codes = acts.codes.as_mut().ok_or_else(wrong_acts)?;
                proj.forward(be, params, x, codes, rows)?;
                token.forward(be, params, codes, y, rows * tokens)
            }
        }
    }

    /// `dx[rows, h]` (overwritten) and parameter gradients from `dy[rows, T·D]`.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        x: &B::Buffer,
        acts: &mut HeadActs<B>,
        dy: &B::Buffer,
        dx: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        match self {
            Head::Direct { linear, .. } => {
                linear.backward(be, params, grads, x, dy, Some(dx), rows)
            }
            Head::LowRank {
                proj,
                token,
                tokens,
            } => {
                let codes = acts.codes.as_ref().ok_or_else(wrong_acts)?;
                let dcodes = acts.dcodes.as_mut().ok_or_else(wrong_acts)?;
                token.backward(be, params, grads, codes, dy, Some(dcodes), rows * tokens)?;
                proj.backward(be, params, grads, x, dcodes, Some(dx), rows)
            }
        }
    }
}
