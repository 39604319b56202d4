//! An MLP unit followed by residual blocks: the embedding + backbone trunk both papers
//! put in front of their heads.

use super::mlp::{MlpUnit, ResidualActs, ResidualBlock, UnitActs};
use super::params::GradsMut;
use super::Mode;
use crate::backend::Backend;
use crate::error::Result;
use alloc::vec::Vec;

/// `blocks(embed(x))`.
#[derive(Debug, Clone)]
pub struct MlpStack {
    /// The first unit (input width → hidden).
    pub embed: MlpUnit,
    /// Residual blocks at the hidden width.
    pub blocks: Vec<ResidualBlock>,
}

/// Activations of an [`MlpStack`] for one batch size.
pub struct StackActs<B: Backend> {
    /// The embedding unit's.
    pub embed: UnitActs<B>,
    /// Each block's.
    pub blocks: Vec<ResidualActs<B>>,
}

impl<B: Backend> StackActs<B> {
    /// Buffers for `rows` rows of `stack`.
    pub fn new(be: &B, stack: &MlpStack, rows: usize) -> Result<Self> {
        let h = stack.embed.d_out();
        Ok(StackActs {
            embed: UnitActs::new(be, rows, h)?,
            blocks: stack
                .blocks
                .iter()
                .map(|_| ResidualActs::new(be, rows, h))
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// The stack's output.
    pub fn out(&self) -> &B::Buffer {
        self.blocks
            .last()
            .map(|b| &b.out)
            .unwrap_or(&self.embed.out)
    }
}

impl MlpStack {
    /// Forward from `x[rows, d_in]`; the output is `acts.out()`.
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        mode: Mode,
        x: &B::Buffer,
        a: &mut StackActs<B>,
        rows: usize,
    ) -> Result<()> {
        self.embed
            .forward(be, params, mode, x, &mut a.embed, rows)?;
        for i in 0..self.blocks.len() {
            let (done, rest) = a.blocks.split_at_mut(i);
            let input = if i == 0 {
                &a.embed.out
            } else {
                &done[i - 1].out
            };
            self.blocks[i].forward(be, params, mode, input, &mut rest[0], rows)?;
        }
        Ok(())
    }

    /// Backward through the blocks only: `d` holds the gradient at the stack output
    /// and ends holding the gradient at the embedding's output (`d2` is scratch).
    pub fn backward_blocks<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        mode: Mode,
        a: &StackActs<B>,
        d: &mut B::Buffer,
        d2: &mut B::Buffer,
        s1: &mut B::Buffer,
        s2: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        for i in (0..self.blocks.len()).rev() {
            let input = if i == 0 {
                &a.embed.out
            } else {
                &a.blocks[i - 1].out
            };
            self.blocks[i].backward(
                be,
                params,
                grads,
                mode,
                input,
                &a.blocks[i],
                d,
                s1,
                s2,
                d2,
                rows,
            )?;
            core::mem::swap(d, d2);
        }
        Ok(())
    }

    /// Backward through everything to the parameters (the input gets no gradient);
    /// `d` is clobbered.
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &[B::Buffer],
        grads: &mut GradsMut<'_, B>,
        mode: Mode,
        x: &B::Buffer,
        a: &StackActs<B>,
        d: &mut B::Buffer,
        d2: &mut B::Buffer,
        s1: &mut B::Buffer,
        s2: &mut B::Buffer,
        rows: usize,
    ) -> Result<()> {
        self.backward_blocks(be, params, grads, mode, a, d, d2, s1, s2, rows)?;
        self.embed
            .backward(be, params, grads, mode, x, &a.embed, d, s1, s2, None, rows)
    }
}
