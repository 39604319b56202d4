//! One training step of a mapping model at the `paper` widths, batch 16, on the CPU
//! backend, against the same step in PyTorch eager on this machine in the same run.
//!
//! A step is what `Trainer::run` does per batch: forward (train mode, dropout on),
//! every loss term, backward into zeroed gradients, and the fused AdamW update
//! (lr 3e-4, weight decay 0.01, no clipping), the same as
//! `benches/pytorch/time_model_step.py` times. Medians after 2 warm-up steps.
//!
//! ```text
//! cargo run --release -p benches --bin model_step_vs_torch -- [brainmclip|havir] [--repeats N] [--no-torch]
//! ```
//! Memory: the paper BrainMCLIP needs ~12 GB (weights, gradients, two moments); the
//! Rust model is dropped before PyTorch starts.

use backend_cpu::CpuBackend;
use brain_core::model::{
    param_summary, Align, BrainMclip, BrainMclipConfig, Havir, HavirConfig, Model,
};
use brain_core::nn::Mode;
use brain_core::train::AdamWState;
use brain_core::{AdamW, Backend, Result};
use std::process::Command;
use std::time::Instant;

fn time_steps<M: Model<CpuBackend>>(
    be: &CpuBackend,
    mut model: M,
    batch: usize,
    repeats: usize,
) -> Result<Vec<f64>> {
    println!("{}", param_summary(model.params()));
    let mut acts = model.acts(be, batch)?;
    for (i, slot) in model.slots().iter().enumerate() {
        let n = batch * slot.width;
        let data = benches::cases::data(n, 100 + i as u64);
        be.write(model.slot_mut(&mut acts, i), &data)?;
    }
    let cfg = AdamW {
        lr: 3e-4,
        weight_decay: 0.01,
        ..AdamW::default()
    };
    let mut opt = AdamWState::new(be, model.params(), cfg)?;
    let mut times = Vec::new();
    for step in 0..(repeats + 2) as u64 {
        let t = Instant::now();
        let mode = Mode::Train { seed: 1, step };
        model.forward(be, &mut acts, mode)?;
        let loss = model.loss(be, &mut acts)?;
        model.backward(be, &mut acts, mode)?;
        opt.step(be, model.params_mut(), cfg.lr)?;
        be.sync()?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  step {step}: {:.1} ms, loss {:.4}{}",
            secs * 1e3,
            loss.total,
            if step < 2 { " (warm-up)" } else { "" }
        );
        if step >= 2 {
            times.push(secs);
        }
    }
    Ok(times)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn torch_ms(model: &str, threads: usize, repeats: usize) -> std::result::Result<f64, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pytorch/time_model_step.py");
    let out = Command::new("python3")
        .args([
            script,
            "--model",
            model,
            "--threads",
            &threads.to_string(),
            "--repeats",
            &repeats.to_string(),
        ])
        .output()
        .map_err(|e| format!("could not start python3: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().ok_or("no output")?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    v["median_ms"].as_f64().ok_or_else(|| "no median_ms".into())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .cloned()
        .unwrap_or_else(|| "brainmclip".into());
    let repeats = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let be = CpuBackend::new();
    let threads = rayon_threads(&be);
    let batch = 16;
    println!(
        "{model} `paper` training step, batch {batch}, Rust CPU backend ({})",
        be.name()
    );
    let t0 = Instant::now();
    let rust = match model.as_str() {
        "havir" => time_steps(
            &be,
            Havir::new(&be, HavirConfig::paper(), 0)?,
            batch,
            repeats,
        )?,
        _ => {
            // The PyTorch script times L_MG alignment ("align": "mg"); match it.
            let cfg = BrainMclipConfig {
                align: Align::Mg,
                ..BrainMclipConfig::paper()
            };
            time_steps(&be, BrainMclip::new(&be, cfg, 0)?, batch, repeats)?
        }
    };
    let rust_ms = median(rust) * 1e3;
    println!(
        "Rust median {rust_ms:.1} ms ({:.0} s including build)",
        t0.elapsed().as_secs_f64()
    );
    if args.iter().any(|a| a == "--no-torch") {
        return Ok(());
    }
    match torch_ms(&model, threads, repeats) {
        Ok(t) => {
            println!("\n| case | Rust ms | PyTorch ms | PyTorch / Rust |\n|---|---:|---:|---:|");
            println!(
                "| {model} paper step, batch {batch} | {rust_ms:.0} | {t:.0} | {:.2}× |",
                t / rust_ms
            );
        }
        Err(e) => println!("PyTorch side not measured: {e}"),
    }
    Ok(())
}

/// The thread count the backend runs with (parsed from its name, "cpu (N threads)").
fn rayon_threads(be: &CpuBackend) -> usize {
    be.name()
        .split(|c: char| !c.is_ascii_digit())
        .find_map(|s| s.parse().ok())
        .unwrap_or(1)
}
