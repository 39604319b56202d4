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
//!
//! The normalised rows are never formed: C_pt = diag(r)·(P·Tᵀ)·diag(s)/τ with
//! r, s the inverse row norms, so the forward pass is one Gram pass over the raw
//! inputs that also yields their row norms ([`Backend::clip_grams_forward`]), and the
//! backward pass is n×n coefficient arithmetic ([`Backend::clip_logits_backward`])
//! followed by one pass applying the coefficients to the raw inputs
//! ([`Backend::clip_inputs_backward`]): each `[n, d]` input is read about twice in
//! all, against a dozen passes with materialised p̂, t̂ and their gradients.

use crate::backend::Backend;
use crate::check;
use crate::error::Result;
use crate::ops::ContrastiveLoss;

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
    /// Squared row norms of preds and targets [n].
    p_sq: B::Buffer,
    t_sq: B::Buffer,
    /// Gram matrices of the raw inputs, G_pt = P·Tᵀ and (SoftCLIP) G_tt = T·Tᵀ [n, n].
    g_pt: B::Buffer,
    g_tt: B::Buffer,
    /// Logits C_pt, C_tt [n, n] and their gradients.
    c_pt: B::Buffer,
    c_tt: B::Buffer,
    dc_pt: B::Buffer,
    dc_tt: B::Buffer,
    /// Coefficients of the input gradients: dP += w_pt·T + d_p·P, dT += w_ptᵀ·P + w_tt·T.
    w_pt: B::Buffer,
    d_p: B::Buffer,
    w_tt: B::Buffer,
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
        let nn = n * n;
        let soft = kind == ContrastiveLoss::SoftClip;
        let small = |len: usize| be.alloc(if soft { len } else { 0 });
        Ok(ClipLoss {
            n,
            d,
            kind,
            temperature,
            p_sq: be.alloc(n)?,
            t_sq: be.alloc(n)?,
            g_pt: be.alloc(nn)?,
            g_tt: small(nn)?,
            c_pt: be.alloc(nn)?,
            c_tt: small(nn)?,
            dc_pt: be.alloc(nn)?,
            dc_tt: small(nn)?,
            w_pt: be.alloc(nn)?,
            d_p: be.alloc(nn)?,
            w_tt: be.alloc(nn)?,
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

    /// `loss[0]` = the loss of `preds`, `targets` `[n, d]`; saves the Gram matrices,
    /// row norms and logits for [`ClipLoss::backward`].
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
        let soft = self.soft();
        be.clip_grams_forward(
            self.kind,
            preds,
            targets,
            n,
            d,
            &mut self.p_sq,
            &mut self.t_sq,
            &mut self.g_pt,
            soft.then_some(&mut self.g_tt),
        )?;
        let tau = self.temperature;
        if soft {
            be.clip_logits_forward(
                self.kind,
                &self.g_pt,
                Some(&self.g_tt),
                &self.p_sq,
                &self.t_sq,
                n,
                tau,
                &mut self.c_pt,
                Some(&mut self.c_tt),
            )?;
            be.contrastive_forward(self.kind, &self.c_pt, Some(&self.c_tt), n, loss)
        } else {
            be.clip_logits_forward(
                self.kind,
                &self.g_pt,
                None,
                &self.p_sq,
                &self.t_sq,
                n,
                tau,
                &mut self.c_pt,
                None,
            )?;
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
        // dC_pt, and dC_tt only when the targets need it.
        let soft = self.soft();
        let want_tt = soft && dtargets.is_some();
        be.contrastive_backward(
            self.kind,
            &self.c_pt,
            soft.then_some(&self.c_tt),
            n,
            scale,
            &mut self.dc_pt,
            want_tt.then_some(&mut self.dc_tt),
        )?;
        be.clip_logits_backward(
            self.kind,
            &self.c_pt,
            soft.then_some(&self.c_tt),
            &self.dc_pt,
            want_tt.then_some(&self.dc_tt),
            &self.p_sq,
            &self.t_sq,
            n,
            self.temperature,
            &mut self.w_pt,
            dpreds.is_some().then_some(&mut self.d_p),
            dtargets.is_some().then_some(&mut self.w_tt),
        )?;
        be.clip_inputs_backward(
            self.kind, &self.w_pt, &self.d_p, &self.w_tt, preds, targets, n, d, dpreds, dtargets,
        )
    }

    fn check_inputs(&self, be: &B, op: &'static str, p: &B::Buffer, t: &B::Buffer) -> Result<()> {
        let nd = self.n * self.d;
        check::len(op, "preds", be.len(p), nd)?;
        check::len(op, "targets", be.len(t), nd)
    }
}
