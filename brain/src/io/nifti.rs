//! 3-D volumes (ROI masks, contribution maps) from and to NIfTI-1 (`.nii`, `.nii.gz`)
//! through the `nifti` crate, or `.npy`.
//!
//! Values are returned in C order over `(X, Y, Z)` (z fastest), the order NumPy walks
//! `np.asarray(img.dataobj)` in, so `values[mask > 0]` here lines up with
//! `beta[mask > 0]` in Python. NIfTI itself stores x fastest; the crate hands back an
//! array indexed `[x, y, z]` and we iterate it logically, not in memory order.

use super::npy;
use crate::error::{Error, Result};
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiError, NiftiHeader, NiftiObject, NiftiVolume, ReaderOptions};
use std::path::{Path, PathBuf};

/// A 3-D volume, values in C order over `(X, Y, Z)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// `[X, Y, Z]`.
    pub dims: [usize; 3],
    /// `X·Y·Z` values, index `(x·Y + y)·Z + z`.
    pub values: Vec<f32>,
}

/// How a volume file is stored, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeFormat {
    /// `.nii`.
    Nifti,
    /// `.nii.gz`.
    NiftiGz,
    /// `.npy`.
    Npy,
}

impl VolumeFormat {
    /// The format of `path` by its extension.
    pub fn of(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".nii.gz") {
            Ok(VolumeFormat::NiftiGz)
        } else if name.ends_with(".nii") {
            Ok(VolumeFormat::Nifti)
        } else if name.ends_with(".npy") {
            Ok(VolumeFormat::Npy)
        } else {
            Err(Error::format(
                path,
                "unknown volume format; expected .nii, .nii.gz or .npy",
            ))
        }
    }
}

fn dims_str(d: &[usize]) -> String {
    let parts: Vec<String> = d.iter().map(|v| v.to_string()).collect();
    parts.join("×")
}

/// `[X, Y, Z]` from a shape, allowing trailing axes of length 1 (a 4-D file with one
/// volume) and fewer than three axes (padded with 1).
fn three_d(path: &Path, shape: &[usize]) -> Result<[usize; 3]> {
    if shape.len() > 3 && shape[3..].iter().any(|&d| d != 1) {
        return Err(Error::format(
            path,
            format!(
                "is a {}-D array ({}); a mask is one 3-D volume",
                shape.len(),
                dims_str(shape)
            ),
        ));
    }
    let mut d = [1usize; 3];
    for (i, &v) in shape.iter().take(3).enumerate() {
        d[i] = v;
    }
    Ok(d)
}

fn nifti_err(path: &Path, e: NiftiError) -> Error {
    match e {
        NiftiError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => Error::io(path, io),
        NiftiError::Io(io) => Error::format(path, format!("truncated or corrupt NIfTI file: {io}")),
        NiftiError::InvalidFormat => Error::format(
            path,
            "not a NIfTI-1 file (no `n+1`/`ni1` magic; NIfTI-2 is not read)",
        ),
        NiftiError::IncompatibleLength(got, want) => Error::format(
            path,
            format!(
                "truncated or corrupt NIfTI file: {got} data bytes where the header needs {want}"
            ),
        ),
        NiftiError::UnsupportedDataType(t) => {
            Error::format(path, format!("unsupported NIfTI data type {t:?}"))
        }
        other => Error::format(path, format!("unreadable NIfTI file: {other}")),
    }
}

/// NIfTI's `scl_slope`/`scl_inter` the way nibabel applies them: a slope of 0 or a
/// non-finite slope means "unscaled" (the `nifti` crate would multiply by NaN).
fn scaling(path: &Path, h: &NiftiHeader) -> Result<(f32, f32)> {
    if h.scl_slope == 0.0 || !h.scl_slope.is_finite() {
        return Ok((0.0, 0.0));
    }
    if !h.scl_inter.is_finite() {
        return Err(Error::format(
            path,
            format!(
                "scl_slope {} with a non-finite scl_inter {}",
                h.scl_slope, h.scl_inter
            ),
        ));
    }
    Ok((h.scl_slope, h.scl_inter))
}

