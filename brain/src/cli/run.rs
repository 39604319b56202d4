//! A run folder: `config.json`, `checkpoint.safetensors` (kept current after every
//! epoch), `metrics.json` and `training.png`. Every file is written atomically.

use super::evaluate::{held_out_metrics, Metric};
use super::plot::training_curves;
use super::progress::RunProgress;
use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};
use brain_core::model::{param_summary, Model};
use brain_core::train::{Dataset, LrSchedule, TrainConfig, TrainState, Trainer};
use brain_core::Backend;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a finished run reports.
pub struct RunOutcome {
    /// The run folder.
    pub dir: PathBuf,
    /// Held-out metrics.
    pub metrics: Vec<Metric>,
    /// Final training state.
    pub state: TrainState,
    /// Wall time of training and evaluation.
    pub seconds: f64,
    /// Parameter count.
    pub params: usize,
}

/// The training settings as JSON (stored in `config.json`).
pub fn train_config_json(cfg: &TrainConfig) -> serde_json::Value {
    let schedule = match cfg.schedule {
        LrSchedule::Constant => serde_json::json!({"kind": "constant"}),
        LrSchedule::WarmupCosine { warmup, min_ratio } => {
            serde_json::json!({"kind": "warmup_cosine", "warmup": warmup, "min_ratio": min_ratio})
        }
        LrSchedule::OneCycle {
            pct_start,
            div_factor,
            final_div_factor,
        } => serde_json::json!({
            "kind": "one_cycle", "pct_start": pct_start, "div_factor": div_factor,
            "final_div_factor": final_div_factor
        }),
    };
    let o = &cfg.optimizer;
    serde_json::json!({
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "seed": cfg.seed,
        "eval_every": cfg.eval_every, "patience": cfg.patience, "schedule": schedule,
        "adamw": {"lr": o.lr, "beta1": o.beta1, "beta2": o.beta2, "eps": o.eps,
                  "weight_decay": o.weight_decay, "max_grad_norm": o.max_grad_norm},
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::format(path, e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Train `model` into `dir` and evaluate it on `test`.
#[allow(clippy::too_many_arguments)]
pub fn train_run<B: Backend, M: Model<B>>(
    be: &B,
    model: M,
    train: &Dataset,
    test: &Dataset,
    cfg: TrainConfig,
    dir: &Path,
    label: &str,
    extra: serde_json::Value,
) -> Result<(M, RunOutcome)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let params = model.params().count();
    println!(
        "{label}: {params} parameters on {}\n{}",
        be.name(),
        param_summary(model.params())
    );
    write_json(
        &dir.join("config.json"),
        &serde_json::json!({
            "model": model.config(),
            "train": train_config_json(&cfg),
            "backend": be.name(),
            "data": extra,
        }),
    )?;
    let start = Instant::now();
    let ckpt = dir.join("checkpoint.safetensors");
    let mut progress = RunProgress::new(label, cfg.total_steps(train.len()), Some(ckpt));
    let mut trainer = Trainer::new(be, model, cfg)?;
    let run = trainer.run(be, train, Some(test), &mut progress);
    progress.finish();
    let state = run?.clone();
    let metrics = held_out_metrics(be, &trainer.model, test, cfg.batch_size)?;
    let seconds = start.elapsed().as_secs_f64();
    write_json(
        &dir.join("metrics.json"),
        &serde_json::json!({
            "metrics": metrics, "seconds": seconds, "params": params,
            "epochs_run": state.epoch, "stopped_early": state.stopped_early,
            "best_held_out_loss": state.best_eval, "history": state.history,
        }),
    )?;
    training_curves(
        &dir.join("training.png"),
        &format!("{label}: loss per epoch"),
        &state.history,
    )?;
    Ok((
        trainer.model,
        RunOutcome {
            dir: dir.to_path_buf(),
            metrics,
            state,
            seconds,
            params,
        },
    ))
}
