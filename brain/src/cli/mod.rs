//! The `brain` command line: subcommands over the library, with progress bars and run
//! folders. `brain demo` is the main job.

mod data_cmds;
mod demo;
mod evaluate;
mod plot;
mod progress;
mod run;
mod slices;

pub use data_cmds::{output_shape, ModelKind, Preset, TrainOptions};
pub use demo::{small_train_config, DemoOptions};
pub use evaluate::{held_out_metrics, Metric};
pub use plot::training_curves;
pub use run::{train_run, RunOutcome};

use crate::error::Result;
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
    /// Write the synthetic subject as a subject folder (docs/data.md layout).
    Synth {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Shapes, dtypes and ROI voxel counts of a subject folder.
    Inspect {
        /// Subject folder.
        data: PathBuf,
    },
    /// Train a model on a subject folder into a run folder.
    Train {
        /// Subject folder (docs/data.md).
        #[arg(long)]
        data: PathBuf,
        /// Model.
        #[arg(long, value_enum)]
        model: ModelKind,
        /// Widths.
        #[arg(long, value_enum, default_value_t = Preset::Small)]
        preset: Preset,
        /// Epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Batch size.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Peak learning rate (one-cycle schedule).
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        /// Seed of initialisation, shuffling and dropout.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run folder.
        #[arg(long)]
        out: PathBuf,
        /// Do not z-score voxels (they are z-scored with training statistics by default).
        #[arg(long)]
        no_zscore: bool,
    },
    /// Fuse per-layer CLIP vision files into e_I,D (mean of layers FIRST..=LAST) and
    /// e_I,S (layer SEMANTIC), reading a block of trials at a time; optionally average
    /// a [trials, captions, 77, 768] caption file into clip_text.npy.
    FuseTargets {
        /// Folder of clip_vision_layer{k}.npy files [trials, 257, 768].
        #[arg(long)]
        layers: PathBuf,
        /// Output folder (e.g. subj01/targets/train).
        #[arg(long)]
        out: PathBuf,
        /// First layer of the detail mean.
        #[arg(long, default_value_t = crate::targets::DEFAULT_DETAIL_FIRST)]
        first: usize,
        /// Last layer of the detail mean (inclusive).
        #[arg(long, default_value_t = crate::targets::DEFAULT_DETAIL_LAST)]
        last: usize,
        /// The semantic layer.
        #[arg(long, default_value_t = crate::targets::DEFAULT_SEMANTIC)]
        semantic: usize,
        /// A caption-embedding file to average into OUT/clip_text.npy.
        #[arg(long)]
        captions: Option<PathBuf>,
        /// The CLIP vision model's safetensors (post_layernorm, visual_projection): the
        /// layer files are then raw hidden states [trials, 257, 1024], projected first.
        #[arg(long)]
        projection: Option<PathBuf>,
    },
    /// Held-out metrics of a run on a subject's test split.
    Eval {
        /// Run folder (holds checkpoint.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// Subject folder.
        #[arg(long)]
        data: PathBuf,
    },
    /// Predicted embeddings and latents of a split as .npy files.
    Predict {
        /// Run folder.
        #[arg(long)]
        run: PathBuf,
        /// Subject folder.
        #[arg(long)]
        data: PathBuf,
        /// `train` or `test`.
        #[arg(long, default_value = "test")]
        split: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// HAVIR voxel-contribution maps as NIfTI volumes and PNG slices.
    Explain {
        /// Run folder of a HAVIR model.
        #[arg(long)]
        run: PathBuf,
        /// Subject folder (its masks place the voxels).
        #[arg(long)]
        data: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.backend {
        BackendChoice::Cpu => run_on(&CpuBackend::new(), cli.command),
        BackendChoice::Wgpu => wgpu_backend().and_then(|be| run_on(&be, cli.command)),
        BackendChoice::Cuda => cuda_backend().and_then(|be| run_on(&be, cli.command)),
    }
}

#[cfg(feature = "cuda")]
fn cuda_backend() -> Result<backend_cuda::CudaBackend> {
    let be = backend_cuda::CudaBackend::new()?;
    eprintln!("backend: {}", brain_core::Backend::name(&be));
    Ok(be)
}

#[cfg(not(feature = "cuda"))]
fn cuda_backend() -> Result<CpuBackend> {
    Err(crate::error::Error::Core(
        brain_core::BrainError::Unsupported(
            "--backend cuda: this binary was built without the `cuda` feature".into(),
        ),
    ))
}

#[cfg(feature = "wgpu")]
fn wgpu_backend() -> Result<backend_wgpu::WgpuBackend> {
    let be = backend_wgpu::WgpuBackend::new()?;
    eprintln!("backend: {}", brain_core::Backend::name(&be));
    Ok(be)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_backend() -> Result<CpuBackend> {
    Err(crate::error::Error::Core(
        brain_core::BrainError::Unsupported(
            "--backend wgpu: this binary was built without the `wgpu` feature".into(),
        ),
    ))
}

/// Run `command` on `be` (commands that compute nothing ignore it).
fn run_on<B: brain_core::Backend>(be: &B, command: Command) -> Result<()> {
    match command {
        Command::Demo { seed, epochs, out } => {
            let opts = DemoOptions { seed, epochs, out };
            let runs = demo::run(be, &opts)?;
            demo::print_summary(&runs, &opts.out);
            Ok(())
        }
        Command::Synth { out, seed } => data_cmds::synth(&out, seed),
        Command::Inspect { data } => data_cmds::inspect(&data),
        Command::Train {
            data,
            model,
            preset,
            epochs,
            batch,
            lr,
            seed,
            out,
            no_zscore,
        } => {
            let o = TrainOptions {
                data,
                model,
                preset,
                epochs,
                batch,
                lr,
                seed,
                out,
                zscore: !no_zscore,
            };
            data_cmds::train(be, &o)
        }
        Command::FuseTargets {
            layers,
            out,
            first,
            last,
            semantic,
            captions,
            projection,
        } => {
            let inputs = data_cmds::FuseInputs {
                layers: &layers,
                projection: projection.as_deref(),
                captions: captions.as_deref(),
            };
            data_cmds::fuse_targets(&inputs, &out, first, last, semantic)
        }
        Command::Eval { run, data } => data_cmds::eval(be, &run, &data),
        Command::Predict {
            run,
            data,
            split,
            out,
        } => data_cmds::predict_cmd(be, &run, &data, &split, &out),
        Command::Explain { run, data, out } => data_cmds::explain(be, &run, &data, &out),
    }
}
