//! Target preparation (SPEC §5, docs/data.md "Per-layer CLIP files"): per-layer CLIP
//! vision token files fused into e_I,D (mean of layers `first..=last`) and e_I,S (one
//! layer), and caption embeddings averaged per image, all streamed a block of trials at
//! a time.
//!
//! Memory stays O(block · tokens · dim): rows are read with [`read_rows`] (memory-mapped
//! above [`crate::io::npy::MMAP_THRESHOLD`]), and every output is written incrementally
//! into a temporary file next to it (header for the final shape first, then row blocks),
//! fsynced and renamed at the end. On any error the temporary files are removed and the
//! previous outputs, if any, are left as they were.
//!
//! Means are accumulated in `f64`, terms in a fixed order (ascending layer, caption
//! order), and divided once before the cast to `f32`. `f64` carries 29 more significand
//! bits than the `f32`/`f16` inputs, so a sum of a handful of terms is exact or within
//! one rounding of it: the result does not depend on the block size or on the order
//! files were listed; it is the arithmetic of NumPy's
//! `np.stack(layers).astype(np.float64).mean(0).astype(np.float32)` and of the loader's
//! in-memory caption average. (`float64` inputs are rounded to `f32` on read, as every
//! data file is.)

use crate::error::{Error, Result};
use crate::io::npy::{read_info, read_rows, shape_str, Dtype, Int16Scale, NpyInfo};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Output file of the detail target e_I,D.
pub const DETAIL_FILE: &str = "clip_image_detail.npy";
/// Output file of the semantic target e_I,S.
pub const SEMANTIC_FILE: &str = "clip_image_semantic.npy";
/// First layer of the detail mean (the paper; 10 is the other common choice).
pub const DEFAULT_DETAIL_FIRST: usize = 11;
/// Last layer of the detail mean.
pub const DEFAULT_DETAIL_LAST: usize = 20;
/// The semantic layer (ViT-L/14's last).
pub const DEFAULT_SEMANTIC: usize = 24;
/// Bytes of `f32` rows [`block_for`] aims a block at. A fuse holds about five times
/// this (the `f64` sums, the rows read, the mean written): ~160 MiB.
pub const DEFAULT_BLOCK_BYTES: usize = 32 << 20;

/// What [`fuse_vision_layers`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuseReport {
    /// Shape of both outputs, `[trials, tokens, dim]`.
    pub shape: Vec<usize>,
    /// The files averaged into the detail target, in layer order.
    pub detail_layers: Vec<PathBuf>,
    /// The file copied into the semantic target.
    pub semantic_layer: PathBuf,
    /// The detail output written.
    pub detail: PathBuf,
    /// The semantic output written.
    pub semantic: PathBuf,
}

/// What [`average_captions`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionReport {
    /// Captions averaged per trial.
    pub captions: usize,
    /// Shape written, `[trials, tokens, dim]`.
    pub shape: Vec<usize>,
}

/// Trials per block so that a block of rows of `row_elems` `f32` values is about
/// [`DEFAULT_BLOCK_BYTES`] (at least 1).
pub fn block_for(row_elems: usize) -> usize {
    (DEFAULT_BLOCK_BYTES / row_elems.saturating_mul(4).max(1)).max(1)
}

/// Path of layer `k` in `dir`: `clip_vision_layer{k}.npy`, or the zero-padded
/// `clip_vision_layer{k:02}.npy`; an error names the file if neither or both exist.
pub fn layer_path(dir: &Path, k: usize) -> Result<PathBuf> {
    let plain = dir.join(format!("clip_vision_layer{k}.npy"));
    let padded = dir.join(format!("clip_vision_layer{k:02}.npy"));
    let has_padded = padded != plain && padded.exists();
    match (plain.exists(), has_padded) {
        (true, false) => Ok(plain),
        (false, true) => Ok(padded),
        (true, true) => Err(Error::format(
            &padded,
            format!(
                "layer {k} is given twice, as {} and as this file; keep one",
                plain.display()
            ),
        )),
        (false, false) => {
            let have = match present_layers(dir) {
                Ok(v) if v.is_empty() => "no clip_vision_layer*.npy file is there".to_string(),
                Ok(v) => {
                    let parts: Vec<String> = v.iter().map(|k| k.to_string()).collect();
                    format!("layers {} are there", parts.join(", "))
                }
                Err(e) => format!("the folder cannot be listed ({e})"),
            };
            Err(Error::format(
                &plain,
                format!("layer {k} is missing ({have})"),
            ))
        }
    }
}

