//! SoftCLIP (MindEye's `soft_clip_loss`) and symmetric InfoNCE between predicted and
//! target embeddings, composed from [`Backend`] kernels.
//!
//! With p̂, t̂ the rows of preds and targets L2-normalised (`F.normalize`, eps 1e-12,
//! trailing dims flattened), C_pt = p̂·t̂ᵀ/τ and C_tt = t̂·t̂ᵀ/τ:
//! - SoftCLIP = ½·[mean_i −Σ_j softmax(C_tt)_ij·log_softmax(C_pt)_ij
//!   + mean_i −Σ_j softmax(C_tt)_ij·log_softmax(C_ptᵀ)_ij];
//! - InfoNCE = ½·[CE(C_pt, diag) + CE(C_ptᵀ, diag)].
//!
//! The gradient matches PyTorch autograd, including the path through softmax(C_tt)
//! into the targets (MindEye does not detach it).

use crate::backend::Backend;
use crate::check;
use crate::error::Result;
use crate::ops::{ContrastiveLoss, Gemm};

/// A contrastive loss for a fixed batch shape `[n, d]`, kind and temperature, with all
/// scratch buffers allocated once by [`ClipLoss::new`].
///
/// [`ClipLoss::backward`] uses the normalised rows and logits saved by the last
/// [`ClipLoss::forward`], which must have run on the same `preds` and `targets`.
///
/// ```
/// use brain_core::loss::contrastive::ClipLoss;
/// use brain_core::{reference::ReferenceBackend, Backend, ContrastiveLoss};
///
/// # fn main() -> Result<(), brain_core::BrainError> {
/// let be = ReferenceBackend::<f64>::new();
/// // two predictions and two targets of 3 features
/// let preds = be.upload(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])?;
/// let targets = be.upload(&[1.0, 0.1, 0.0, 0.0, 1.0, 0.1])?;
/// let mut clip = ClipLoss::new(&be, 2, 3, ContrastiveLoss::SoftClip, 0.005)?;
/// let mut loss = be.alloc(1)?;
/// clip.forward(&be, &preds, &targets, &mut loss)?;
/// assert!(be.download_vec(&loss)?[0] >= 0.0);
///
/// // gradients accumulate into the caller's buffers
/// let mut dpreds = be.alloc(6)?;
/// clip.backward(&be, &preds, &targets, 1.0, Some(&mut dpreds), None)?;
/// assert!(be.download_vec(&dpreds)?.iter().all(|g| g.is_finite()));
///
/// // wrong shapes are an error, not a panic
/// assert!(clip.forward(&be, &loss, &targets, &mut dpreds).is_err());
/// # Ok(())
/// # }
/// ```
pub struct ClipLoss<B: Backend> {
    n: usize,
    d: usize,
    kind: ContrastiveLoss,
    temperature: f64,
    /// p̂, t̂ [n, d] and their norms [n].
    p_hat: B::Buffer,
    t_hat: B::Buffer,
    p_norm: B::Buffer,
    t_norm: B::Buffer,
    /// C_pt, C_tt [n, n] and their gradients; `sym` = dC_tt + dC_ttᵀ, `eye` = I [n, n].
    c_pt: B::Buffer,
    c_tt: B::Buffer,
    dc_pt: B::Buffer,
    dc_tt: B::Buffer,
    sym: B::Buffer,
    eye: B::Buffer,
    /// Gradient w.r.t. a normalised input, then w.r.t. the raw input [n, d].
    d_hat: B::Buffer,
    d_raw: B::Buffer,
}

impl<B: Backend> ClipLoss<B> {
    /// Allocate the loss for `n` rows of `d` features (trailing dims flattened),
    /// temperature `τ > 0` (MindBridge: 0.005; MindEye anneals 0.004 → 0.0075).
    pub fn new(
        be: &B,
        n: usize,
        d: usize,
        kind: ContrastiveLoss,
        temperature: f64,
    ) -> Result<Self> {
        check::contrastive_loss_config(n, d, temperature)?;
        let (nd, nn) = (n * d, n * n);
        let soft = kind == ContrastiveLoss::SoftClip;
        let small = |len: usize| be.alloc(if soft { len } else { 0 });
        let mut eye = small(nn)?;
        if soft {
            let mut host = alloc::vec![<B::Elem as num_traits::Zero>::zero(); nn];
            for i in 0..n {
                host[i * n + i] = <B::Elem as num_traits::One>::one();
            }
            be.write(&mut eye, &host)?;
        }
        Ok(ClipLoss {
            n,
            d,
            kind,
            temperature,
            p_hat: be.alloc(nd)?,
            t_hat: be.alloc(nd)?,
            p_norm: be.alloc(n)?,
            t_norm: be.alloc(n)?,
            c_pt: be.alloc(nn)?,
            c_tt: small(nn)?,
            dc_pt: be.alloc(nn)?,
            dc_tt: small(nn)?,
            sym: small(nn)?,
            eye,
            d_hat: be.alloc(nd)?,
            d_raw: be.alloc(nd)?,
        })
    }

