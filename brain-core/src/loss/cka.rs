//! Linear CKA loss, `1 − CKA(A, B)`, on a batch: A `[n, p]`, B `[n, q]` (trailing dims
//! flattened, so token tensors `[n, m, d]` are `[n, m·d]`).
//!
//! Everything runs on the backend: K = AAᵀ and L = BBᵀ by [`Backend::gemm`], the
//! statistics by [`Backend::cka_grams_forward`], and the gradients as
//! dK = ∂/∂K (symmetrised, [`Backend::cka_grams_backward`]) followed by
//! dA += dK·A, dB += dL·B (GEMMs accumulating with β = 1). Only n×n matrices are ever
//! formed, never p×p: the cost is the four `n×n×p`-sized GEMMs.

use crate::backend::Backend;
use crate::check;
use crate::error::Result;
use crate::ops::{Gemm, HsicEstimator};
use alloc::format;

/// The CKA loss for one problem size, with its scratch buffers (K, L, dK, dL)
/// allocated once.
///
/// ```
/// use brain_core::loss::cka::CkaLoss;
/// use brain_core::reference::ReferenceBackend;
/// use brain_core::{Backend, HsicEstimator};
///
/// # fn main() -> Result<(), brain_core::BrainError> {
/// let be = ReferenceBackend::<f64>::new();
/// // n = 4 samples, A [4, 3], B [4, 2]
/// let a = be.upload(&[1.0, 0.0, 2.0, 0.5, 1.0, -1.0, 2.0, 1.0, 0.0, -1.0, 0.5, 1.0])?;
/// let b = be.upload(&[1.0, 0.5, 0.0, 1.0, 2.0, 0.0, -1.0, 1.0])?;
/// let mut cka = CkaLoss::new(&be, 4, 3, 2, HsicEstimator::Biased)?;
/// let mut loss = be.alloc(1)?;
/// cka.forward(&be, &a, &b, &mut loss)?;
/// let l = be.download_vec(&loss)?[0];
/// assert!(l > 0.0 && l < 1.0);
/// // [1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L)] of the last forward pass
/// let mut stats = be.alloc(4)?;
/// cka.statistics(&be, &mut stats)?;
/// assert_eq!(be.download_vec(&stats)?[0], l);
///
/// // The CKA of a batch with itself is 1.
/// let mut same = CkaLoss::new(&be, 4, 3, 3, HsicEstimator::Biased)?;
/// same.forward(&be, &a, &a, &mut loss)?;
/// assert!(be.download_vec(&loss)?[0].abs() < 1e-12);
///
/// // Gradients accumulate into da and db.
/// let (mut da, mut db) = (be.alloc(12)?, be.alloc(8)?);
/// cka.backward(&be, &a, &b, 1.0, Some(&mut da), Some(&mut db))?;
/// # Ok(())
/// # }
/// ```
pub struct CkaLoss<B: Backend> {
    n: usize,
    p: usize,
    q: usize,
    estimator: HsicEstimator,
    k: B::Buffer,
    l: B::Buffer,
    dk: B::Buffer,
    dl: B::Buffer,
    ready: bool,
}

const OP: &str = "CkaLoss";

impl<B: Backend> CkaLoss<B> {
    /// A loss for A `[n, p]` and B `[n, q]`. Needs n ≥ 2 (biased) or n > 3
    /// (unbiased), and p, q ≥ 1.
    pub fn new(be: &B, n: usize, p: usize, q: usize, estimator: HsicEstimator) -> Result<Self> {
        if p == 0 || q == 0 {
            return Err(check::invalid(
                OP,
                format!("feature widths p = {p}, q = {q} must be at least 1"),
            ));
        }
        let nn = check::numel(OP, &[n, n])?;
        check::numel(OP, &[n, p])?;
        check::numel(OP, &[n, q])?;
        check::cka_grams_forward(nn, nn, n, estimator, 4)?;
        Ok(CkaLoss {
            n,
            p,
            q,
            estimator,
            k: be.alloc(nn)?,
            l: be.alloc(nn)?,
            dk: be.alloc(nn)?,
            dl: be.alloc(nn)?,
            ready: false,
        })
    }

    /// (n, p, q).
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.n, self.p, self.q)
    }

    /// The HSIC estimator.
    pub fn estimator(&self) -> HsicEstimator {
        self.estimator
    }

    /// `stats = [1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L)]` (4 elements) of the last
    /// forward pass, from its saved Gram matrices.
    pub fn statistics(&self, be: &B, stats: &mut B::Buffer) -> Result<()> {
        if !self.ready {
            return Err(check::invalid(
                OP,
                "statistics need a successful forward pass first".into(),
            ));
        }
        check::len(OP, "stats", be.len(stats), 4)?;
        be.cka_grams_forward(&self.k, &self.l, self.n, self.estimator, stats)
    }

    /// `loss[0] = 1 − CKA(A, B)`; keeps K and L for [`CkaLoss::backward`].
    pub fn forward(
        &mut self,
        be: &B,
        a: &B::Buffer,
        b: &B::Buffer,
        loss: &mut B::Buffer,
    ) -> Result<()> {
        let (n, p, q) = (self.n, self.p, self.q);
        check::len(OP, "a", be.len(a), n * p)?;
        check::len(OP, "b", be.len(b), n * q)?;
        check::len(OP, "loss", be.len(loss), 1)?;
        self.ready = false;
        be.gemm(&Gemm::new(n, n, p).trans(false, true), a, a, &mut self.k)?;
        be.gemm(&Gemm::new(n, n, q).trans(false, true), b, b, &mut self.l)?;
        be.cka_grams_forward(&self.k, &self.l, n, self.estimator, loss)?;
        self.ready = true;
        Ok(())
    }

    /// Accumulate the gradient of `scale·(1 − CKA)`: `da += dK·A`, `db += dL·B`, with
    /// K and L from the last [`CkaLoss::forward`] (which must have run on the same
    /// `a` and `b`).
    pub fn backward(
        &mut self,
        be: &B,
        a: &B::Buffer,
        b: &B::Buffer,
        scale: f64,
        da: Option<&mut B::Buffer>,
        db: Option<&mut B::Buffer>,
    ) -> Result<()> {
        let (n, p, q) = (self.n, self.p, self.q);
        if !self.ready {
            return Err(check::invalid(
                OP,
                "backward needs a successful forward pass first".into(),
            ));
        }
        check::len(OP, "a", be.len(a), n * p)?;
        check::len(OP, "b", be.len(b), n * q)?;
        if let Some(da) = da.as_deref() {
            check::len(OP, "da", be.len(da), n * p)?;
        }
        if let Some(db) = db.as_deref() {
            check::len(OP, "db", be.len(db), n * q)?;
        }
        if da.is_none() && db.is_none() {
            return Ok(());
        }
        let dk = if da.is_some() {
            Some(&mut self.dk)
        } else {
            None
        };
        let dl = if db.is_some() {
            Some(&mut self.dl)
        } else {
            None
        };
        be.cka_grams_backward(&self.k, &self.l, n, self.estimator, scale, dk, dl)?;
        if let Some(da) = da {
            be.gemm(&Gemm::new(n, p, n).scale(1.0, 1.0), &self.dk, a, da)?;
        }
        if let Some(db) = db {
            be.gemm(&Gemm::new(n, q, n).scale(1.0, 1.0), &self.dl, b, db)?;
        }
        Ok(())
    }
}