fn read_nifti(path: &Path) -> Result<Volume> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| nifti_err(path, e))?;
    let header = obj.header().clone();
    let (slope, inter) = scaling(path, &header)?;
    let volume = obj.into_volume();
    let datatype = volume.data_type();
    let volume = nifti::InMemNiftiVolume::from_raw_fields(
        header.dim,
        datatype,
        slope,
        inter,
        volume.into_raw_data(),
        header.endianness,
    )
    .map_err(|e| nifti_err(path, e))?;
    let arr = volume
        .into_ndarray::<f32>()
        .map_err(|e| nifti_err(path, e))?;
    let dims = three_d(path, arr.shape())?;
    // Logical iteration: C order over the [x, y, z] indices, whatever the memory layout.
    let values: Vec<f32> = arr.iter().copied().collect();
    Ok(Volume { dims, values })
}

/// Read a volume from `.nii`, `.nii.gz` or `.npy`, scaled as nibabel's `dataobj` is.
pub fn read_volume(path: &Path) -> Result<Volume> {
    match VolumeFormat::of(path)? {
        VolumeFormat::Nifti | VolumeFormat::NiftiGz => read_nifti(path),
        VolumeFormat::Npy => {
            let a = npy::read_any_f32(path)?;
            let dims = three_d(path, &a.shape)?;
            Ok(Volume {
                dims,
                values: a.data,
            })
        }
    }
}

static TMP_COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Write a float32 volume (`data` in C order over `dims`) as NIfTI-1, gzip-compressed
/// when `path` ends in `.gz`, or as `.npy`; atomically, like the checkpoints. With a
/// `reference` NIfTI file (e.g. the subject's `nsdgeneral.nii.gz`) its affine, pixel
/// sizes and units are kept so the map overlays the anatomy in any viewer.
pub fn write_volume(
    path: &Path,
    dims: [usize; 3],
    data: &[f32],
    reference: Option<&Path>,
) -> Result<()> {
    let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if numel != Some(data.len()) {
        return Err(Error::format(
            path,
            format!(
                "cannot write {} values as a {} volume",
                data.len(),
                dims_str(&dims)
            ),
        ));
    }
    let format = VolumeFormat::of(path)?;
    if format == VolumeFormat::Npy {
        return npy::write_f32(path, &dims, data);
    }
    let mut header = match reference {
        Some(r) => {
            let h = NiftiHeader::from_file(r).map_err(|e| nifti_err(r, e))?;
            let rd = h.dim().map_err(|e| nifti_err(r, e))?;
            let rd: Vec<usize> = rd.iter().map(|&v| v as usize).collect();
            if three_d(r, &rd)? != dims {
                return Err(Error::format(
                    path,
                    format!(
                        "volume is {} but the reference header {} is {}",
                        dims_str(&dims),
                        r.display(),
                        dims_str(&rd)
                    ),
                ));
            }
            h
        }
        None => NiftiHeader {
            sform_code: 2,
            ..NiftiHeader::default()
        },
    };
    // The reference's display range and intent describe its own data, not ours.
    header.cal_min = 0.0;
    header.cal_max = 0.0;
    header.intent_code = 0;
    header.intent_name = [0; 16];
    header.descrip = b"brain-decode volume".to_vec();
    header.descrip.resize(80, 0);
    let arr = ndarray::Array3::from_shape_vec((dims[0], dims[1], dims[2]), data.to_vec())
        .map_err(|e| Error::format(path, format!("cannot shape the volume: {e}")))?;
    // The crate derives the file name from ours (and mangles names with several dots),
    // so it writes a fixed name in a private temporary folder beside the target, which
    // is then renamed over the target.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::format(path, "not a file path"))?
        .to_string_lossy();
    let k = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp_dir = dir.join(format!(".{name}.tmp-{}-{k}", std::process::id()));
    let tmp: PathBuf = tmp_dir.join(if format == VolumeFormat::NiftiGz {
        "volume.nii.gz"
    } else {
        "volume.nii"
    });
    let result = (|| -> Result<()> {
        std::fs::create_dir(&tmp_dir).map_err(|e| Error::io(path, e))?;
        WriterOptions::new(&tmp)
            .reference_header(&header)
            .write_nifti(&arr)
            .map_err(|e| match e {
                NiftiError::Io(io) => Error::io(path, io),
                other => Error::format(path, format!("cannot write NIfTI: {other}")),
            })?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Error::io(path, e))
    })();
    let _ = std::fs::remove_dir_all(&tmp_dir);
    result
}
