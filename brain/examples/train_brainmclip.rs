//! Train a small BrainMCLIP on the synthetic subject (CPU backend), report held-out
//! retrieval, and save a checkpoint PyTorch can load (`pytorch/check_checkpoint.py`).

use backend_cpu::CpuBackend;
use brain::checkpoint;
use brain::synthetic::{generate, SyntheticConfig};
use brain_core::metrics::retrieval::retrieval_top1;
use brain_core::model::{param_summary, BrainMclip, BrainMclipConfig, Model};
use brain_core::train::{
    predict, AdamWState, LrSchedule, Observer, TrainConfig, TrainState, Trainer,
};
use brain_core::{AdamW, Backend};

/// Prints one line per epoch and keeps the latest checkpoint on disk.
struct Progress(std::path::PathBuf);

impl<M: Model<CpuBackend>> Observer<CpuBackend, M> for Progress {
    fn on_epoch(
        &mut self,
        be: &CpuBackend,
        model: &M,
        opt: &AdamWState<CpuBackend>,
        state: &TrainState,
    ) -> brain_core::Result<()> {
        let e = state.history.last().expect("an epoch just ended");
        println!(
            "epoch {:>2}  train loss {:.4}  held-out loss {:.4}",
            e.epoch + 1,
            e.train_loss,
            e.eval_loss.unwrap_or(f64::NAN)
        );
        checkpoint::save(&self.0, be, model, Some(opt), state)
            .map_err(|err| brain_core::BrainError::Backend(err.to_string()))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(1);
    let subject = generate(&syn)?;
    let model = BrainMclip::new(&be, BrainMclipConfig::small(syn.n_high, syn.n_detail()), 3)?;
    println!(
        "BrainMCLIP small on {}:\n{}",
        be.name(),
        param_summary(model.params())
    );

    let cfg = TrainConfig {
        epochs: 30,
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
        seed: 5,
        eval_every: 1,
        patience: Some(5),
    };
    let path = std::env::temp_dir().join("brainmclip_small.safetensors");
    let mut trainer = Trainer::new(&be, model, cfg)?;
    trainer.run(
        &be,
        &subject.train,
        Some(&subject.test),
        &mut Progress(path.clone()),
    )?;

    // Inference on the held-out split: Ê_I against E_I = (e_I,S + e_I,D)/2.
    let outputs = predict(&be, &trainer.model, &subject.test, 32)?;
    let e_i_hat = &outputs
        .iter()
        .find(|(name, _)| name == "e_i_hat")
        .ok_or("no Ê_I")?
        .1;
    let (e_is, width) = subject.test.get("e_is").ok_or("no e_is")?;
    let (e_id, _) = subject.test.get("e_id").ok_or("no e_id")?;
    let e_i: Vec<f32> = e_is.iter().zip(e_id).map(|(a, b)| (a + b) / 2.0).collect();
    let r = retrieval_top1(e_i_hat, &e_i, subject.test.len(), width)?;
    println!(
        "held-out top-1 retrieval: brain→image {:.1}%, image→brain {:.1}% (chance {:.1}%)",
        100.0 * r.forward,
        100.0 * r.backward,
        100.0 / subject.test.len() as f64
    );
    println!("checkpoint: {}", path.display());
    Ok(())
}
