//! Central finite differences of the f64 reference: every backward kernel of the
//! oracle is checked against the derivative of its own forward kernel.
//!
//! For a forward `y = f(θ)` and a random cotangent `r`, the scalar `L = Σ r·y` has
//! gradient `backward(r)`; `(L(θ + h·eᵢ) − L(θ − h·eᵢ)) / 2h` must match it. With
//! h = 1e-5 the truncation error is O(h²·f''') ≈ 1e-10 and the rounding error
//! O(u·|L|/h) ≈ 1e-11 for these O(1)–O(100) values, hence the 1e-7 tolerance.

use crate::data::Rng;
use crate::tolerance::{check_close, Tol};

/// Step of the central difference.
pub const H: f64 = 1e-5;
/// Tolerance of every finite-difference comparison.
pub const FD_TOL: Tol = Tol::new(
    1e-7,
    1e-6,
    "central difference, h = 1e-5: O(h²) truncation plus O(u/h) rounding",
);

/// Numerical gradient of `loss` at `theta`.
pub fn numeric_grad(theta: &[f64], mut loss: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut t = theta.to_vec();
    (0..t.len())
        .map(|i| {
            let orig = t[i];
            t[i] = orig + H;
            let plus = loss(&t);
            t[i] = orig - H;
            let minus = loss(&t);
            t[i] = orig;
            (plus - minus) / (2.0 * H)
        })
        .collect()
}

/// `Σ r·y`.
pub fn dot(r: &[f64], y: &[f64]) -> f64 {
    r.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Compare an analytic gradient with the numeric one.
pub fn check_grad(
    what: &str,
    analytic: &[f64],
    theta: &[f64],
    loss: impl FnMut(&[f64]) -> f64,
) -> Result<(), String> {
    check_close(what, analytic, &numeric_grad(theta, loss), FD_TOL)
}

/// Random data in [lo, hi).
pub fn data(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    Rng::new(seed).vec(n, lo, hi)
}
