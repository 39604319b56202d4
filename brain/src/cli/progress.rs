//! A progress bar over the optimizer steps of a run, one printed line per epoch, and
//! the latest checkpoint kept in the run folder after every epoch.

use crate::checkpoint;
use brain_core::model::Model;
use brain_core::train::{AdamWState, Observer, StepLog, TrainState};
use brain_core::{Backend, BrainError};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Reports progress of one training run.
pub struct RunProgress {
    bar: ProgressBar,
    label: String,
    checkpoint: Option<PathBuf>,
}

impl RunProgress {
    /// A bar of `total_steps` steps (hidden when stderr is not a terminal).
    pub fn new(label: &str, total_steps: u64, checkpoint: Option<PathBuf>) -> Self {
        let bar = ProgressBar::new(total_steps);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        RunProgress {
            bar,
            label: label.into(),
            checkpoint,
        }
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl<B: Backend, M: Model<B>> Observer<B, M> for RunProgress {
    fn on_step(&mut self, log: &StepLog) -> brain_core::Result<()> {
        self.bar.set_position(log.step + 1);
        self.bar.set_message(format!("loss {:.4}", log.loss.total));
        Ok(())
    }

    fn on_epoch(
        &mut self,
        be: &B,
        model: &M,
        opt: &AdamWState<B>,
        state: &TrainState,
    ) -> brain_core::Result<()> {
        if let Some(e) = state.history.last() {
            let eval = e
                .eval_loss
                .map(|l| format!("  held-out {l:.4}"))
                .unwrap_or_default();
            self.bar.println(format!(
                "{} epoch {:>3}  train {:.4}{eval}",
                self.label,
                e.epoch + 1,
                e.train_loss
            ));
        }
        if let Some(path) = &self.checkpoint {
            checkpoint::save(path, be, model, Some(opt), state)
                .map_err(|e| BrainError::Backend(e.to_string()))?;
        }
        Ok(())
    }
}
