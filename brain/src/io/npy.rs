//! NumPy `.npy` arrays read into `f32`, and written from it.
//!
//! The header is parsed by the `npyz` crate (format versions 1.0, 2.0 and 3.0); the data
//! is converted here, straight from a memory map for files above [`MMAP_THRESHOLD`] so
//! that [`read_rows`] of an [N, ...] file of many GiB touches only the rows asked for.
//! Only little-endian, C-ordered arrays are accepted: that is what `np.save` writes on
//! every machine the data is prepared on, and anything else is more likely a mislabelled
//! file than a deliberate choice.

use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};
use npyz::{DType, Endianness, Order, TypeChar};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Files larger than this (bytes) are memory-mapped instead of read.
pub const MMAP_THRESHOLD: u64 = 64 << 20;

/// NSD stores its betas as int16 scaled by this factor.
pub const NSD_BETA_SCALE: f32 = 300.0;

/// Element type of a `.npy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`.
    F32,
    /// `<f8`.
    F64,
    /// `<f2` (half precision).
    F16,
    /// `<i2`.
    I16,
    /// `|b1` (masks only).
    Bool,
    /// `|i1` (masks only).
    I8,
    /// `|u1` (masks only).
    U8,
    /// `<u2` (masks only).
    U16,
    /// `<i4` (masks only).
    I32,
    /// `<u4` (masks only).
    U32,
    /// `<i8` (masks only).
    I64,
    /// `<u8` (masks only).
    U64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::I8 | Dtype::U8 => 1,
            Dtype::F16 | Dtype::I16 | Dtype::U16 => 2,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        }
    }

    /// NumPy's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::F16 => "float16",
            Dtype::I16 => "int16",
            Dtype::Bool => "bool",
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::U16 => "uint16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
        }
    }

    /// True for the types data arrays (betas, targets) may have.
    pub fn is_data(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::I16)
    }
}

/// What to do with int16 arrays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Int16Scale {
    /// Convert the integers as they are.
    #[default]
    AsIs,
    /// Divide by [`NSD_BETA_SCALE`] (NSD's betas).
    NsdBetas,
}

/// The header of a `.npy` file, checked against the file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyInfo {
    /// Shape, C order.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Dtype,
    /// Byte offset of the data.
    pub data_offset: u64,
    /// Size of the file in bytes.
    pub file_len: u64,
    /// Stored in Fortran order (only ever true for masks, which are reordered).
    pub fortran_order: bool,
}

impl NpyInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Elements per row (product of every axis but the first).
    pub fn row_width(&self) -> usize {
        self.shape.iter().skip(1).product()
    }
}

/// An array converted to `f32`, C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// Counts the bytes `npyz` consumes, which gives the data offset.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

fn dtype_of(path: &Path, dt: &DType) -> Result<Dtype> {
    let ts = match dt {
        DType::Plain(ts) => ts,
        other => {
            return Err(Error::format(
                path,
                format!(
                    "structured dtype {}; expected a plain numeric array",
                    other.descr()
                ),
            ))
        }
    };
    if ts.endianness() == Endianness::Big {
        return Err(Error::format(
            path,
            format!("big-endian dtype {ts}; only little-endian arrays are read (arr.astype(arr.dtype.newbyteorder('<')))"),
        ));
    }
    let d = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => Dtype::F32,
        (TypeChar::Float, 8) => Dtype::F64,
        (TypeChar::Float, 2) => Dtype::F16,
        (TypeChar::Int, 2) => Dtype::I16,
        (TypeChar::Bool, 1) => Dtype::Bool,
        (TypeChar::Int, 1) => Dtype::I8,
        (TypeChar::Uint, 1) => Dtype::U8,
        (TypeChar::Uint, 2) => Dtype::U16,
        (TypeChar::Int, 4) => Dtype::I32,
        (TypeChar::Uint, 4) => Dtype::U32,
        (TypeChar::Int, 8) => Dtype::I64,
        (TypeChar::Uint, 8) => Dtype::U64,
        _ => {
            return Err(Error::format(
                path,
                format!("dtype {ts} is not a supported numeric type"),
            ))
        }
    };
    Ok(d)
}

/// Read and check the header of `path`: dtype, C order, and that the file holds exactly
/// the bytes the header promises (truncated or padded files are refused).
pub fn read_info(path: &Path) -> Result<NpyInfo> {
    let (info, _) = open(path, false)?;
    Ok(info)
}

