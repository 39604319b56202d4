//! `align(E, Ê)`: the loss between target and predicted token embeddings, one of the
//! options of BrainMCLIP's Table 4, as a composite over the loss kernels.

use super::config::Align;
use crate::backend::Backend;
use crate::error::Result;
use crate::loss::cka::CkaLoss;
use crate::loss::contrastive::ClipLoss;
use crate::ops::{ContrastiveLoss, HsicEstimator};
use alloc::vec::Vec;

/// One alignment loss for `[batch, tokens, dim]` embeddings.
pub struct Alignment<B: Backend> {
    batch: usize,
    tokens: usize,
    dim: usize,
    mse: Option<B::Buffer>,
    cka: Option<(CkaLoss<B>, B::Buffer)>,
    sims: Option<B::Buffer>,
    clip: Option<(ClipLoss<B>, B::Buffer)>,
}

impl<B: Backend> Alignment<B> {
    /// Scratch and term buffers for `kind` at this shape.
    pub fn new(
        be: &B,
        kind: Align,
        batch: usize,
        tokens: usize,
        dim: usize,
        temperature: f64,
    ) -> Result<Self> {
        let width = tokens * dim;
        let (mse, cka, sims, clip) = match kind {
            Align::Mg => (false, true, true, None),
            Align::MseInfoNce => (true, false, false, Some(ContrastiveLoss::InfoNce)),
            Align::MseSoftClip => (true, false, false, Some(ContrastiveLoss::SoftClip)),
            Align::MseSims => (true, false, true, None),
            Align::MseCka => (true, true, false, None),
            Align::MseCkaSims => (true, true, true, None),
        };
        let one = || be.alloc(1);
        Ok(Alignment {
            batch,
            tokens,
            dim,
            mse: if mse { Some(one()?) } else { None },
            cka: if cka {
                let loss = CkaLoss::new(be, batch, width, width, HsicEstimator::Biased)?;
                Some((loss, one()?))
            } else {
                None
            },
            sims: if sims { Some(one()?) } else { None },
            clip: match clip {
                Some(k) => Some((ClipLoss::new(be, batch, width, k, temperature)?, one()?)),
                None => None,
            },
        })
    }

    /// Compute every term of `align(target, pred)`.
    pub fn forward(&mut self, be: &B, target: &B::Buffer, pred: &B::Buffer) -> Result<()> {
        let (n, t, d) = (self.batch, self.tokens, self.dim);
        if let Some(l) = &mut self.mse {
            be.mse_forward(target, pred, l)?;
        }
        if let Some((cka, l)) = &mut self.cka {
            cka.forward(be, target, pred, l)?;
        }
        if let Some(l) = &mut self.sims {
            be.sims_forward(target, pred, n, t, d, l)?;
        }
        if let Some((clip, l)) = &mut self.clip {
            clip.forward(be, pred, target, l)?;
        }
        Ok(())
    }

    /// `(term, 1-element buffer)` of the last forward pass, suffixes `mse`, `cka`
    /// (1 − CKA), `sims`, `clip`.
    pub fn terms(&self) -> Vec<(&'static str, &B::Buffer)> {
        let mut v = Vec::new();
        if let Some(l) = &self.mse {
            v.push(("mse", l));
        }
        if let Some((_, l)) = &self.cka {
            v.push(("cka", l));
        }
        if let Some(l) = &self.sims {
            v.push(("sims", l));
        }
        if let Some((_, l)) = &self.clip {
            v.push(("clip", l));
        }
        v
    }

    /// `dpred += ∂align/∂pred`.
    pub fn backward(
        &mut self,
        be: &B,
        target: &B::Buffer,
        pred: &B::Buffer,
        dpred: &mut B::Buffer,
    ) -> Result<()> {
        let (n, t, d) = (self.batch, self.tokens, self.dim);
        if self.mse.is_some() {
            be.mse_backward(target, pred, 1.0, None, Some(&mut *dpred))?;
        }
        if let Some((cka, _)) = &mut self.cka {
            cka.backward(be, target, pred, 1.0, None, Some(&mut *dpred))?;
        }
        if self.sims.is_some() {
            be.sims_backward(target, pred, n, t, d, 1.0, None, Some(&mut *dpred))?;
        }
        if let Some((clip, _)) = &mut self.clip {
            clip.backward(be, pred, target, 1.0, Some(&mut *dpred), None)?;
        }
        Ok(())
    }
}