/// Layer numbers of the `clip_vision_layer{k}.npy` files in `dir`, sorted.
fn present_layers(dir: &Path) -> std::io::Result<Vec<usize>> {
    let mut ks = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let k = name
            .strip_prefix("clip_vision_layer")
            .and_then(|s| s.strip_suffix(".npy"))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok());
        if let Some(k) = k {
            ks.push(k);
        }
    }
    ks.sort_unstable();
    ks.dedup();
    Ok(ks)
}

/// Header of a float target file; int16 and mask types are refused.
fn float_info(path: &Path) -> Result<NpyInfo> {
    let info = read_info(path)?;
    if !matches!(info.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16) {
        return Err(Error::format(
            path,
            format!(
                "dtype {}: CLIP embeddings must be float32, float64 or float16",
                info.dtype.name()
            ),
        ));
    }
    Ok(info)
}

/// Error unless every value of the block `data` (rows from `start`) is finite.
fn check_finite(path: &Path, data: &[f32], start: usize, row: &[usize]) -> Result<()> {
    let Some(k) = data.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let width = row.iter().product::<usize>().max(1);
    let (i, mut j) = (start + k / width, k % width);
    let mut idx = vec![0; row.len()];
    for (slot, &d) in idx.iter_mut().zip(row).rev() {
        *slot = j % d.max(1);
        j /= d.max(1);
    }
    let idx: Vec<String> = idx.iter().map(|v| v.to_string()).collect();
    Err(Error::format(
        path,
        format!(
            "non-finite value {} at trial {i} (index [{}] within the trial)",
            data[k],
            idx.join(", ")
        ),
    ))
}

/// `Vec` of `n` zeros, or an error naming `path` instead of an abort.
fn zeros<T: Clone + Default>(path: &Path, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::format(
            path,
            format!("cannot allocate a block of {n} values; use a smaller block"),
        )
    })?;
    v.resize(n, T::default());
    Ok(v)
}

/// `rows` as read has the `[count, ...]` shape of `info` (the file did not change).
fn check_rows(path: &Path, info: &NpyInfo, got: &[usize], count: usize) -> Result<()> {
    let mut want = info.shape.clone();
    want[0] = count;
    if got == want.as_slice() {
        return Ok(());
    }
    Err(Error::format(
        path,
        format!(
            "changed while being read: shape {} became {}",
            shape_str(&info.shape),
            shape_str(got)
        ),
    ))
}

/// Keep the temporary names of concurrent writers in one process apart.
static TMP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A `<f4` C-order `.npy` written row block by row block into a temporary sibling and
/// renamed by [`NpyStream::commit`]; dropped uncommitted, the temporary file is removed.
struct NpyStream {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    left: u64,
}

impl NpyStream {
    /// Create the temporary file and write the header of `shape`.
    fn create(path: &Path, shape: &[usize]) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| Error::format(path, "not a file path"))?
            .to_string_lossy();
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
        let header = crate::io::npy::encode_f32_header(shape).ok_or_else(|| {
            Error::format(path, format!("shape {} is too large", shape_str(shape)))
        })?;
        let left = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| {
                Error::format(path, format!("shape {} is too large", shape_str(shape)))
            })?;
        let file = File::create(&tmp).map_err(|e| Error::io(path, e))?;
        // From here on, `Drop` removes `tmp` whatever happens.
        let mut s = NpyStream {
            path: path.to_path_buf(),
            tmp,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            left,
        };
        s.write_bytes(&header)?;
        Ok(s)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Err(Error::format(&self.path, "written after it was closed"));
        };
        f.write_all(bytes).map_err(|e| Error::io(&self.path, e))
    }

    /// Append `data` (whole rows, C order).
    fn write(&mut self, data: &[f32]) -> Result<()> {
        let n = data.len() as u64;
        if n > self.left {
            return Err(Error::format(
                &self.path,
                format!("{n} more values than its header announces"),
            ));
        }
        self.left -= n;
        let mut buf = Vec::with_capacity(data.len().min(1 << 18) * 4);
        for chunk in data.chunks(1 << 18) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            self.write_bytes(&buf)?;
        }
        Ok(())
    }

    /// Flush and fsync the temporary file (it must hold every value).
    fn finish(&mut self) -> Result<()> {
        if self.left != 0 {
            return Err(Error::format(
                &self.path,
                format!("{} values short of its header", self.left),
            ));
        }
        let Some(w) = self.file.take() else {
            return Ok(());
        };
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.path, e))
    }

    /// Rename the finished temporary file to its final name.
    fn commit(mut self) -> Result<()> {
        self.finish()?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        // Renamed: nothing left for `Drop` to remove.
        self.tmp = PathBuf::new();
        sync_dir(&self.path);
        Ok(())
    }
}

