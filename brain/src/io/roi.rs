//! ROI index sets from the subject's masks (docs/data.md): detail = every `nsdgeneral`
//! voxel, low-level = `prf-visualrois > 0` inside it, high-level = any `floc-* > 0`
//! inside it. Indices are columns of `fmri/*.npy`, i.e. positions in the `nsdgeneral`
//! voxel order (C order over the volume, as NumPy's `beta[mask > 0]`).

use super::nifti::{read_volume, Volume};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Names of the `prf-visualrois` labels 1..7.
pub const PRF_LABELS: [&str; 7] = ["V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4"];

/// The category-selective masks whose union is the high-level ROI.
pub const FLOC_MASKS: [&str; 4] = ["floc-bodies", "floc-faces", "floc-places", "floc-words"];

/// Extensions tried, in order, for a mask called `name`.
pub const MASK_EXTENSIONS: [&str; 3] = ["nii.gz", "nii", "npy"];

/// The mask `name` in `masks_dir`: `name.nii.gz`, `name.nii` or `name.npy`, the first
/// that exists.
pub fn find_mask(masks_dir: &Path, name: &str) -> Result<PathBuf> {
    for ext in MASK_EXTENSIONS {
        let p = masks_dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Io {
        path: masks_dir.join(format!("{name}.nii.gz")),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("missing mask file: none of {name}.nii.gz, {name}.nii, {name}.npy exists"),
        ),
    })
}

/// The mask files of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoiFiles {
    /// `nsdgeneral`.
    pub nsdgeneral: PathBuf,
    /// `prf-visualrois`.
    pub prf_visualrois: PathBuf,
    /// `floc-bodies`, `floc-faces`, `floc-places`, `floc-words`, in that order.
    pub floc: Vec<PathBuf>,
}

impl RoiFiles {
    /// Every mask of docs/data.md in `masks_dir`; all are required.
    pub fn find(masks_dir: &Path) -> Result<Self> {
        Ok(RoiFiles {
            nsdgeneral: find_mask(masks_dir, "nsdgeneral")?,
            prf_visualrois: find_mask(masks_dir, "prf-visualrois")?,
            floc: FLOC_MASKS
                .iter()
                .map(|n| find_mask(masks_dir, n))
                .collect::<Result<_>>()?,
        })
    }

    /// Read the masks and build the index sets.
    pub fn load(&self) -> Result<RoiSets> {
        let nsd = read_volume(&self.nsdgeneral)?;
        let prf = read_volume(&self.prf_visualrois)?;
        let floc = self
            .floc
            .iter()
            .map(|p| read_volume(p))
            .collect::<Result<Vec<_>>>()?;
        let floc: Vec<(&Path, &Volume)> = self
            .floc
            .iter()
            .map(PathBuf::as_path)
            .zip(floc.iter())
            .collect();
        build_rois(
            (&self.nsdgeneral, &nsd),
            (&self.prf_visualrois, &prf),
            &floc,
        )
    }
}

/// Voxel counts per ROI, for `brain inspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoiCounts {
    /// Volume shape `[X, Y, Z]`.
    pub dims: [usize; 3],
    /// `nsdgeneral > 0` voxels (V, the width of F_D and of `fmri/*.npy`).
    pub detail: usize,
    /// Low-level voxels (F_low).
    pub low: usize,
    /// High-level voxels (F_S = F_high).
    pub high: usize,
    /// Low-level voxels per `prf-visualrois` label (V1v..hV4; other positive labels
    /// under `"other"`).
    pub low_by_label: Vec<(String, usize)>,
    /// `nsdgeneral` voxels inside each floc mask (these overlap).
    pub high_by_mask: Vec<(String, usize)>,
}

/// Index sets into the `nsdgeneral` voxel order.
#[derive(Debug, Clone, PartialEq)]
pub struct RoiSets {
    /// Volume shape `[X, Y, Z]`.
    pub dims: [usize; 3],
    /// Flat C-order volume index of each `nsdgeneral` voxel (fmri column `j`).
    pub voxels: Vec<usize>,
    /// Columns of the low-level voxels, ascending.
    pub low: Vec<usize>,
    /// Columns of the high-level voxels, ascending.
    pub high: Vec<usize>,
    /// Counts for reports.
    pub counts: RoiCounts,
    /// The `nsdgeneral` file (reference header for volumes written back).
    pub nsdgeneral: PathBuf,
}

impl RoiSets {
    /// Number of `nsdgeneral` voxels (V).
    pub fn n_detail(&self) -> usize {
        self.voxels.len()
    }

    /// Scatter one value per `nsdgeneral` voxel back into the volume (0 elsewhere),
    /// C order, e.g. for a contribution map.
    pub fn to_volume(&self, per_voxel: &[f32]) -> Option<Vec<f32>> {
        if per_voxel.len() != self.voxels.len() {
            return None;
        }
        let mut out = vec![0.0; self.dims.iter().product()];
        for (&at, &v) in self.voxels.iter().zip(per_voxel) {
            out[at] = v;
        }
        Some(out)
    }