    /// Rows `n`.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Features per row `d`.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Which loss.
    pub fn kind(&self) -> ContrastiveLoss {
        self.kind
    }
    /// Temperature τ.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    fn soft(&self) -> bool {
        self.kind == ContrastiveLoss::SoftClip
    }

    /// `loss[0]` = the loss of `preds`, `targets` `[n, d]`; saves p̂, t̂ and the logits.
    pub fn forward(
        &mut self,
        be: &B,
        preds: &B::Buffer,
        targets: &B::Buffer,
        loss: &mut B::Buffer,
    ) -> Result<()> {
        let (n, d) = (self.n, self.d);
        self.check_inputs(be, "ClipLoss::forward", preds, targets)?;
        check::len("ClipLoss::forward", "loss", be.len(loss), 1)?;
        be.l2_normalize_rows_forward(preds, &mut self.p_hat, &mut self.p_norm, n, d)?;
        be.l2_normalize_rows_forward(targets, &mut self.t_hat, &mut self.t_norm, n, d)?;
        // C_pt = p̂·t̂ᵀ/τ, C_tt = t̂·t̂ᵀ/τ
        let g = Gemm::new(n, n, d)
            .trans(false, true)
            .scale(1.0 / self.temperature, 0.0);
        be.gemm(&g, &self.p_hat, &self.t_hat, &mut self.c_pt)?;
        if self.soft() {
            be.gemm(&g, &self.t_hat, &self.t_hat, &mut self.c_tt)?;
            be.contrastive_forward(self.kind, &self.c_pt, Some(&self.c_tt), n, loss)
        } else {
            be.contrastive_forward(self.kind, &self.c_pt, None, n, loss)
        }
    }

    /// Accumulate the gradient of `scale·loss` into `dpreds` and/or `dtargets`
    /// `[n, d]` (`+=`), from the state of the last [`ClipLoss::forward`].
    pub fn backward(
        &mut self,
        be: &B,
        preds: &B::Buffer,
        targets: &B::Buffer,
        scale: f64,
        dpreds: Option<&mut B::Buffer>,
        dtargets: Option<&mut B::Buffer>,
    ) -> Result<()> {
        const OP: &str = "ClipLoss::backward";
        let (n, d) = (self.n, self.d);
        self.check_inputs(be, OP, preds, targets)?;
        if let Some(g) = &dpreds {
            check::len(OP, "dpreds", be.len(g), n * d)?;
        }
        if let Some(g) = &dtargets {
            check::len(OP, "dtargets", be.len(g), n * d)?;
        }
        if dpreds.is_none() && dtargets.is_none() {
            return Ok(());
        }
        let inv_t = 1.0 / self.temperature;
        // dC_pt, and dC_tt only when the targets need it.
        let want_tt = self.soft() && dtargets.is_some();
        be.contrastive_backward(
            self.kind,
            &self.c_pt,
            if self.soft() { Some(&self.c_tt) } else { None },
            n,
            scale,
            &mut self.dc_pt,
            if want_tt { Some(&mut self.dc_tt) } else { None },
        )?;
        if let Some(dp) = dpreds {
            // dp̂ = dC_pt·t̂/τ
            let g = Gemm::new(n, d, n).scale(inv_t, 0.0);
            be.gemm(&g, &self.dc_pt, &self.t_hat, &mut self.d_hat)?;
            be.l2_normalize_rows_backward(&self.d_hat, preds, &self.p_norm, &mut self.d_raw, n, d)?;
            be.axpy(1.0, &self.d_raw, dp)?;
        }
        if let Some(dt) = dtargets {
            // dt̂ = dC_ptᵀ·p̂/τ (+ (dC_tt + dC_ttᵀ)·t̂/τ for SoftCLIP)
            let g = Gemm::new(n, d, n).trans(true, false).scale(inv_t, 0.0);
            be.gemm(&g, &self.dc_pt, &self.p_hat, &mut self.d_hat)?;
            if want_tt {
                // sym = dC_tt + I·dC_ttᵀ: the n×n transpose costs n³, saving a GEMM over d.
                be.copy(&self.dc_tt, &mut self.sym)?;
                let tr = Gemm::new(n, n, n).trans(false, true).scale(1.0, 1.0);
                be.gemm(&tr, &self.eye, &self.dc_tt, &mut self.sym)?;
                let g = Gemm::new(n, d, n).scale(inv_t, 1.0);
                be.gemm(&g, &self.sym, &self.t_hat, &mut self.d_hat)?;
            }
            be.l2_normalize_rows_backward(
                &self.d_hat,
                targets,
                &self.t_norm,
                &mut self.d_raw,
                n,
                d,
            )?;
            be.axpy(1.0, &self.d_raw, dt)?;
        }
        Ok(())
    }

    fn check_inputs(&self, be: &B, op: &'static str, p: &B::Buffer, t: &B::Buffer) -> Result<()> {
        let nd = self.n * self.d;
        check::len(op, "preds", be.len(p), nd)?;
        check::len(op, "targets", be.len(t), nd)
    }
}
