//! One subject folder of docs/data.md read into the trainer's [`Dataset`]s.
//!
//! Headers are checked first ([`inspect_subject`]: dtypes, C order, sizes, voxel and
//! trial counts) so a bad file is reported before gigabytes are read; then the betas
//! are read, checked for NaN/Inf, z-scored with the training statistics and cut into
//! the ROI arrays, and the target files that exist are read.

use super::npy::{self, shape_str, Dtype, Int16Scale, NpyInfo};
use super::roi::{load_rois, RoiCounts, RoiSets};
use super::zscore::ZScore;
use crate::error::{Error, Result};
use crate::synthetic::SyntheticConfig;
use brain_core::train::Dataset;
use brain_core::BrainError;
use std::path::{Path, PathBuf};

/// Names of the arrays a loaded split can hold.
pub const ARRAY_NAMES: [&str; 10] = [
    "f_s", "f_d", "f_low", "f_high", "e_t", "e_is", "e_id", "e_img", "e_cap", "z",
];

/// How the per-trial axes of a target file may look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[n, tokens, dim]` or `[n, captions, tokens, dim]` (captions averaged).
    Text,
    /// `[n, tokens, dim]`.
    Tokens,
    /// `[n, ...]` (latents, any rank ≥ 2).
    Any,
}

/// A target file and the arrays it fills.
#[derive(Debug, Clone, Copy)]
struct TargetFile {
    file: &'static str,
    names: &'static [&'static str],
    layout: Layout,
}

const TARGETS: [TargetFile; 4] = [
    TargetFile {
        file: "clip_text.npy",
        names: &["e_t", "e_cap"],
        layout: Layout::Text,
    },
    TargetFile {
        file: "clip_image_semantic.npy",
        names: &["e_is", "e_img"],
        layout: Layout::Tokens,
    },
    TargetFile {
        file: "clip_image_detail.npy",
        names: &["e_id"],
        layout: Layout::Tokens,
    },
    TargetFile {
        file: "latents.npy",
        names: &["z"],
        layout: Layout::Any,
    },
];

/// What [`load_subject`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Z-score every voxel with the training trials' mean and std (docs/data.md).
    pub zscore: bool,
    /// Arrays to keep (names of [`ARRAY_NAMES`]); `None` keeps all. Target files none
    /// of whose arrays is wanted are not read, which matters at NSD's sizes (the two
    /// 257×768 token files of subject 1 are 7 GB each as f32).
    pub arrays: Option<Vec<String>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            zscore: true,
            arrays: None,
        }
    }
}

impl LoadOptions {
    fn wants(&self, name: &str) -> bool {
        self.arrays
            .as_ref()
            .is_none_or(|a| a.iter().any(|n| n == name))
    }
}

/// Header of one array file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayInfo {
    /// The file.
    pub path: PathBuf,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its element type.
    pub dtype: Dtype,
}

/// One split's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitInfo {
    /// Trials (rows of every file).
    pub trials: usize,
    /// `fmri/<split>.npy`.
    pub fmri: ArrayInfo,
    /// Target files present, by file name (`clip_text.npy`, ...).
    pub targets: Vec<(String, ArrayInfo)>,
}

/// What a subject folder holds, from headers only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectInfo {
    /// The folder.
    pub dir: PathBuf,
    /// Voxels per ROI.
    pub rois: RoiCounts,
    /// Training split.
    pub train: SplitInfo,
    /// Test split.
    pub test: SplitInfo,
}

/// A subject read for training.
#[derive(Debug, Clone)]
pub struct LoadedSubject {
    /// Training trials: `f_s`, `f_d`, `f_low`, `f_high` and the targets present.
    pub train: Dataset,
    /// Test trials, same arrays.
    pub test: Dataset,
    /// ROI index sets into the `nsdgeneral` voxel order.
    pub rois: RoiSets,
    /// The statistics applied, when z-scoring was asked for.
    pub zscore: Option<ZScore>,
    /// The headers the data was read by.
    pub info: SubjectInfo,
}

fn info_of(path: &Path) -> Result<ArrayInfo> {
    let NpyInfo { shape, dtype, .. } = npy::read_info(path)?;
    if !dtype.is_data() {
        return Err(Error::format(
            path,
            format!(
                "dtype {} is not supported; arrays must be float32, float64, float16 or int16",
                dtype.name()
            ),
        ));
    }
    Ok(ArrayInfo {
        path: path.to_path_buf(),
        shape,
        dtype,
    })
}