/// Header and open file; with `allow_fortran`, Fortran order is reported in
/// `NpyInfo::fortran_order` instead of refused.
fn open(path: &Path, allow_fortran: bool) -> Result<(NpyInfo, File)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = Counting {
        inner: BufReader::new(&file),
        n: 0,
    };
    let header = npyz::NpyHeader::from_reader(&mut reader).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "the file ends inside the header".to_string()
        } else {
            e.to_string()
        };
        Error::format(path, format!("not a readable .npy file: {why}"))
    })?;
    let data_offset = reader.n;
    let dtype = dtype_of(path, &header.dtype())?;
    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::format(path, "shape does not fit in memory"))?;
    let shape_txt = shape_str(&shape);
    let fortran_order = header.order() == Order::Fortran;
    if fortran_order && !allow_fortran {
        return Err(Error::format(
            path,
            format!(
                "array {shape_txt} is Fortran-ordered (fortran_order: True); save it in C order (np.save(path, np.ascontiguousarray(arr)))"
            ),
        ));
    }
    let need = shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| Error::format(path, format!("shape {shape_txt} is too large")))?;
    let have = file_len.saturating_sub(data_offset);
    if have != need {
        let what = if have < need {
            "truncated"
        } else {
            "longer than its header says (mislabelled or corrupted)"
        };
        return Err(Error::format(
            path,
            format!(
                "{what}: a {shape_txt} {} array needs {need} data bytes after the {data_offset}-byte header, the file has {have}",
                dtype.name()
            ),
        ));
    }
    Ok((
        NpyInfo {
            shape,
            dtype,
            data_offset,
            file_len,
            fortran_order,
        },
        file,
    ))
}

/// `[a, b, c]` for messages.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn decode(bytes: &[u8], dtype: Dtype, scale: Int16Scale, out: &mut Vec<f32>) {
    macro_rules! conv {
        ($t:ty, $n:expr, $f:expr) => {
            out.extend(bytes.chunks_exact($n).map(|c| {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                #[allow(clippy::redundant_closure_call)]
                $f(<$t>::from_le_bytes(a))
            }))
        };
    }
    match dtype {
        Dtype::F32 => conv!(f32, 4, |v: f32| v),
        Dtype::F64 => conv!(f64, 8, |v: f64| v as f32),
        Dtype::F16 => conv!(half::f16, 2, |v: half::f16| v.to_f32()),
        Dtype::I16 => match scale {
            Int16Scale::AsIs => conv!(i16, 2, |v: i16| v as f32),
            Int16Scale::NsdBetas => conv!(i16, 2, |v: i16| v as f32 / NSD_BETA_SCALE),
        },
        Dtype::Bool => out.extend(bytes.iter().map(|&b| (b != 0) as u8 as f32)),
        Dtype::I8 => out.extend(bytes.iter().map(|&b| b as i8 as f32)),
        Dtype::U8 => out.extend(bytes.iter().map(|&b| b as f32)),
        Dtype::U16 => conv!(u16, 2, |v: u16| v as f32),
        Dtype::I32 => conv!(i32, 4, |v: i32| v as f32),
        Dtype::U32 => conv!(u32, 4, |v: u32| v as f32),
        Dtype::I64 => conv!(i64, 8, |v: i64| v as f32),
        Dtype::U64 => conv!(u64, 8, |v: u64| v as f32),
    }
}

/// Convert elements `[first, first + count)` of an opened file.
fn read_range(
    path: &Path,
    info: &NpyInfo,
    mut file: File,
    first: usize,
    count: usize,
    scale: Int16Scale,
) -> Result<Vec<f32>> {
    let size = info.dtype.size() as u64;
    let start = info.data_offset + first as u64 * size;
    let len = count as u64 * size;
    let mut out = Vec::new();
    out.try_reserve_exact(count)
        .map_err(|_| Error::format(path, format!("cannot allocate {count} values")))?;
    if info.file_len > MMAP_THRESHOLD {
        // SAFETY: the map is read-only and dropped before returning; a file truncated by
        // another process while we read is outside what this library can defend against.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (a, b) = (start as usize, (start + len) as usize);
        let bytes = map
            .get(a..b)
            .ok_or_else(|| Error::format(path, "the file shrank while being read"))?;
        decode(bytes, info.dtype, scale, &mut out);
    } else {
        let mut bytes = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        decode(&bytes, info.dtype, scale, &mut out);
    }
    Ok(out)
}

