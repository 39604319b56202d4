//! The subcommands that work on a subject folder (docs/data.md): `synth`, `inspect`,
//! `train`, `eval`, `predict`, `explain`.

use super::demo::small_train_config;
use super::evaluate::{held_out_metrics, Metric};
use super::run::train_run;
use super::slices::axial_slices;
use crate::checkpoint::{write_atomic, Checkpoint};
use crate::error::{Error, Result};
use crate::io::nifti::write_volume;
use crate::io::npy::write_f32;
use crate::io::subject::{
    inspect_subject, load_subject, write_synthetic, LoadOptions, SubjectInfo,
};
use crate::synthetic::SyntheticConfig;
use brain_core::model::{BrainMclip, BrainMclipConfig, Havir, HavirConfig, Model, ModelConfig};
use brain_core::train::{predict, TrainConfig};
use brain_core::Backend;
use std::path::{Path, PathBuf};

/// Which model `brain train` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    /// BrainMCLIP (paper 000).
    Brainmclip,
    /// HAVIR (paper 003).
    Havir,
}

/// Width preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Seconds on a laptop.
    Small,
    /// NSD scale (BrainMCLIP 0.74B parameters).
    Paper,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::format(path, reason)
}

/// `brain synth`: write the synthetic subject in the docs/data.md layout.
pub fn synth(out: &Path, seed: u64) -> Result<()> {
    write_synthetic(out, &SyntheticConfig::small(seed))?;
    println!(
        "synthetic subject (seed {seed}) written to {}",
        out.display()
    );
    inspect(out)
}

/// `brain inspect`: shapes, dtypes and ROI voxel counts of a subject folder.
pub fn inspect(dir: &Path) -> Result<()> {
    let info = inspect_subject(dir)?;
    let r = &info.rois;
    println!("{}", dir.display());
    println!(
        "  volume {}×{}×{}, nsdgeneral {} voxels (F_D)",
        r.dims[0], r.dims[1], r.dims[2], r.detail
    );
    let labels: Vec<String> = r
        .low_by_label
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  low-level (prf-visualrois ∩ nsdgeneral) {}: {}",
        r.low,
        labels.join(", ")
    );
    let masks: Vec<String> = r
        .high_by_mask
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "  high-level (floc-* ∩ nsdgeneral) {} (F_S): {}",
        r.high,
        masks.join(", ")
    );
    for (name, split) in [("train", &info.train), ("test", &info.test)] {
        println!("  {name}: {} trials", split.trials);
        let f = &split.fmri;
        println!("    {:<28} {:?} {}", "fmri", f.shape, f.dtype.name());
        for (file, a) in &split.targets {
            println!("    {:<28} {:?} {}", file, a.shape, a.dtype.name());
        }
    }
    Ok(())
}

/// Tokens and width of a target file: `[n, T, D]` or `[n, captions, T, D]`.
fn tokens_of(info: &SubjectInfo, file: &str) -> Option<(usize, usize)> {
    let (_, a) = info.train.targets.iter().find(|(f, _)| f == file)?;
    let s = &a.shape;
    (s.len() >= 3).then(|| (s[s.len() - 2], s[s.len() - 1]))
}

fn need<T>(v: Option<T>, dir: &Path, file: &str) -> Result<T> {
    v.ok_or_else(|| {
        bad(
            dir,
            format!("targets/train/{file} is missing or not [trials, tokens, dim]"),
        )
    })
}

/// The model config for this subject's widths.
fn config_for(
    kind: ModelKind,
    preset: Preset,
    info: &SubjectInfo,
    dir: &Path,
) -> Result<ModelConfig> {
    let r = &info.rois;
    Ok(match kind {
        ModelKind::Brainmclip => {
            let mut c = match preset {
                Preset::Small => BrainMclipConfig::small(r.high, r.detail),
                Preset::Paper => BrainMclipConfig::paper(),
            };
            (c.n_semantic, c.n_detail) = (r.high, r.detail);
            (c.text_tokens, c.embed_dim) =
                need(tokens_of(info, "clip_text.npy"), dir, "clip_text.npy")?;
            c.image_tokens = need(
                tokens_of(info, "clip_image_semantic.npy"),
                dir,
                "clip_image_semantic.npy",
            )?
            .0;
            ModelConfig::BrainMclip(c)
        }
        ModelKind::Havir => {
            let mut c = match preset {
                Preset::Small => HavirConfig::small(r.low, r.high),
                Preset::Paper => HavirConfig::paper(),
            };
            (c.n_low, c.n_high) = (r.low, r.high);
            (c.text_tokens, c.embed_dim) =
                need(tokens_of(info, "clip_text.npy"), dir, "clip_text.npy")?;
            c.image_tokens = need(
                tokens_of(info, "clip_image_semantic.npy"),
                dir,
                "clip_image_semantic.npy",
            )?
            .0;
            let (_, lat) = info
                .train
                .targets
                .iter()
                .find(|(f, _)| f == "latents.npy")
                .ok_or_else(|| {
                    bad(
                        dir,
                        "targets/train/latents.npy is missing (HAVIR's structural target)",
                    )
                })?;
            if lat.shape.len() != 4 || lat.shape[2] != lat.shape[3] {
                return Err(bad(
                    &lat.path,
                    format!("latents must be [trials, C, L, L], got {:?}", lat.shape),
                ));
            }
            (c.latent_channels, c.latent_size) = (lat.shape[1], lat.shape[2]);
            ModelConfig::Havir(c)
        }
    })
}

