//! Helpers shared by the io_* tests: raw `.npy` files with any header, and error checks.
#![allow(dead_code)]

use brain::Error;
use std::path::{Path, PathBuf};

/// The fixture folder written by `brain/tests/data/io/make_fixtures.py`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/io")
        .join(name)
}

/// A version 1.0 `.npy` with header dict `dict` (without padding) and `data` bytes.
pub fn raw_npy(path: &Path, dict: &str, data: &[u8]) {
    let mut h = dict.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

/// `shape` as NumPy prints a tuple.
pub fn tuple(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A `<descr>` C-order `.npy` of `shape` with raw `data`.
pub fn npy_of(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': {}, }}",
        tuple(shape)
    );
    raw_npy(path, &dict, data);
}

/// Assert `r` is a `Format` error about `path` whose reason contains every `needle`.
pub fn expect_format<T: std::fmt::Debug>(r: brain::Result<T>, path: &Path, needles: &[&str]) {
    match r {
        Err(Error::Format { path: p, reason }) => {
            assert_eq!(p, path, "error names {} ({reason})", p.display());
            for n in needles {
                assert!(reason.contains(n), "`{reason}` lacks `{n}`");
            }
            let shown = format!("{}", Error::Format { path: p, reason });
            assert!(shown.contains(&path.display().to_string()));
        }
        other => panic!(
            "expected a format error about {}, got {other:?}",
            path.display()
        ),
    }
}

/// Names of the entries of `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
