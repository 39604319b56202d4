//! Comparison of a backend's output against the f64 oracle.
//!
//! Every check is `|out − ref| ≤ atol + rtol·|ref|` per element, with `atol` and
//! `rtol` written as multiples of the backend's unit roundoff `u` (2⁻²⁴ for f32,
//! 2⁻⁵³ for f64) so one suite serves both precisions, and a reason stated beside each.
//! NaN must meet NaN and ±Inf the same infinity: non-finite values never vanish.
//!
//! Two facts of the element type under test apply to every check (set per test thread
//! by [`crate::with_backend`] through [`ElemRange::set`]): rounding into the subnormal
//! range adds an absolute error of up to [`ElemRange::eta`] (the standard model
//! `fl(x) = x(1+δ) + η`; 2⁻¹⁵⁰ for f32, 2⁻²⁵ ≈ 3·10⁻⁸ for f16), and an oracle value
//! beyond the type's largest finite value rounds to ±Inf, which the backend may then
//! return (only f16's 65504 is within reach of the suite's data). Without
//! `with_backend` neither applies.
//!
//! Checks that cannot hold for an element type at all are listed in [`exception`] with
//! the reason, and print `excepted for <type>: <check>: <reason>` where they are skipped
//! or replaced by a weaker check.

use brain_core::Element;
use std::cell::Cell;

/// The range facts of the element type under test (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct ElemRange {
    /// Half the spacing of the subnormals: the absolute error of gradual underflow.
    pub eta: f64,
    /// The largest finite value.
    pub max: f64,
    /// The type's name.
    pub name: &'static str,
}

thread_local! {
    static RANGE: Cell<ElemRange> = const {
        Cell::new(ElemRange { eta: 0.0, max: f64::MAX, name: "f64" })
    };
}

impl ElemRange {
    /// The facts of `T`.
    pub fn of<T: Element>() -> Self {
        ElemRange {
            eta: T::min_positive_value().to_f64() * unit_roundoff::<T>(),
            max: T::max_value().to_f64(),
            name: T::NAME,
        }
    }
    /// Apply the facts of `T` to the checks of this thread.
    pub fn set<T: Element>() {
        RANGE.with(|r| r.set(Self::of::<T>()));
    }
    /// The facts applied to this thread's checks.
    pub fn current() -> Self {
        RANGE.with(|r| r.get())
    }
}

/// Why `check` cannot hold for element type `T`, if it cannot (see [`F16_EXCEPTIONS`]).
pub fn exception<T: Element>(check: &str) -> Option<&'static str> {
    if T::NAME != "f16" {
        return None;
    }
    F16_EXCEPTIONS
        .iter()
        .find(|(c, _)| *c == check)
        .map(|(_, why)| *why)
}

/// Whether `check` is excepted for `T`; prints `excepted for <T>: <check>: <reason>`
/// when it is.
pub fn excepted<T: Element>(check: &str) -> bool {
    match exception::<T>(check) {
        Some(why) => {
            println!("excepted for {}: {check}: {why}", T::NAME);
            true
        }
        None => false,
    }
}

/// The checks f16 storage cannot pass, with the reason.
pub const F16_EXCEPTIONS: &[(&str, &str)] = &[
    (
        "philox_bits exact",
        "the 16-bit halves of the Philox words (up to 65535) need 16 significant bits, f16 \
         has 11: checked instead against the oracle's words rounded once to f16",
    ),
    (
        "adamw after the first step",
        "exp_avg_sq ≈ (1−β2)·g² = 10⁻³·g² lies in f16's subnormal range (< 6.1·10⁻⁵) for \
         |g| < 0.25, where it keeps few significant bits; the next step's update \
         lr·m̂/(√v̂+ε) inherits that error (mixed-precision training keeps optimizer moments \
         in f32): only the first step, from zero moments, is checked",
    ),
];

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
    let range = ElemRange::current();
    let mut overflowed = 0usize;
    let mut worst: Option<(usize, f64, f64)> = None; // (index, excess ratio, error)
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let t = tol(i);
        if g.is_infinite() && w.is_finite() && w.abs() > range.max && g.signum() == w.signum() {
            // The oracle's value rounds to this infinity in the element type.
            overflowed += 1;
            continue;
        }
        if !w.is_finite() || !g.is_finite() {
            let same = (w.is_nan() && g.is_nan()) || (w.is_infinite() && g == w);
            if !same {
                return Err(format!("{what}[{i}] = {g} but the oracle has {w}: non-finite values must propagate exactly"));
            }
            continue;
        }
        let err = (g - w).abs();
        let bound = t.atol + range.eta + t.rtol * w.abs();
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
    if overflowed > 0 {
        println!(
            "{what}: {overflowed} oracle values beyond {}'s largest finite value {} rounded to ±Inf",
            range.name, range.max
        );
    }
    match worst {
        None => Ok(()),
        Some((i, ratio, err)) => {
            let t = tol(i);
            Err(format!(
                "{what}[{i}] = {:e}, oracle {:e}: error {err:.3e} is {ratio:.2}× the tolerance (atol {:.2e}, rtol {:.2e}: {})",
                got[i], want[i], t.atol + range.eta, t.rtol, t.why
            ))
        }
    }
}
