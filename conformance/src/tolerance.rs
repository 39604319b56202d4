//! Comparison of a backend's output against the f64 oracle.
//!
//! Every check is `|out − ref| ≤ atol + rtol·|ref|` per element, with `atol` and
//! `rtol` written as multiples of the backend's unit roundoff `u` (2⁻²⁴ for f32,
//! 2⁻⁵³ for f64) so one suite serves both precisions, and a reason stated beside each.
//! NaN must meet NaN and ±Inf the same infinity: non-finite values never vanish.

use brain_core::Element;

/// Unit roundoff of `T`: half the distance from 1 to the next float.
pub fn unit_roundoff<T: Element>() -> f64 {
    T::epsilon().to_f64() / 2.0
}

/// A tolerance with the reason it is what it is.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    /// Absolute part.
    pub atol: f64,
    /// Relative part.
    pub rtol: f64,
    /// Why this much error is legitimate.
    pub why: &'static str,
}

impl Tol {
    /// A tolerance of `atol + rtol·|ref|`.
    pub const fn new(atol: f64, rtol: f64, why: &'static str) -> Self {
        Tol { atol, rtol, why }
    }
    /// Bit-for-bit equality.
    pub const fn exact(why: &'static str) -> Self {
        Tol {
            atol: 0.0,
            rtol: 0.0,
            why,
        }
    }
}

/// Check `got` against `want` element-wise; on failure the message names the tensor,
/// the worst element, its error and the tolerance with its reason.
pub fn check_close(what: &str, got: &[f64], want: &[f64], tol: Tol) -> Result<(), String> {
    check_close_with(what, got, want, |_| tol)
}

/// As [`check_close`] with a per-element tolerance (for error bounds that depend on
/// the data, such as GEMM's `k·u·(|A|·|B|)ᵢⱼ`).
pub fn check_close_with(
    what: &str,
    got: &[f64],
    want: &[f64],
    tol: impl Fn(usize) -> Tol,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: length {} but the oracle has {}",
            got.len(),
            want.len()
        ));
    }
    let mut worst: Option<(usize, f64, f64)> = None; // (index, excess ratio, error)
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let t = tol(i);
        if !w.is_finite() || !g.is_finite() {
            let same = (w.is_nan() && g.is_nan()) || (w.is_infinite() && g == w);
            if !same {
                return Err(format!("{what}[{i}] = {g} but the oracle has {w}: non-finite values must propagate exactly"));
            }
            continue;
        }
        let err = (g - w).abs();
        let bound = t.atol + t.rtol * w.abs();
        if err > bound {
            let ratio = if bound > 0.0 {
                err / bound
            } else {
                f64::INFINITY
            };
            if worst.is_none_or(|(_, r, _)| ratio > r) {
                worst = Some((i, ratio, err));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, ratio, err)) => {
            let t = tol(i);
            Err(format!(
                "{what}[{i}] = {:e}, oracle {:e}: error {err:.3e} is {ratio:.2}× the tolerance (atol {:.2e}, rtol {:.2e}: {})",
                got[i], want[i], t.atol, t.rtol, t.why
            ))
        }
    }
}
