//! Named per-sample arrays held on the host (`f32`, row-major `[n, width]`), the
//! form the trainer gathers batches from.

use crate::check;
use crate::error::Result;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// `n` samples, each with one row per named array.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    n: usize,
    arrays: Vec<(String, usize, Vec<f32>)>,
}

impl Dataset {
    /// No arrays yet, `n` samples.
    pub fn new(n: usize) -> Self {
        Dataset {
            n,
            arrays: Vec::new(),
        }
    }

    /// Add array `name` of `width` elements per sample.
    pub fn with(mut self, name: &str, width: usize, data: Vec<f32>) -> Result<Self> {
        self.insert(name, width, data)?;
        Ok(self)
    }

    /// Add or replace array `name`.
    pub fn insert(&mut self, name: &str, width: usize, data: Vec<f32>) -> Result<()> {
        const OP: &str = "Dataset";
        let need = check::numel(OP, &[self.n, width])?;
        if data.len() != need {
            return Err(check::invalid(
                OP,
                format!(
                    "`{name}` has {} values; {} samples × {width} need {need}",
                    data.len(),
                    self.n
                ),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(check::invalid(
                OP,
                format!(
                    "`{name}` holds a non-finite value ({}) at sample {}, element {}",
                    data[i],
                    i / width.max(1),
                    i % width.max(1)
                ),
            ));
        }
        self.arrays.retain(|(n, _, _)| n != name);
        self.arrays.push((name.into(), width, data));
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `(data, width)` of array `name`.
    pub fn get(&self, name: &str) -> Option<(&[f32], usize)> {
        self.arrays
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, w, d)| (d.as_slice(), *w))
    }

    /// Names of the arrays.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.arrays.iter().map(|(n, _, _)| n.as_str())
    }

    /// The samples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Result<Dataset> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.n) {
            return Err(check::invalid(
                "Dataset::select",
                format!("index {bad} out of {} samples", self.n),
            ));
        }
        let mut out = Dataset::new(idx.len());
        for (name, w, d) in &self.arrays {
            let mut rows = Vec::with_capacity(idx.len() * w);
            for &i in idx {
                rows.extend_from_slice(&d[i * w..(i + 1) * w]);
            }
            out.arrays.push((name.clone(), *w, rows));
        }
        Ok(out)
    }
}