/// Options of `brain train`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Subject folder.
    pub data: PathBuf,
    /// Model.
    pub model: ModelKind,
    /// Widths.
    pub preset: Preset,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Run folder.
    pub out: PathBuf,
    /// Z-score voxels with training statistics.
    pub zscore: bool,
}

/// `brain train`.
pub fn train<B: Backend>(be: &B, o: &TrainOptions) -> Result<()> {
    let info = inspect_subject(&o.data)?;
    let cfg = config_for(o.model, o.preset, &info, &o.data)?;
    let subject = load_subject(
        &o.data,
        &LoadOptions {
            zscore: o.zscore,
            arrays: None,
        },
    )?;
    let mut tc: TrainConfig = small_train_config(o.epochs, o.seed);
    tc.batch_size = o.batch;
    tc.optimizer.lr = o.lr;
    let extra = serde_json::json!({"dir": o.data, "zscore": o.zscore});
    let outcome = match cfg {
        ModelConfig::BrainMclip(c) => {
            train_run(
                be,
                BrainMclip::new(be, c, o.seed)?,
                &subject.train,
                &subject.test,
                tc,
                &o.out,
                "BrainMCLIP",
                extra,
            )?
            .1
        }
        ModelConfig::Havir(c) => {
            train_run(
                be,
                Havir::new(be, c, o.seed)?,
                &subject.train,
                &subject.test,
                tc,
                &o.out,
                "HAVIR",
                extra,
            )?
            .1
        }
    };
    print_metrics(&outcome.metrics);
    println!("run folder: {}", outcome.dir.display());
    Ok(())
}

fn print_metrics(m: &[Metric]) {
    println!("| held-out metric | value | chance |\n|---|---:|---:|");
    for x in m {
        let chance = x.chance.map(|c| format!("{c:.3}")).unwrap_or_default();
        println!("| {} | {:.3} | {chance} |", x.name, x.value);
    }
}

/// A trained model of either kind, restored from a run folder.
enum Loaded<B: Backend> {
    BrainMclip(Box<BrainMclip<B>>),
    Havir(Box<Havir<B>>),
}

fn load_run<B: Backend>(be: &B, run: &Path) -> Result<Loaded<B>> {
    let path = run.join("checkpoint.safetensors");
    let ck = Checkpoint::open(&path)?;
    Ok(match ck.config()? {
        ModelConfig::BrainMclip(c) => {
            let mut m = BrainMclip::new(be, c, 0)?;
            ck.load_params(be, &mut m)?;
            Loaded::BrainMclip(Box::new(m))
        }
        ModelConfig::Havir(c) => {
            let mut m = Havir::new(be, c, 0)?;
            ck.load_params(be, &mut m)?;
            Loaded::Havir(Box::new(m))
        }
    })
}