    /// Scatter values of a subset of columns (`cols`, e.g. [`RoiSets::low`]) into the
    /// volume.
    pub fn subset_to_volume(&self, cols: &[usize], values: &[f32]) -> Option<Vec<f32>> {
        if cols.len() != values.len() {
            return None;
        }
        let mut out = vec![0.0; self.dims.iter().product()];
        for (&c, &v) in cols.iter().zip(values) {
            out[*self.voxels.get(c)?] = v;
        }
        Some(out)
    }
}

fn dims_str(d: &[usize; 3]) -> String {
    format!("{}×{}×{}", d[0], d[1], d[2])
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// The index sets from volumes already read (`(file, volume)` pairs, files for errors).
pub fn build_rois(
    nsdgeneral: (&Path, &Volume),
    prf_visualrois: (&Path, &Volume),
    floc: &[(&Path, &Volume)],
) -> Result<RoiSets> {
    let (nsd_path, nsd) = nsdgeneral;
    let dims = nsd.dims;
    for &(p, v) in std::iter::once(&nsdgeneral)
        .chain(std::iter::once(&prf_visualrois))
        .chain(floc)
    {
        if v.values.len() != v.dims.iter().product::<usize>() {
            return Err(Error::format(
                p,
                format!(
                    "volume holds {} values, its shape {} needs {}",
                    v.values.len(),
                    dims_str(&v.dims),
                    v.dims.iter().product::<usize>()
                ),
            ));
        }
        if v.dims != dims {
            return Err(Error::format(
                p,
                format!(
                    "mask volume is {} but nsdgeneral ({}) is {}; every mask must have the nsdgeneral volume shape",
                    dims_str(&v.dims),
                    nsd_path.display(),
                    dims_str(&dims)
                ),
            ));
        }
    }
    let voxels: Vec<usize> = nsd
        .values
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0.0)
        .map(|(i, _)| i)
        .collect();
    if voxels.is_empty() {
        return Err(Error::format(
            nsd_path,
            "detail ROI is empty: no voxel of nsdgeneral is > 0",
        ));
    }
    let (prf_path, prf) = prf_visualrois;
    let mut low = Vec::new();
    let mut by_label = [0usize; 8];
    for (j, &at) in voxels.iter().enumerate() {
        let l = prf.values[at];
        if l > 0.0 {
            low.push(j);
            let k = l.round();
            let slot = if (1.0..=7.0).contains(&k) {
                k as usize - 1
            } else {
                7
            };
            by_label[slot] += 1;
        }
    }
    if low.is_empty() {
        return Err(Error::format(
            prf_path,
            "low-level ROI is empty: no nsdgeneral voxel is > 0 in prf-visualrois",
        ));
    }
    let mut high = Vec::new();
    let mut high_by_mask = Vec::with_capacity(floc.len());
    let mut in_any = vec![false; voxels.len()];
    for &(p, v) in floc {
        let mut n = 0;
        for (j, &at) in voxels.iter().enumerate() {
            if v.values[at] > 0.0 {
                in_any[j] = true;
                n += 1;
            }
        }
        let name = file_name(p);
        let name = name
            .strip_suffix(".nii.gz")
            .or_else(|| name.strip_suffix(".nii"))
            .or_else(|| name.strip_suffix(".npy"))
            .unwrap_or(&name)
            .to_string();
        high_by_mask.push((name, n));
    }
    high.extend(
        in_any
            .iter()
            .enumerate()
            .filter(|(_, &b)| b)
            .map(|(j, _)| j),
    );
    if high.is_empty() {
        let names: Vec<String> = floc.iter().map(|(p, _)| file_name(p)).collect();
        let dir = floc
            .first()
            .and_then(|(p, _)| p.parent())
            .unwrap_or(nsd_path);
        return Err(Error::format(
            dir,
            format!(
                "high-level ROI is empty: no nsdgeneral voxel is > 0 in any of {}",
                if names.is_empty() {
                    "the floc masks (none given)".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    let mut low_by_label: Vec<(String, usize)> = PRF_LABELS
        .iter()
        .zip(by_label)
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    if by_label[7] > 0 {
        low_by_label.push(("other".into(), by_label[7]));
    }
    let counts = RoiCounts {
        dims,
        detail: voxels.len(),
        low: low.len(),
        high: high.len(),
        low_by_label,
        high_by_mask,
    };
    Ok(RoiSets {
        dims,
        voxels,
        low,
        high,
        counts,
        nsdgeneral: nsd_path.to_path_buf(),
    })
}

/// Find, read and index the masks in `masks_dir`.
pub fn load_rois(masks_dir: &Path) -> Result<RoiSets> {
    RoiFiles::find(masks_dir)?.load()
}
