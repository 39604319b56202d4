//! `brain demo`: the synthetic subject → BrainMCLIP and HAVIR `small` trained on the
//! chosen backend → a table of held-out metrics. The main job of the README.

use super::run::{train_run, RunOutcome};
use crate::error::Result;
use crate::synthetic::{generate, SyntheticConfig};
use brain_core::model::{BrainMclip, BrainMclipConfig, Havir, HavirConfig};
use brain_core::train::{LrSchedule, TrainConfig};
use brain_core::{AdamW, Backend};
use std::path::Path;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Seed of the subject, the initialisation and training.
    pub seed: u64,
    /// Epochs for each model.
    pub epochs: usize,
    /// Where the two run folders go.
    pub out: std::path::PathBuf,
}

/// The training settings of the demo (and the default of `brain train --preset small`).
pub fn small_train_config(epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        optimizer: AdamW {
            lr: 3e-3,
            max_grad_norm: Some(1.0),
            ..AdamW::default()
        },
        schedule: LrSchedule::OneCycle {
            pct_start: 0.2,
            div_factor: 25.0,
            final_div_factor: 1e3,
        },
        seed,
        eval_every: 1,
        patience: None,
    }
}

/// Run the demo on `be`.
pub fn run<B: Backend>(be: &B, opts: &DemoOptions) -> Result<Vec<(String, RunOutcome)>> {
    let syn = SyntheticConfig::small(opts.seed);
    let subject = generate(&syn)?;
    println!(
        "synthetic subject (seed {}): {} training / {} held-out stimuli, {} low-level + {} high-level voxels, reliability {}",
        opts.seed, subject.train.len(), subject.test.len(), syn.n_low, syn.n_high, syn.reliability
    );
    let data = serde_json::json!({"synthetic": {"seed": opts.seed, "n_train": syn.n_train, "n_test": syn.n_test,
        "n_low": syn.n_low, "n_high": syn.n_high, "reliability": syn.reliability}});
    let cfg = small_train_config(opts.epochs, opts.seed);
    let mclip = BrainMclip::new(
        be,
        BrainMclipConfig::small(syn.n_high, syn.n_detail()),
        opts.seed,
    )?;
    let (_, a) = train_run(
        be,
        mclip,
        &subject.train,
        &subject.test,
        cfg,
        &opts.out.join("brainmclip"),
        "BrainMCLIP",
        data.clone(),
    )?;
    let havir = Havir::new(be, HavirConfig::small(syn.n_low, syn.n_high), opts.seed)?;
    let (_, b) = train_run(
        be,
        havir,
        &subject.train,
        &subject.test,
        cfg,
        &opts.out.join("havir"),
        "HAVIR",
        data,
    )?;
    Ok(vec![
        ("BrainMCLIP small".into(), a),
        ("HAVIR small".into(), b),
    ])
}

/// The Markdown table the demo prints.
pub fn table(runs: &[(String, RunOutcome)]) -> String {
    let mut s = String::from("| model | held-out metric | value | chance |\n|---|---|---:|---:|\n");
    for (name, r) in runs {
        for m in &r.metrics {
            let chance = m.chance.map(|c| format!("{c:.3}")).unwrap_or_default();
            s += &format!("| {name} | {} | {:.3} | {chance} |\n", m.name, m.value);
        }
    }
    s
}

/// Print where everything went.
pub fn print_summary(runs: &[(String, RunOutcome)], out: &Path) {
    println!("\n{}", table(runs));
    for (name, r) in runs {
        println!(
            "{name}: {} parameters, {} epochs in {:.1} s → {}",
            r.params,
            r.state.epoch,
            r.seconds,
            r.dir.display()
        );
    }
    println!(
        "run folders (config.json, checkpoint.safetensors, metrics.json, training.png) under {}",
        out.display()
    );
}
