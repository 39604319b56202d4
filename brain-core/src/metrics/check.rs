//! Argument validation shared by the metric functions (host-side, so it lives beside
//! them rather than in `crate::check`, which holds the backend kernels' checks; it
//! uses the same helpers and error types).

use crate::check::{invalid, len, numel};
use crate::error::Result;
use alloc::format;

/// A row-major `[rows, cols]` matrix argument: both dimensions non-zero and the
/// buffer exactly `rows·cols` long.
pub(crate) fn matrix(
    op: &'static str,
    arg: &'static str,
    got: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(invalid(
            op,
            format!("`{arg}` is empty ({rows} rows × {cols} columns)"),
        ));
    }
    len(op, arg, got, numel(op, &[rows, cols])?)
}

/// Two vectors of the same non-zero length.
pub(crate) fn pair(op: &'static str, a: usize, b: usize) -> Result<()> {
    if a == 0 {
        return Err(invalid(
            op,
            alloc::string::String::from("empty input: need at least one element"),
        ));
    }
    len(op, "second vector", b, a)
}

/// At least `min` samples (rows).
pub(crate) fn at_least(op: &'static str, what: &str, got: usize, min: usize) -> Result<()> {
    if got < min {
        return Err(invalid(
            op,
            format!("needs at least {min} {what}, got {got}"),
        ));
    }
    Ok(())
}

/// `Element::to_f64` as a method (plain `.to_f64()` is ambiguous with
/// `num_traits::ToPrimitive::to_f64`, which returns an `Option`).
pub(crate) trait Wide {
    /// The value widened to f64 (exact).
    fn wide(self) -> f64;
}

impl<T: crate::element::Element> Wide for T {
    #[inline(always)]
    fn wide(self) -> f64 {
        crate::element::Element::to_f64(self)
    }
}