fn check_target_rank(a: &ArrayInfo, layout: Layout) -> Result<()> {
    let ok = match layout {
        Layout::Text => matches!(a.shape.len(), 3 | 4),
        Layout::Tokens => a.shape.len() == 3,
        Layout::Any => a.shape.len() >= 2,
    };
    if ok {
        return Ok(());
    }
    let want = match layout {
        Layout::Text => "[trials, tokens, dim] or [trials, captions, tokens, dim]",
        Layout::Tokens => "[trials, tokens, dim]",
        Layout::Any => "[trials, ...]",
    };
    Err(Error::format(
        &a.path,
        format!("shape {} is not {want}", shape_str(&a.shape)),
    ))
}

/// Shape of one trial once loaded (captions averaged away).
fn trial_shape(a: &ArrayInfo, layout: Layout) -> &[usize] {
    let skip = if layout == Layout::Text && a.shape.len() == 4 {
        2
    } else {
        1
    };
    &a.shape[skip.min(a.shape.len())..]
}

/// Width of one trial once loaded.
fn loaded_width(a: &ArrayInfo, layout: Layout) -> usize {
    trial_shape(a, layout).iter().product()
}

fn split_info(dir: &Path, split: &str, n_voxels: usize, nsd: &Path) -> Result<SplitInfo> {
    let fmri_path = dir.join("fmri").join(format!("{split}.npy"));
    let fmri = info_of(&fmri_path)?;
    if fmri.shape.len() != 2 {
        return Err(Error::format(
            &fmri_path,
            format!("shape {} is not [trials, voxels]", shape_str(&fmri.shape)),
        ));
    }
    if fmri.shape[1] != n_voxels {
        return Err(Error::format(
            &fmri_path,
            format!(
                "has {} voxel columns but nsdgeneral ({}) selects {n_voxels} voxels",
                fmri.shape[1],
                nsd.display()
            ),
        ));
    }
    let trials = fmri.shape[0];
    let mut targets = Vec::new();
    for t in TARGETS {
        let p = dir.join("targets").join(split).join(t.file);
        if !p.exists() {
            continue;
        }
        let a = info_of(&p)?;
        check_target_rank(&a, t.layout)?;
        if a.shape[0] != trials {
            return Err(Error::format(
                &p,
                format!(
                    "has {} trials but {} has {trials}; row i of every {split} file must be the same stimulus",
                    a.shape[0],
                    fmri_path.display()
                ),
            ));
        }
        targets.push((t.file.to_string(), a));
    }
    Ok(SplitInfo {
        trials,
        fmri,
        targets,
    })
}

/// Check the headers of a subject folder and count its ROIs, without reading the data.
pub fn inspect_subject(dir: &Path) -> Result<SubjectInfo> {
    let rois = load_rois(&dir.join("masks"))?;
    inspect_with(dir, &rois)
}

fn inspect_with(dir: &Path, rois: &RoiSets) -> Result<SubjectInfo> {
    let train = split_info(dir, "train", rois.n_detail(), &rois.nsdgeneral)?;
    let test = split_info(dir, "test", rois.n_detail(), &rois.nsdgeneral)?;
    // A target in one split only, or with other per-trial shapes, cannot be trained
    // and evaluated on.
    for t in TARGETS {
        let a = train.targets.iter().find(|(f, _)| f == t.file);
        let b = test.targets.iter().find(|(f, _)| f == t.file);
        match (a, b) {
            (Some((_, a)), Some((_, b))) => {
                if trial_shape(a, t.layout) != trial_shape(b, t.layout) {
                    return Err(Error::format(
                        &b.path,
                        format!(
                            "shape {} does not match the training file {} ({})",
                            shape_str(&b.shape),
                            a.path.display(),
                            shape_str(&a.shape)
                        ),
                    ));
                }
            }
            (Some((_, a)), None) | (None, Some((_, a))) => {
                let other = if b.is_none() { "test" } else { "train" };
                return Err(Error::format(
                    &a.path,
                    format!(
                        "has no counterpart in targets/{other}/ ({} is missing there)",
                        t.file
                    ),
                ));
            }
            (None, None) => {}
        }
    }
    Ok(SubjectInfo {
        dir: dir.to_path_buf(),
        rois: rois.counts.clone(),
        train,
        test,
    })
}

/// `"trial i, <what> j"` of flat index `k` in rows of `width`, with the index inside the
/// trial when a trial has several axes.
fn locate(k: usize, shape: &[usize], what: &str) -> String {
    let width: usize = shape.iter().skip(1).product::<usize>().max(1);
    let (i, mut j) = (k / width, k % width);
    let mut s = format!("trial {i}, {what} {j}");
    if shape.len() > 2 {
        let mut idx = vec![0; shape.len() - 1];
        for (slot, &d) in idx.iter_mut().zip(&shape[1..]).rev() {
            *slot = j % d.max(1);
            j /= d.max(1);
        }
        let parts: Vec<String> = idx.iter().map(|v| v.to_string()).collect();
        s.push_str(&format!(" (index [{}] within the trial)", parts.join(", ")));
    }
    s
}

