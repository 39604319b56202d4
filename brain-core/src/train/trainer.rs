//! The training loop over any [`Model`].

use super::dataset::Dataset;
use super::optimizer::AdamWState;
use super::schedule::LrSchedule;
use crate::backend::Backend;
use crate::check;
use crate::element::Element;
use crate::error::Result;
use crate::model::{LossTerms, Model};
use crate::nn::Mode;
use crate::ops::AdamW;
use crate::philox;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// How to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step; the last partial batch of an epoch is dropped (every step
    /// sees the same batch size, which CKA and the contrastive losses depend on).
    pub batch_size: usize,
    /// AdamW hyper-parameters; `lr` is the peak rate of the schedule,
    /// `max_grad_norm` clips the global gradient norm.
    pub optimizer: AdamW,
    /// Learning-rate schedule over the whole run.
    pub schedule: LrSchedule,
    /// Seed of shuffling and dropout.
    pub seed: u64,
    /// Evaluate every this many epochs (0: never).
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement.
    pub patience: Option<usize>,
}

impl TrainConfig {
    fn validate(&self, n_train: usize) -> Result<()> {
        const OP: &str = "TrainConfig";
        if self.batch_size < 2 {
            return Err(check::invalid(OP, "batch_size must be ≥ 2 (CKA and the contrastive losses compare samples of a batch)".into()));
        }
        if n_train < self.batch_size {
            return Err(check::invalid(
                OP,
                format!(
                    "{n_train} training samples are fewer than one batch of {}",
                    self.batch_size
                ),
            ));
        }
        check::adamw(&self.optimizer)
    }

    /// Optimizer steps in the whole run for `n_train` samples.
    pub fn total_steps(&self, n_train: usize) -> u64 {
        (self.epochs * (n_train / self.batch_size.max(1))) as u64
    }
}

/// Where a run stands; saved in checkpoints.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// Best evaluation loss so far.
    pub best_eval: Option<f64>,
    /// Evaluations since the best one.
    pub bad_evals: usize,
    /// Set when early stopping ended the run.
    pub stopped_early: bool,
    /// One entry per completed epoch.
    pub history: Vec<EpochLog>,
}

/// One step, for progress reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct StepLog {
    /// Epoch (0-based) the step belongs to.
    pub epoch: usize,
    /// Step number (0-based).
    pub step: u64,
    /// Steps in the whole run.
    pub total_steps: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Loss terms of the batch (before the update).
    pub loss: LossTerms,
}

/// One epoch's summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean training loss over its steps.
    pub train_loss: f64,
    /// Evaluation loss, when evaluated.
    pub eval_loss: Option<f64>,
}

/// Hooks called by the loop: progress bars, logging, checkpoints.
pub trait Observer<B: Backend, M: Model<B>> {
    /// After every step.
    fn on_step(&mut self, _log: &StepLog) -> Result<()> {
        Ok(())
    }
    /// After every epoch (and its evaluation), with everything a checkpoint needs.
    fn on_epoch(
        &mut self,
        _be: &B,
        _model: &M,
        _opt: &AdamWState<B>,
        _state: &TrainState,
    ) -> Result<()> {
        Ok(())
    }
}

/// Observes nothing.
impl<B: Backend, M: Model<B>> Observer<B, M> for () {}

/// The permutation of `0..n` used in epoch `epoch`: Fisher–Yates driven by Philox
/// stream `(seed, epoch)`.
pub fn shuffled(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        let w = philox::word(seed, epoch as u64, k as u64) as u64;
        let j = ((w * (k as u64 + 1)) >> 32) as usize;
        idx.swap(k, j);
    }
    idx
}

/// Write the rows `idx` of every slot the model reads into its buffers.
fn load_batch<B: Backend, M: Model<B>>(
    be: &B,
    model: &M,
    acts: &mut M::Acts,
    data: &Dataset,
    idx: &[usize],
    staging: &mut Vec<B::Elem>,
    with_targets: bool,
) -> Result<()> {
    for (i, slot) in model.slots().iter().enumerate() {
        if slot.target && !with_targets {
            continue;
        }
        let (src, width) = data.get(slot.name).ok_or_else(|| {
            check::invalid(
                "Trainer",
                format!("the data has no array `{}` the model needs", slot.name),
            )
        })?;
        if width != slot.width {
            return Err(check::invalid(
                "Trainer",
                format!(
                    "`{}` has {width} values per sample, the model needs {}",
                    slot.name, slot.width
                ),
            ));
        }
        staging.clear();
        for &r in idx {
            staging.extend(
                src[r * width..(r + 1) * width]
                    .iter()
                    .map(|&v| B::Elem::from_f64(v as f64)),
            );
        }
        be.write(model.slot_mut(acts, i), staging)?;
    }
    Ok(())
}

