//! The multi-granularity loss of BrainMCLIP: `L_MG(A, B) = (1 − CKA(A, B)) + Sims(A, B)`
//! on token tensors A, B `[batch, tokens, dim]`: CKA over the batch (each sample
//! flattened to `tokens·dim`) for the global structure, Sims for each sample's token
//! self-similarity profile.

use crate::backend::Backend;
use crate::check;
use crate::error::Result;
use crate::loss::cka::CkaLoss;
use crate::ops::HsicEstimator;

const OP: &str = "MultiGranularityLoss";

/// `L_MG` for one shape, with its CKA scratch and the two parts kept readable.
pub struct MultiGranularityLoss<B: Backend> {
    batch: usize,
    tokens: usize,
    dim: usize,
    cka: CkaLoss<B>,
    cka_loss: B::Buffer,
    sims_loss: B::Buffer,
}

impl<B: Backend> MultiGranularityLoss<B> {
    /// With the biased HSIC estimator (as the paper): needs batch ≥ 2, tokens ≥ 2.
    pub fn new(be: &B, batch: usize, tokens: usize, dim: usize) -> Result<Self> {
        Self::with_estimator(be, batch, tokens, dim, HsicEstimator::Biased)
    }

    /// With a chosen HSIC estimator (the unbiased one needs batch > 3).
    pub fn with_estimator(
        be: &B,
        batch: usize,
        tokens: usize,
        dim: usize,
        estimator: HsicEstimator,
    ) -> Result<Self> {
        let total = check::numel(OP, &[batch, tokens, dim])?;
        check::sims_forward(total, total, batch, tokens, dim, 1)?;
        let width = tokens * dim;
        Ok(MultiGranularityLoss {
            batch,
            tokens,
            dim,
            cka: CkaLoss::new(be, batch, width, width, estimator)?,
            cka_loss: be.alloc(1)?,
            sims_loss: be.alloc(1)?,
        })
    }

    /// (batch, tokens, dim).
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.batch, self.tokens, self.dim)
    }

    /// `1 − CKA` of the last forward pass (1 element).
    pub fn cka_loss(&self) -> &B::Buffer {
        &self.cka_loss
    }

    /// The Sims part of the last forward pass (1 element).
    pub fn sims_loss(&self) -> &B::Buffer {
        &self.sims_loss
    }

    /// `stats = [1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L)]` of the last forward pass.
    pub fn cka_statistics(&self, be: &B, stats: &mut B::Buffer) -> Result<()> {
        self.cka.statistics(be, stats)
    }

    /// `total[0] = (1 − CKA) + Sims`.
    pub fn forward(
        &mut self,
        be: &B,
        a: &B::Buffer,
        b: &B::Buffer,
        total: &mut B::Buffer,
    ) -> Result<()> {
        check::len(OP, "total", be.len(total), 1)?;
        self.cka.forward(be, a, b, &mut self.cka_loss)?;
        let (batch, tokens, dim) = (self.batch, self.tokens, self.dim);
        be.sims_forward(a, b, batch, tokens, dim, &mut self.sims_loss)?;
        be.add(&self.cka_loss, &self.sims_loss, total)
    }

    /// Accumulate the gradient of `scale·L_MG` into `da` and `db` (after a forward
    /// pass on the same `a`, `b`).
    pub fn backward(
        &mut self,
        be: &B,
        a: &B::Buffer,
        b: &B::Buffer,
        scale: f64,
        mut da: Option<&mut B::Buffer>,
        mut db: Option<&mut B::Buffer>,
    ) -> Result<()> {
        let (batch, tokens, dim) = (self.batch, self.tokens, self.dim);
        // Check the Sims call first so a bad length fails before anything accumulates.
        check::sims_backward(
            be.len(a),
            be.len(b),
            batch,
            tokens,
            dim,
            scale,
            da.as_deref().map(|x| be.len(x)),
            db.as_deref().map(|x| be.len(x)),
        )?;
        self.cka
            .backward(be, a, b, scale, da.as_deref_mut(), db.as_deref_mut())?;
        be.sims_backward(a, b, batch, tokens, dim, scale, da, db)
    }
}
