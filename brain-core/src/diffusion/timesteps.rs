//! Inference timestep lists, exactly as diffusers' `set_timesteps` builds them.

use crate::check::invalid;
use crate::error::Result;
use alloc::format;
use alloc::vec::Vec;

/// diffusers' `timestep_spacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestepSpacing {
    /// `(arange(N)·(T // N))[::-1] + steps_offset` (the SD / VD default).
    Leading,
    /// `round(arange(T, 0, −T/N)) − 1`; ignores `steps_offset`.
    Trailing,
    /// `round(linspace(0, T − 1, N))[::-1]`; ignores `steps_offset`.
    Linspace,
}

/// numpy's `round` (half to even).
fn round_half_even(x: f64) -> f64 {
    libm::rint(x)
}

/// The `N = num_inference_steps` timesteps, descending, for `T = num_train_timesteps`.
///
/// Errors when N is 0 or exceeds T, and when a timestep would fall outside `0..T`
/// (leading spacing with `steps_offset` pushing the first one to T: diffusers accepts
/// that configuration and fails later indexing ᾱ).
///
/// Trailing spacing follows numpy's float `arange` (length ⌈T/(T/N)⌉, values
/// `T + i·δ` with δ = (T − T/N) − T), so for an N where that length is not N the list
/// has that other length, as in diffusers.
pub fn inference_timesteps(
    num_train_timesteps: usize,
    num_inference_steps: usize,
    spacing: TimestepSpacing,
    steps_offset: usize,
) -> Result<Vec<usize>> {
    const OP: &str = "set_timesteps";
    let (t_train, n) = (num_train_timesteps, num_inference_steps);
    if n == 0 || n > t_train {
        return Err(invalid(
            OP,
            format!("num_inference_steps {n} must lie in 1..={t_train} (num_train_timesteps)"),
        ));
    }
    let ts: Vec<usize> = match spacing {
        TimestepSpacing::Leading => {
            let ratio = t_train / n;
            (0..n).rev().map(|i| i * ratio + steps_offset).collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = t_train as f64 / n as f64;
            let start = t_train as f64;
            let len = libm::ceil(start / ratio) as usize;
            let delta = (start - ratio) - start;
            (0..len)
                .map(|i| round_half_even(start + i as f64 * delta) as i64 - 1)
                .map(|t| t.max(0) as usize)
                .collect()
        }
        TimestepSpacing::Linspace => {
            let stop = (t_train - 1) as f64;
            let mut v: Vec<f64> = if n == 1 {
                alloc::vec![0.0]
            } else {
                let step = stop / (n - 1) as f64;
                (0..n).map(|i| i as f64 * step).collect()
            };
            if n > 1 {
                v[n - 1] = stop;
            }
            v.into_iter()
                .rev()
                .map(|x| round_half_even(x) as usize)
                .collect()
        }
    };
    if let Some(&t) = ts.iter().find(|&&t| t >= t_train) {
        return Err(invalid(
            OP,
            format!(
                "timestep {t} (steps_offset {steps_offset}) is out of range for {t_train} training timesteps"
            ),
        ));
    }
    Ok(ts)
}