/// Split `n` samples into consecutive batches of at most `batch` with sizes differing
/// by at most one (so at most two batch sizes, each allocated once).
fn even_batches(n: usize, batch: usize) -> Vec<(usize, usize)> {
    let count = n.div_ceil(batch.max(1));
    let (base, extra) = (n / count.max(1), n % count.max(1));
    let mut out = Vec::with_capacity(count);
    let mut start = 0;
    for i in 0..count {
        let len = base + usize::from(i < extra);
        out.push((start, len));
        start += len;
    }
    out
}

/// Mean loss over `data` (evaluation mode), batches of about `batch` samples.
pub fn evaluate<B: Backend, M: Model<B>>(
    be: &B,
    model: &M,
    data: &Dataset,
    batch: usize,
) -> Result<f64> {
    evaluate_cached(be, model, data, batch, &mut Vec::new())
}

/// [`evaluate`] reusing the per-batch-size buffers in `acts` across calls.
fn evaluate_cached<B: Backend, M: Model<B>>(
    be: &B,
    model: &M,
    data: &Dataset,
    batch: usize,
    acts: &mut Vec<(usize, M::Acts)>,
) -> Result<f64> {
    let mut staging = Vec::new();
    let (mut sum, mut count) = (0.0, 0usize);
    for (start, len) in even_batches(data.len(), batch) {
        let idx: Vec<usize> = (start..start + len).collect();
        let pos = match acts.iter().position(|(l, _)| *l == len) {
            Some(p) => p,
            None => {
                acts.push((len, model.acts(be, len)?));
                acts.len() - 1
            }
        };
        let a = &mut acts[pos].1;
        load_batch(be, model, a, data, &idx, &mut staging, true)?;
        model.forward(be, a, Mode::Eval)?;
        sum += model.loss(be, a)?.total * len as f64;
        count += len;
    }
    Ok(sum / count.max(1) as f64)
}

/// Every output of the model for every sample of `data` (evaluation mode), as
/// `(name, [n, …] values)`.
pub fn predict<B: Backend, M: Model<B>>(
    be: &B,
    model: &M,
    data: &Dataset,
    batch: usize,
) -> Result<Vec<(String, Vec<f32>)>> {
    let mut acts: Vec<(usize, M::Acts)> = Vec::new();
    let mut staging = Vec::new();
    let mut out: Vec<(String, Vec<f32>)> = Vec::new();
    for (start, len) in even_batches(data.len(), batch) {
        let idx: Vec<usize> = (start..start + len).collect();
        let pos = match acts.iter().position(|(l, _)| *l == len) {
            Some(p) => p,
            None => {
                acts.push((len, model.acts(be, len)?));
                acts.len() - 1
            }
        };
        let a = &mut acts[pos].1;
        load_batch(be, model, a, data, &idx, &mut staging, false)?;
        model.forward(be, a, Mode::Eval)?;
        for (k, (name, buf)) in model.outputs(a).into_iter().enumerate() {
            if out.len() <= k {
                out.push((name.into(), Vec::new()));
            }
            let host = be.download_vec(buf)?;
            out[k].1.extend(host.iter().map(|v| v.to_f64() as f32));
        }
    }
    Ok(out)
}

/// A model, its optimizer and where the run stands.
pub struct Trainer<B: Backend, M: Model<B>> {
    /// The model being trained.
    pub model: M,
    /// Its optimizer state.
    pub opt: AdamWState<B>,
    /// Progress.
    pub state: TrainState,
    /// The run's settings.
    pub cfg: TrainConfig,
    /// Evaluation buffers, allocated at the first evaluation and kept.
    eval_acts: Vec<(usize, M::Acts)>,
}

impl<B: Backend, M: Model<B>> Trainer<B, M> {
    /// A fresh run.
    pub fn new(be: &B, model: M, cfg: TrainConfig) -> Result<Self> {
        let opt = AdamWState::new(be, model.params(), cfg.optimizer)?;
        Ok(Trainer {
            model,
            opt,
            state: TrainState::default(),
            cfg,
            eval_acts: Vec::new(),
        })
    }

