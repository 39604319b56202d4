//! AdamW moments for every parameter of a store, stepped by the fused kernel.

use crate::backend::{AdamWTensor, Backend};
use crate::check;
use crate::error::Result;
use crate::nn::ParamStore;
use crate::ops::AdamW;
use alloc::vec::Vec;

/// Optimizer state: hyper-parameters, step count, and the two moments per tensor.
pub struct AdamWState<B: Backend> {
    /// Hyper-parameters (`lr` is the base rate; the schedule scales it per step).
    pub cfg: AdamW,
    /// Steps taken.
    pub step: u64,
    exp_avg: Vec<B::Buffer>,
    exp_avg_sq: Vec<B::Buffer>,
    grad_norm: B::Buffer,
}

impl<B: Backend> AdamWState<B> {
    /// Zero moments shaped like `params`.
    pub fn new(be: &B, params: &ParamStore<B>, cfg: AdamW) -> Result<Self> {
        check::adamw(&cfg)?;
        let alloc_all = || -> Result<Vec<B::Buffer>> {
            params.infos().iter().map(|p| be.alloc(p.len)).collect()
        };
        Ok(AdamWState {
            cfg,
            step: 0,
            exp_avg: alloc_all()?,
            exp_avg_sq: alloc_all()?,
            grad_norm: be.alloc(1)?,
        })
    }

    /// First and second moments, in the store's order.
    pub fn moments(&self) -> (&[B::Buffer], &[B::Buffer]) {
        (&self.exp_avg, &self.exp_avg_sq)
    }

    /// Writable moments (checkpoint loading).
    pub fn moments_mut(&mut self) -> (&mut [B::Buffer], &mut [B::Buffer]) {
        (&mut self.exp_avg, &mut self.exp_avg_sq)
    }

    /// One step at learning rate `lr` (clipping per `cfg.max_grad_norm`).
    pub fn step(&mut self, be: &B, params: &mut ParamStore<B>, lr: f64) -> Result<()> {
        self.step += 1;
        let cfg = AdamW {
            lr,
            step: self.step,
            ..self.cfg
        };
        let (values, grads) = params.values_and_grads_mut();
        let mut tensors: Vec<AdamWTensor<'_, B>> = values
            .iter_mut()
            .zip(grads)
            .zip(self.exp_avg.iter_mut().zip(self.exp_avg_sq.iter_mut()))
            .map(|((param, grad), (exp_avg, exp_avg_sq))| AdamWTensor {
                param,
                grad,
                exp_avg,
                exp_avg_sq,
            })
            .collect();
        be.adamw_step(&cfg, &mut tensors, Some(&mut self.grad_norm))
    }

    /// Global gradient norm (before clipping) of the last step; downloads one value.
    pub fn last_grad_norm(&self, be: &B) -> Result<f64> {
        let v = be.download_vec(&self.grad_norm)?;
        Ok(crate::element::Element::to_f64(v[0]))
    }
}