fn check_finite(path: &Path, shape: &[usize], data: &[f32], what: &str) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => Err(Error::format(
            path,
            format!("non-finite value {} at {}", data[k], locate(k, shape, what)),
        )),
    }
}

/// The file still has the shape its header was checked with.
fn same_shape(a: &ArrayInfo, shape: &[usize]) -> Result<()> {
    if a.shape == shape {
        return Ok(());
    }
    Err(Error::format(
        &a.path,
        format!(
            "changed while being read: shape {} became {}",
            shape_str(&a.shape),
            shape_str(shape)
        ),
    ))
}

fn gather(data: &[f32], width: usize, cols: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.len() / width.max(1) * cols.len());
    for row in data.chunks_exact(width) {
        out.extend(cols.iter().map(|&c| row[c]));
    }
    out
}

/// Mean over the caption axis of `[n, captions, w]`.
fn average_captions(data: &[f32], n: usize, captions: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n * w];
    for (i, o) in out.chunks_exact_mut(w.max(1)).enumerate().take(n) {
        let mut acc = vec![0.0f64; w];
        for c in 0..captions {
            let src = &data[(i * captions + c) * w..(i * captions + c + 1) * w];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += v as f64;
            }
        }
        for (d, a) in o.iter_mut().zip(&acc) {
            *d = (*a / captions as f64) as f32;
        }
    }
    out
}

fn insert(ds: &mut Dataset, name: &str, width: usize, data: Vec<f32>) -> Result<()> {
    ds.insert(name, width, data).map_err(Error::Core)
}

/// One split's dataset from its (z-scored) betas and its target files.
fn build_split(s: &SplitInfo, f: Vec<f32>, rois: &RoiSets, opts: &LoadOptions) -> Result<Dataset> {
    let v = rois.n_detail();
    let mut ds = Dataset::new(s.trials);
    let high = gather(&f, v, &rois.high);
    let low = gather(&f, v, &rois.low);
    if opts.wants("f_s") {
        insert(&mut ds, "f_s", rois.high.len(), high.clone())?;
    }
    if opts.wants("f_high") {
        insert(&mut ds, "f_high", rois.high.len(), high)?;
    }
    if opts.wants("f_low") {
        insert(&mut ds, "f_low", rois.low.len(), low)?;
    }
    if opts.wants("f_d") {
        insert(&mut ds, "f_d", v, f)?;
    }
    for t in TARGETS {
        let wanted: Vec<&str> = t.names.iter().copied().filter(|n| opts.wants(n)).collect();
        let Some((_, a)) = s.targets.iter().find(|(f, _)| f == t.file) else {
            continue;
        };
        if wanted.is_empty() {
            continue;
        }
        let arr = npy::read_f32(&a.path, Int16Scale::AsIs)?;
        same_shape(a, &arr.shape)?;
        check_finite(&a.path, &arr.shape, &arr.data, "element")?;
        let w = loaded_width(a, t.layout);
        let mut data = if t.layout == Layout::Text && arr.shape.len() == 4 {
            average_captions(&arr.data, s.trials, arr.shape[1], w)
        } else {
            arr.data
        };
        for (i, n) in wanted.iter().enumerate() {
            let d = if i + 1 < wanted.len() {
                data.clone()
            } else {
                std::mem::take(&mut data)
            };
            insert(&mut ds, n, w, d)?;
        }
    }
    Ok(ds)
}

/// Read the subject folder `dir` (docs/data.md) into train and test [`Dataset`]s with
/// arrays `f_s`, `f_d`, `f_low`, `f_high` and, for the target files present, `e_t`,
/// `e_cap` (clip_text), `e_is`, `e_img` (clip_image_semantic), `e_id`
/// (clip_image_detail), `z` (latents), each `[trials, width]`.
pub fn load_subject(dir: &Path, opts: &LoadOptions) -> Result<LoadedSubject> {
    if let Some(bad) = opts
        .arrays
        .iter()
        .flatten()
        .find(|n| !ARRAY_NAMES.contains(&n.as_str()))
    {
        return Err(Error::Core(BrainError::InvalidArgument {
            op: "load_subject",
            reason: format!("unknown array `{bad}`; known: {}", ARRAY_NAMES.join(", ")),
        }));
    }
    let rois = load_rois(&dir.join("masks"))?;
    let info = inspect_with(dir, &rois)?;
    let v = rois.n_detail();
    let read = |s: &SplitInfo| -> Result<Vec<f32>> {
        let a = npy::read_f32(&s.fmri.path, Int16Scale::NsdBetas)?;
        same_shape(&s.fmri, &a.shape)?;
        check_finite(&s.fmri.path, &a.shape, &a.data, "voxel")?;
        Ok(a.data)
    };
    let mut f_train = read(&info.train)?;
    let mut f_test = read(&info.test)?;
    let zscore = if opts.zscore {
        let z = ZScore::fit(&f_train, v).map_err(|e| match e {
            Error::Core(c) => Error::format(&info.train.fmri.path, format!("cannot z-score: {c}")),
            other => other,
        })?;
        z.apply(&mut f_train)?;
        z.apply(&mut f_test)?;
        Some(z)
    } else {
        None
    };
    let train = build_split(&info.train, f_train, &rois, opts)?;
    let test = build_split(&info.test, f_test, &rois, opts)?;
    Ok(LoadedSubject {
        train,
        test,
        rois,
        zscore,
        info,
    })
}