    /// Continue a run from restored parts (a checkpoint).
    pub fn resume(model: M, opt: AdamWState<B>, state: TrainState, cfg: TrainConfig) -> Self {
        Trainer {
            model,
            opt,
            state,
            cfg,
            eval_acts: Vec::new(),
        }
    }

    /// Train until `cfg.epochs` epochs are done or early stopping fires.
    pub fn run(
        &mut self,
        be: &B,
        train: &Dataset,
        eval: Option<&Dataset>,
        observer: &mut dyn Observer<B, M>,
    ) -> Result<&TrainState> {
        self.run_until(be, train, eval, observer, self.cfg.epochs)
    }

    /// As [`Trainer::run`] but stop once `epoch_limit` epochs are complete (the
    /// schedule still spans `cfg.epochs`): a run cut short, to be resumed later.
    pub fn run_until(
        &mut self,
        be: &B,
        train: &Dataset,
        eval: Option<&Dataset>,
        observer: &mut dyn Observer<B, M>,
        epoch_limit: usize,
    ) -> Result<&TrainState> {
        let cfg = self.cfg;
        cfg.validate(train.len())?;
        let total = cfg.total_steps(train.len());
        let per_epoch = train.len() / cfg.batch_size;
        let mut acts = self.model.acts(be, cfg.batch_size)?;
        let mut staging = Vec::new();
        while self.state.epoch < cfg.epochs.min(epoch_limit) && !self.state.stopped_early {
            let epoch = self.state.epoch;
            let order = shuffled(train.len(), cfg.seed, epoch);
            let mut loss_sum = 0.0;
            for b in 0..per_epoch {
                let idx = &order[b * cfg.batch_size..(b + 1) * cfg.batch_size];
                load_batch(be, &self.model, &mut acts, train, idx, &mut staging, true)?;
                let step = self.state.step;
                let mode = Mode::Train {
                    seed: cfg.seed,
                    step,
                };
                self.model.forward(be, &mut acts, mode)?;
                let loss = self.model.loss(be, &mut acts)?;
                if !loss.total.is_finite() {
                    return Err(check::invalid(
                        "Trainer",
                        format!(
                            "the loss became {} at step {step} (epoch {epoch})",
                            loss.total
                        ),
                    ));
                }
                self.model.backward(be, &mut acts, mode)?;
                let lr = cfg.schedule.lr(cfg.optimizer.lr, step, total);
                self.opt.step(be, self.model.params_mut(), lr)?;
                self.state.step += 1;
                loss_sum += loss.total;
                observer.on_step(&StepLog {
                    epoch,
                    step,
                    total_steps: total,
                    lr,
                    loss,
                })?;
            }
            let evaluate_now = cfg.eval_every > 0 && (epoch + 1) % cfg.eval_every == 0;
            let eval_loss = match (eval, evaluate_now) {
                (Some(data), true) => Some(evaluate_cached(
                    be,
                    &self.model,
                    data,
                    cfg.batch_size,
                    &mut self.eval_acts,
                )?),
                _ => None,
            };
            if let Some(l) = eval_loss {
                if self.state.best_eval.is_none_or(|b| l < b) {
                    self.state.best_eval = Some(l);
                    self.state.bad_evals = 0;
                } else {
                    self.state.bad_evals += 1;
                    if cfg.patience.is_some_and(|p| self.state.bad_evals >= p) {
                        self.state.stopped_early = true;
                    }
                }
            }
            self.state.history.push(EpochLog {
                epoch,
                train_loss: loss_sum / per_epoch as f64,
                eval_loss,
            });
            self.state.epoch += 1;
            observer.on_epoch(be, &self.model, &self.opt, &self.state)?;
        }
        Ok(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation_and_depends_on_the_epoch() {
        let a = shuffled(100, 7, 0);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(a, shuffled(100, 7, 1));
        assert_eq!(a, shuffled(100, 7, 0));
    }

    #[test]
    fn even_batches_cover_everything() {
        let b = even_batches(982, 16);
        assert_eq!(b.len(), 62);
        assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), 982);
        assert!(b.iter().all(|x| x.1 == 15 || x.1 == 16));
        assert_eq!(b.last().map(|x| x.0 + x.1), Some(982));
    }
}