/// `brain eval`: held-out metrics of a run on a subject's test split.
pub fn eval<B: Backend>(be: &B, run: &Path, data: &Path) -> Result<()> {
    let subject = load_subject(data, &LoadOptions::default())?;
    let metrics = match load_run(be, run)? {
        Loaded::BrainMclip(m) => held_out_metrics(be, m.as_ref(), &subject.test, 32)?,
        Loaded::Havir(m) => held_out_metrics(be, m.as_ref(), &subject.test, 32)?,
    };
    print_metrics(&metrics);
    let path = run.join("eval.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({"data": data, "metrics": metrics}))
        .map_err(|e| bad(&path, e.to_string()))?;
    write_atomic(&path, text.as_bytes())
}

/// PyTorch's shape of output `name` for `n` samples: tokens `[n, T, D]`, latents
/// `[n, C, L, L]`.
pub fn output_shape(cfg: &ModelConfig, name: &str, n: usize) -> Vec<usize> {
    match (cfg, name) {
        (ModelConfig::BrainMclip(c), "e_t_hat") => vec![n, c.text_tokens, c.embed_dim],
        (ModelConfig::BrainMclip(c), _) => vec![n, c.image_tokens, c.embed_dim],
        (ModelConfig::Havir(c), "z_prime") => {
            vec![n, c.latent_channels, c.latent_size, c.latent_size]
        }
        (ModelConfig::Havir(c), "e_img") => vec![n, c.image_tokens, c.embed_dim],
        (ModelConfig::Havir(c), _) => vec![n, c.text_tokens, c.embed_dim],
    }
}

fn write_predictions<B: Backend, M: Model<B>>(
    be: &B,
    m: &M,
    data: &brain_core::train::Dataset,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let cfg = m.config();
    for (name, values) in predict(be, m, data, 32)? {
        let path = out.join(format!("{name}.npy"));
        let shape = output_shape(&cfg, &name, data.len());
        write_f32(&path, &shape, &values)?;
        println!("  {} {:?}", path.display(), shape);
    }
    Ok(())
}

/// `brain predict`: predicted embeddings and latents of a split as `.npy`.
pub fn predict_cmd<B: Backend>(
    be: &B,
    run: &Path,
    data: &Path,
    split: &str,
    out: &Path,
) -> Result<()> {
    let subject = load_subject(data, &LoadOptions::default())?;
    let d = match split {
        "train" => &subject.train,
        "test" => &subject.test,
        other => return Err(bad(data, format!("split `{other}`: use train or test"))),
    };
    println!("predictions for {} {split} trials:", d.len());
    match load_run(be, run)? {
        Loaded::BrainMclip(m) => write_predictions(be, m.as_ref(), d, out),
        Loaded::Havir(m) => write_predictions(be, m.as_ref(), d, out),
    }
}

/// `brain explain`: HAVIR's per-voxel contributions (L2 norm of each voxel's column of
/// the first Linear layer) written back into the brain volume, as NIfTI and PNG slices.
pub fn explain<B: Backend>(be: &B, run: &Path, data: &Path, out: &Path) -> Result<()> {
    let Loaded::Havir(m) = load_run(be, run)? else {
        return Err(bad(
            &run.join("checkpoint.safetensors"),
            "explain needs a HAVIR run (its first layers map voxels)",
        ));
    };
    let rois = crate::io::roi::load_rois(&data.join("masks"))?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let maps = [
        (
            "structural_contributions",
            &rois.low,
            m.voxel_contributions(be)?,
        ),
        (
            "semantic_contributions",
            &rois.high,
            m.semantic_voxel_contributions(be)?,
        ),
    ];
    for (name, cols, values) in maps {
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let volume = rois.subset_to_volume(cols, &values).ok_or_else(|| {
            bad(
                &rois.nsdgeneral,
                format!(
                    "the run has {} input voxels, the masks {}",
                    values.len(),
                    cols.len()
                ),
            )
        })?;
        let nii = out.join(format!("{name}.nii.gz"));
        write_volume(&nii, rois.dims, &volume, Some(&rois.nsdgeneral))?;
        let png = out.join(format!("{name}.png"));
        axial_slices(&png, rois.dims, &volume, 8)?;
        println!("  {} and {}", nii.display(), png.display());
    }
    Ok(())
}

fn bar(total: usize, what: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(total as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} trials ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_prefix(what.to_string());
    b
}

/// What `brain fuse-targets` reads.
pub struct FuseInputs<'a> {
    /// Folder of `clip_vision_layer{k}.npy`.
    pub layers: &'a Path,
    /// CLIP vision safetensors, when the layers are raw hidden states.
    pub projection: Option<&'a Path>,
    /// Caption embeddings to average.
    pub captions: Option<&'a Path>,
}

/// `brain fuse-targets`.
pub fn fuse_targets(
    inputs: &FuseInputs<'_>,
    out: &Path,
    first: usize,
    last: usize,
    semantic: usize,
) -> Result<()> {
    use crate::targets::{
        average_captions_with, block_for, fuse_vision_layers_projected, layer_path,
    };
    let (layers, captions) = (inputs.layers, inputs.captions);
    let projection = inputs
        .projection
        .map(crate::projection::ClipProjection::load)
        .transpose()?;
    let info = crate::io::npy::read_info(&layer_path(layers, first)?)?;
    let row: usize = info.shape.iter().skip(1).product();
    let pb = bar(info.shape.first().copied().unwrap_or(0), "fuse layers");
    let r = fuse_vision_layers_projected(
        layers,
        first,
        last,
        semantic,
        out,
        block_for(row),
        projection.as_ref(),
        &mut |done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        },
    );
    pb.finish_and_clear();
    let r = r?;
    println!(
        "{} = mean of {} layers {first}..={last}, {} = layer {semantic}; shape {:?}",
        r.detail.display(),
        r.detail_layers.len(),
        r.semantic.display(),
        r.shape
    );
    if let Some(c) = captions {
        let dest = out.join("clip_text.npy");
        let pb = bar(0, "average captions");
        let rep = average_captions_with(c, &dest, 0, &mut |done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        });
        pb.finish_and_clear();
        let rep = rep?;
        println!(
            "{} = mean over {} captions; shape {:?}",
            dest.display(),
            rep.captions,
            rep.shape
        );
    }
    Ok(())
}