impl Drop for NpyStream {
    fn drop(&mut self) {
        self.file = None;
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Best effort: make a rename in `path`'s folder durable.
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Create `dir` (and parents) for outputs; the error names it.
fn make_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Fuse the per-layer files `clip_vision_layer{k}.npy` (`[trials, tokens, dim]`,
/// float32/64/16, all of one shape) of `layers_dir` into `out_dir/clip_image_detail.npy`
/// (mean of layers `first..=last`) and `out_dir/clip_image_semantic.npy` (layer
/// `semantic`), both float32, reading `block` trials of each layer at a time (0 is taken
/// as 1; see [`block_for`]). `progress` gets (trials done, trials) after each block,
/// starting with (0, trials). `out_dir` is created if needed.
pub fn fuse_vision_layers(
    layers_dir: &Path,
    first: usize,
    last: usize,
    semantic: usize,
    out_dir: &Path,
    block: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FuseReport> {
    fuse_vision_layers_projected(
        layers_dir, first, last, semantic, out_dir, block, None, progress,
    )
}

/// [`fuse_vision_layers`] on raw hidden states `[trials, tokens, d_in]`: every layer is
/// first brought to the token space by `projection` (post_layernorm, visual_projection,
/// division by the CLS token's norm; SPEC §5), then averaged. `None` takes the layers
/// as already projected.
#[allow(clippy::too_many_arguments)]
pub fn fuse_vision_layers_projected(
    layers_dir: &Path,
    first: usize,
    last: usize,
    semantic: usize,
    out_dir: &Path,
    block: usize,
    projection: Option<&crate::projection::ClipProjection>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FuseReport> {
    if first > last {
        return Err(Error::format(
            layers_dir,
            format!("the detail layer range {first}..={last} is empty (first > last)"),
        ));
    }
    if !layers_dir.is_dir() {
        return Err(Error::format(
            layers_dir,
            "is not a folder of per-layer CLIP files",
        ));
    }
    // Every layer needed, each read once per block: ascending order is the sum's order.
    let mut layers: BTreeMap<usize, (PathBuf, NpyInfo)> = BTreeMap::new();
    for k in (first..=last).chain(std::iter::once(semantic)) {
        if layers.contains_key(&k) {
            continue;
        }
        let path = layer_path(layers_dir, k)?;
        let info = float_info(&path)?;
        if info.shape.len() != 3 {
            return Err(Error::format(
                &path,
                format!(
                    "shape {} is not [trials, tokens, dim]",
                    shape_str(&info.shape)
                ),
            ));
        }
        layers.insert(k, (path, info));
    }
    let in_shape = common_shape(&layers)?;
    let (trials, row) = (in_shape[0], &in_shape[1..]);
    let mut shape = in_shape.clone();
    if let Some(p) = projection {
        if row[1] != p.d_in {
            return Err(Error::format(
                &layers[&first].0,
                format!(
                    "hidden states are {} wide but {} projects {}-wide states",
                    row[1],
                    p.path.display(),
                    p.d_in
                ),
            ));
        }
        shape[2] = p.d_out;
    }
    let width: usize = shape[1..].iter().product();
    let count = (last - first + 1) as f64;

    make_dir(out_dir)?;
    let detail_path = out_dir.join(DETAIL_FILE);
    let semantic_path = out_dir.join(SEMANTIC_FILE);
    let mut detail_out = NpyStream::create(&detail_path, &shape)?;
    let mut semantic_out = NpyStream::create(&semantic_path, &shape)?;

    let block = block.clamp(1, trials.max(1));
    let first_path = &layers[&first].0;
    let mut acc: Vec<f64> = zeros(first_path, block * width)?;
    let mut mean: Vec<f32> = zeros(first_path, block * width)?;
    progress(0, trials);
    let mut start = 0;
    while start < trials {
        let n = block.min(trials - start);
        let acc = &mut acc[..n * width];
        acc.fill(0.0);
        for (&k, (path, info)) in &layers {
            let rows = read_rows(path, start, n, Int16Scale::AsIs)?;
            check_rows(path, info, &rows.shape, n)?;
            check_finite(path, &rows.data, start, row)?;
            let tokens = match projection {
                Some(p) => p.apply(&rows.data, n, row[0])?,
                None => rows.data,
            };
            if (first..=last).contains(&k) {
                for (a, &v) in acc.iter_mut().zip(&tokens) {
                    *a += v as f64;
                }
            }
            if k == semantic {
                semantic_out.write(&tokens)?;
            }
        }
        let mean = &mut mean[..n * width];
        for (m, &a) in mean.iter_mut().zip(acc.iter()) {
            *m = (a / count) as f32;
        }
        detail_out.write(mean)?;
        start += n;
        progress(start, trials);
    }
    detail_out.finish()?;
    semantic_out.finish()?;
    detail_out.commit()?;
    semantic_out.commit()?;
    Ok(FuseReport {
        shape,
        detail_layers: (first..=last).map(|k| layers[&k].0.clone()).collect(),
        semantic_layer: layers[&semantic].0.clone(),
        detail: detail_path,
        semantic: semantic_path,
    })
}

/// The shape most layers have; an error names a file that differs.
fn common_shape(layers: &BTreeMap<usize, (PathBuf, NpyInfo)>) -> Result<Vec<usize>> {
    let mut votes: Vec<(&[usize], usize, &Path)> = Vec::new();
    for (path, info) in layers.values() {
        match votes
            .iter_mut()
            .find(|(s, _, _)| *s == info.shape.as_slice())
        {
            Some(v) => v.1 += 1,
            None => votes.push((&info.shape, 1, path)),
        }
    }
    // Most common shape; on a tie, the one seen first (lowest layer).
    let mut best = 0;
    for (i, v) in votes.iter().enumerate() {
        if v.1 > votes[best].1 {
            best = i;
        }
    }
    let (shape, _, ref_path) = votes[best];
    for (path, info) in layers.values() {
        if info.shape != shape {
            return Err(Error::format(
                path,
                format!(
                    "shape {} differs from {} of {} (every layer must have the same shape)",
                    shape_str(&info.shape),
                    shape_str(shape),
                    ref_path.display()
                ),
            ));
        }
    }
    Ok(shape.to_vec())
}

/// Average `[trials, captions, tokens, dim]` caption embeddings of `path_in` over the
/// caption axis into a float32 `[trials, tokens, dim]` at `path_out` (what the loader
/// does in memory), streamed in blocks of about [`DEFAULT_BLOCK_BYTES`].
pub fn average_captions(path_in: &Path, path_out: &Path) -> Result<CaptionReport> {
    average_captions_with(path_in, path_out, 0, &mut |_, _| {})
}

/// [`average_captions`] reading `block` trials at a time (0: [`block_for`] the input
/// rows), calling `progress` with (trials done, trials) as [`fuse_vision_layers`] does.
pub fn average_captions_with(
    path_in: &Path,
    path_out: &Path,
    block: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CaptionReport> {
    let info = float_info(path_in)?;
    let &[trials, captions, tokens, dim] = info.shape.as_slice() else {
        return Err(Error::format(
            path_in,
            format!(
                "shape {} is not [trials, captions, tokens, dim]",
                shape_str(&info.shape)
            ),
        ));
    };
    if captions == 0 {
        return Err(Error::format(
            path_in,
            format!(
                "shape {} has no captions to average",
                shape_str(&info.shape)
            ),
        ));
    }
    let width = tokens * dim;
    let shape = vec![trials, tokens, dim];
    let block = if block == 0 {
        block_for(info.row_width())
    } else {
        block
    };
    let block = block.clamp(1, trials.max(1));

    if let Some(dir) = path_out.parent() {
        make_dir(dir)?;
    }
    let mut out = NpyStream::create(path_out, &shape)?;
    let mut acc: Vec<f64> = zeros(path_in, width)?;
    let mut mean: Vec<f32> = zeros(path_in, block * width)?;
    progress(0, trials);
    let mut start = 0;
    while start < trials {
        let n = block.min(trials - start);
        let rows = read_rows(path_in, start, n, Int16Scale::AsIs)?;
        check_rows(path_in, &info, &rows.shape, n)?;
        check_finite(path_in, &rows.data, start, &info.shape[1..])?;
        for i in 0..n {
            acc.fill(0.0);
            for c in 0..captions {
                let at = (i * captions + c) * width;
                for (a, &v) in acc.iter_mut().zip(&rows.data[at..at + width]) {
                    *a += v as f64;
                }
            }
            for (m, &a) in mean[i * width..(i + 1) * width].iter_mut().zip(&acc) {
                *m = (a / captions as f64) as f32;
            }
        }
        out.write(&mean[..n * width])?;
        start += n;
        progress(start, trials);
    }
    out.commit()?;
    Ok(CaptionReport { captions, shape })
}
