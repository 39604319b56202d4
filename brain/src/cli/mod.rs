//! The `brain` command line: subcommands over the library, with progress bars and run
//! folders. `brain demo` is the main job.

mod demo;
mod evaluate;
mod plot;
mod progress;
mod run;

pub use demo::{small_train_config, DemoOptions};
pub use evaluate::{held_out_metrics, Metric};
pub use plot::training_curves;
pub use run::{train_run, RunOutcome};

use crate::error::{Error, Result};
use backend_cpu::CpuBackend;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// fMRI → CLIP / latent decoders (BrainMCLIP, HAVIR) on the CPU, CUDA or wgpu.
#[derive(Debug, Parser)]
#[command(name = "brain", version, about)]
pub struct Cli {
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu, global = true)]
    pub backend: BackendChoice,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which backend runs the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// The CPU backend (rayon + SIMD).
    Cpu,
    /// NVIDIA GPUs through CUDA.
    Cuda,
    /// Any GPU through wgpu (Vulkan, Metal, DX12).
    Wgpu,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Synthetic subject → train BrainMCLIP and HAVIR `small` → held-out metrics table.
    Demo {
        /// Seed of the subject and of training.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Epochs per model.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Folder for the two run folders.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
    },
}

fn unavailable(b: BackendChoice) -> Error {
    let (name, issue) = match b {
        BackendChoice::Cuda => ("cuda", "the CUDA backend is not built yet"),
        BackendChoice::Wgpu => ("wgpu", "the wgpu backend is not built yet"),
        BackendChoice::Cpu => ("cpu", "unreachable"),
    };
    Error::Core(brain_core::BrainError::Unsupported(format!(
        "--backend {name}: {issue} in this binary; use --backend cpu"
    )))
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if cli.backend != BackendChoice::Cpu {
        return Err(unavailable(cli.backend));
    }
    let be = CpuBackend::new();
    match cli.command {
        Command::Demo { seed, epochs, out } => {
            let opts = DemoOptions { seed, epochs, out };
            let runs = demo::run(&be, &opts)?;
            demo::print_summary(&runs, &opts.out);
            Ok(())
        }
    }
}