/// Write the synthetic subject of `cfg` in the layout of docs/data.md (float32 `.npy`,
/// `.nii.gz` masks), so `load_subject(dir, &LoadOptions { zscore: false, .. })` gives
/// back [`crate::synthetic::generate`]'s datasets exactly.
///
/// The volume interleaves the `nsdgeneral` voxels with voxels outside the brain (−1) and
/// outside the ROI (0), and puts ROI labels on some of those outside voxels too, so a
/// reader that forgets "inside nsdgeneral" or walks the volume in the wrong order gets
/// other columns.
pub fn write_synthetic(dir: &Path, cfg: &SyntheticConfig) -> Result<()> {
    let subject = crate::synthetic::generate(cfg)?;
    let (n_low, v) = (cfg.n_low, cfg.n_detail());
    // Every other voxel (C order) is an nsdgeneral voxel; the first n_low are low-level.
    let (yz, z) = (8 * 8, 8);
    let x = (2 * v + 3).div_ceil(yz);
    let dims = [x, 8, 8];
    let total = x * yz;
    let mut nsd = vec![0.0f32; total];
    let mut prf = vec![0.0f32; total];
    let mut floc = vec![vec![0.0f32; total]; 4];
    for k in 0..total {
        if k % 2 == 0 && k / 2 < v {
            let j = k / 2;
            nsd[k] = 1.0;
            if j < n_low {
                prf[k] = (1 + j % 7) as f32;
            } else {
                let h = j - n_low;
                floc[h % 4][k] = 1.0;
                if h % 5 == 0 {
                    floc[(h + 1) % 4][k] = 2.0;
                }
            }
        } else {
            // Outside: alternate "outside the brain" and "outside the ROI", with stray
            // labels that must be ignored.
            nsd[k] = if (k / z) % 2 == 0 { -1.0 } else { 0.0 };
            if k % 3 == 0 {
                prf[k] = 2.0;
            }
            if k % 5 == 0 {
                floc[k % 4][k] = 1.0;
            }
        }
    }
    let masks = dir.join("masks");
    std::fs::create_dir_all(&masks).map_err(|e| Error::io(&masks, e))?;
    super::nifti::write_volume(&masks.join("nsdgeneral.nii.gz"), dims, &nsd, None)?;
    let reference = masks.join("nsdgeneral.nii.gz");
    super::nifti::write_volume(
        &masks.join("prf-visualrois.nii.gz"),
        dims,
        &prf,
        Some(&reference),
    )?;
    for (name, m) in super::roi::FLOC_MASKS.iter().zip(&floc) {
        super::nifti::write_volume(
            &masks.join(format!("{name}.nii.gz")),
            dims,
            m,
            Some(&reference),
        )?;
    }
    let fmri_dir = dir.join("fmri");
    std::fs::create_dir_all(&fmri_dir).map_err(|e| Error::io(&fmri_dir, e))?;
    let (tt, ti, d, l) = (
        cfg.text_tokens,
        cfg.image_tokens,
        cfg.embed_dim,
        cfg.latent_size,
    );
    for (split, ds) in [("train", &subject.train), ("test", &subject.test)] {
        let n = ds.len();
        let get = |name: &str| -> Result<&[f32]> {
            ds.get(name)
                .map(|(d, _)| d)
                .ok_or_else(|| Error::format(dir, format!("synthetic subject has no `{name}`")))
        };
        npy::write_f32(&fmri_dir.join(format!("{split}.npy")), &[n, v], get("f_d")?)?;
        let tdir = dir.join("targets").join(split);
        std::fs::create_dir_all(&tdir).map_err(|e| Error::io(&tdir, e))?;
        npy::write_f32(&tdir.join("clip_text.npy"), &[n, tt, d], get("e_t")?)?;
        npy::write_f32(
            &tdir.join("clip_image_semantic.npy"),
            &[n, ti, d],
            get("e_is")?,
        )?;
        npy::write_f32(
            &tdir.join("clip_image_detail.npy"),
            &[n, ti, d],
            get("e_id")?,
        )?;
        npy::write_f32(&tdir.join("latents.npy"), &[n, 4, l, l], get("z")?)?;
    }
    Ok(())
}
