//! The two mapping models, generic over [`Backend`]: [`BrainMclip`] (paper 000) and
//! [`Havir`] (paper 003). Layer structure, tensor names and losses are fixed by
//! docs/models.md, which the PyTorch twins in `pytorch/brain_models.py` follow too.
//!
//! A model owns its [`ParamStore`]; everything that depends on the batch size (inputs,
//! targets, activations, loss scratch) lives in its `Acts`, allocated once per batch
//! size with [`Model::acts`]. A training step is then [`Model::forward`],
//! [`Model::loss`], [`Model::backward`] on the same `Acts`, with no allocation.

mod alignment;
mod brainmclip;
mod config;
mod havir;

pub use alignment::Alignment;
pub use brainmclip::{BrainMclip, BrainMclipActs};
pub use config::{Align, BrainMclipConfig, Branches, HavirConfig, ModelConfig};
pub use havir::{Havir, HavirActs};

use crate::backend::Backend;
use crate::error::Result;
use crate::nn::{Mode, ParamStore};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A table of parameter counts per module (the first two parts of each key, e.g.
/// `text.encoder`) and the total, what a model prints when it is built.
pub fn param_summary<B: Backend>(params: &ParamStore<B>) -> String {
    use core::fmt::Write;
    let mut groups: Vec<(String, usize)> = Vec::new();
    for p in params.infos() {
        let key: String = p.name.split('.').take(2).collect::<Vec<_>>().join(".");
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some(g) => g.1 += p.len,
            None => groups.push((key, p.len)),
        }
    }
    let mut s = String::new();
    for (k, n) in &groups {
        let _ = writeln!(s, "  {k:<28} {n:>13}");
    }
    let total = params.count();
    let human = match total {
        t if t >= 1_000_000_000 => format!("{:.3}B", t as f64 / 1e9),
        t if t >= 1_000_000 => format!("{:.1}M", t as f64 / 1e6),
        t => format!("{:.1}k", t as f64 / 1e3),
    };
    let _ = write!(s, "  {:<28} {total:>13}  ({human})", "total");
    s
}

/// One named per-sample array a model reads: an input or a training target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Name (`f_s`, `e_t`, …; docs/models.md).
    pub name: &'static str,
    /// Elements per sample.
    pub width: usize,
    /// Only needed for the loss (a target), not for inference.
    pub target: bool,
}

/// The value of each loss term of one forward pass, and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct LossTerms {
    /// Σ terms.
    pub total: f64,
    /// `(name, value)` in a fixed order.
    pub terms: Vec<(&'static str, f64)>,
}

/// What the trainer needs from a model.
pub trait Model<B: Backend> {
    /// Per-batch-size buffers.
    type Acts;

    /// The parameters.
    fn params(&self) -> &ParamStore<B>;
    /// The parameters, writable (optimizer, checkpoint loading).
    fn params_mut(&mut self) -> &mut ParamStore<B>;
    /// The configuration as stored in checkpoints.
    fn config(&self) -> ModelConfig;
    /// Inputs and targets, in the order [`Model::slot_mut`] indexes them.
    fn slots(&self) -> Vec<Slot>;
    /// Buffers for batches of `batch` samples.
    fn acts(&self, be: &B, batch: usize) -> Result<Self::Acts>;
    /// Batch size `acts` was built for.
    fn batch_of(&self, acts: &Self::Acts) -> usize;
    /// The device buffer of slot `i` (`[batch, width]`), to be filled before forward.
    fn slot_mut<'a>(&self, acts: &'a mut Self::Acts, i: usize) -> &'a mut B::Buffer;
    /// Forward pass from the input slots.
    fn forward(&self, be: &B, acts: &mut Self::Acts, mode: Mode) -> Result<()>;
    /// The loss of the last forward pass against the target slots (downloads the terms).
    fn loss(&self, be: &B, acts: &mut Self::Acts) -> Result<LossTerms>;
    /// Gradients of the total loss into the parameter gradients (zeroed first), after
    /// [`Model::forward`] and [`Model::loss`] with the same `mode`.
    fn backward(&mut self, be: &B, acts: &mut Self::Acts, mode: Mode) -> Result<()>;
    /// The predictions of the last forward pass, `(name, [batch, …])`.
    fn outputs<'a>(&self, acts: &'a Self::Acts) -> Vec<(&'static str, &'a B::Buffer)>;
}