fn require_data_dtype(path: &Path, info: &NpyInfo) -> Result<()> {
    if info.dtype.is_data() {
        return Ok(());
    }
    Err(Error::format(
        path,
        format!(
            "dtype {} is not supported for data; arrays must be float32, float64, float16 or int16",
            info.dtype.name()
        ),
    ))
}

/// The whole array of `path` as `f32` (float32, float64, float16 or int16).
pub fn read_f32(path: &Path, scale: Int16Scale) -> Result<NpyArray> {
    let (info, file) = open(path, false)?;
    require_data_dtype(path, &info)?;
    let data = read_range(path, &info, file, 0, info.numel(), scale)?;
    Ok(NpyArray {
        shape: info.shape,
        data,
    })
}

/// Rows `[start, start + count)` of an `[N, ...]` array; only those bytes are read.
pub fn read_rows(path: &Path, start: usize, count: usize, scale: Int16Scale) -> Result<NpyArray> {
    let (info, file) = open(path, false)?;
    require_data_dtype(path, &info)?;
    let Some(&rows) = info.shape.first() else {
        return Err(Error::format(path, "is a 0-d array; rows need an axis"));
    };
    let end = start.checked_add(count).filter(|&e| e <= rows);
    if end.is_none() {
        return Err(Error::format(
            path,
            format!(
                "rows {start}..{} asked for, the array {} has {rows}",
                start.saturating_add(count),
                shape_str(&info.shape)
            ),
        ));
    }
    let w = info.row_width();
    let data = read_range(path, &info, file, start * w, count * w, scale)?;
    let mut shape = info.shape;
    shape[0] = count;
    Ok(NpyArray { shape, data })
}

/// Any numeric or bool array as `f32` in C order (masks: labels, bool, -1/0/1
/// volumes). Fortran-ordered files are reordered: `np.save` of nibabel's `dataobj`
/// writes them, and the logical array, which is what `mask > 0` walks, is the same.
pub(crate) fn read_any_f32(path: &Path) -> Result<NpyArray> {
    let (info, file) = open(path, true)?;
    let data = read_range(path, &info, file, 0, info.numel(), Int16Scale::AsIs)?;
    let data = if info.fortran_order && info.shape.len() > 1 {
        fortran_to_c(&data, &info.shape)
    } else {
        data
    };
    Ok(NpyArray {
        shape: info.shape,
        data,
    })
}

/// The C-order copy of a Fortran-order array of `shape`.
fn fortran_to_c(data: &[f32], shape: &[usize]) -> Vec<f32> {
    // Fortran strides: axis k moves by the product of the axes before it.
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..data.len() {
        let at: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(data[at]);
        // Next multi-index in C order (last axis fastest).
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// The header of a version 1.0 (2.0 if needed) `<f4` C-order `.npy` file of `shape`,
/// padded as NumPy pads it so the data starts 64-aligned. Streaming writers put it
/// first and append the rows.
pub fn encode_f32_header(shape: &[usize]) -> Option<Vec<u8>> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let (version, pre) = if dict.len() + 11 <= u16::MAX as usize {
        (1u8, 10)
    } else {
        (2u8, 12)
    };
    let total = (pre + dict.len() + 1).div_ceil(64) * 64;
    while pre + dict.len() + 1 < total {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY");
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&u16::try_from(dict.len()).ok()?.to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(dict.len()).ok()?.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    Some(out)
}

/// The bytes of a `<f4` C-order `.npy` file: [`encode_f32_header`], then the data.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Option<Vec<u8>> {
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if numel != data.len() {
        return None;
    }
    let mut out = encode_f32_header(shape)?;
    out.reserve(data.len() * 4);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Some(out)
}

/// Write `data` with `shape` as a float32 `.npy`, atomically (temporary file + rename).
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes = encode_f32(shape, data).ok_or_else(|| {
        Error::format(
            path,
            format!(
                "cannot write {} values as shape {}",
                data.len(),
                shape_str(shape)
            ),
        )
    })?;
    write_atomic(path, &bytes)
}
