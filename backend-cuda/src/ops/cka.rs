//! Linear CKA on Gram matrices (`kernels/cka.cu`): row/column sums, the totals and
//! centring vectors, per-row sums of centred products, then one block forms the HSICs
//! and 1 − CKA, all through one device scratch buffer (no host round trip); the
//! backward repeats those passes and writes each gradient entry from the centred
//! Grams. HSIC is summed over centred entries, so Grams with a large mean lose no
//! accuracy to cancellation (see the kernel file for the formulas).

use crate::device::{CudaBuffer, Device};
use crate::launch::{self, launch_kernel, u32_dim, u64_of};
use crate::module_cache::Family;
use brain_core::{BrainError, HsicEstimator, Result};
use cudarc::driver::LaunchConfig;

/// Threads per block (`CKA_THREADS`).
const THREADS: u32 = 256;
/// Scratch values before the per-index vectors (`CKA_ST`).
const ST: usize = 32;

/// The estimator's constants in f64, rounded once: (d1, d2, norm) with d1 the divisor
/// of the centring vectors (n, or m = n − 2), d2 that of the total (n², or
/// (n−1)(n−2)), norm the HSIC's ((n−1)², or n(n−3)).
fn constants(n: usize, est: HsicEstimator) -> (f64, f64, f64) {
    let nf = n as f64;
    match est {
        HsicEstimator::Biased => (nf, nf * nf, (nf - 1.0) * (nf - 1.0)),
        HsicEstimator::Unbiased => (nf - 2.0, (nf - 1.0) * (nf - 2.0), nf * (nf - 3.0)),
    }
}

/// Queue the statistics passes into a new scratch buffer; with `out`, the finish
/// pass also writes `[1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L)][..out_len]` there.
/// `n ≥ 2` (checked).
fn statistics(
    dev: &Device,
    k: &CudaBuffer,
    l: &CudaBuffer,
    n: usize,
    est: HsicEstimator,
    out: Option<(u64, usize)>,
) -> Result<CudaBuffer> {
    let len = n
        .checked_mul(7)
        .and_then(|v| v.checked_add(ST))
        .ok_or(BrainError::SizeOverflow { op: "cka" })?;
    let w = dev.alloc_zeros(len)?;
    let (pk, pl, pw) = (dev.ptr(k)?, dev.ptr(l)?, dev.ptr(&w)?);
    let unbiased = u32::from(est == HsicEstimator::Unbiased);
    let (d1, d2, norm) = constants(n, est);
    let (d1, d2, norm) = (d1 as f32, d2 as f32, norm as f32);
    let un = u64_of(n);
    let per_row = launch::blocks(n, THREADS);
    let one = launch::blocks(1, THREADS);
    launch_kernel!(dev, Family::Cka, "cka_rows_f32", per_row; pk, pl, pw, un, unbiased)?;
    launch_kernel!(dev, Family::Cka, "cka_totals_f32", one; pw, un, d1, d2)?;
    launch_kernel!(dev, Family::Cka, "cka_centred_f32", per_row; pk, pl, pw, un, unbiased)?;
    let (pout, out_len) = match out {
        Some((p, len)) => (p, len as u32),
        None => (0, 0),
    };
    launch_kernel!(dev, Family::Cka, "cka_finish_f32", one;
        pw, pout, out_len, un, unbiased, d1, norm)?;
    Ok(w)
}

/// `out[0] = 1 − CKA`; with 4 elements also the three HSIC values.
pub(crate) fn cka_grams_forward(
    dev: &Device,
    k: &CudaBuffer,
    l: &CudaBuffer,
    n: usize,
    estimator: HsicEstimator,
    out: &mut CudaBuffer,
) -> Result<()> {
    let out_len = out.len(); // 1 or 4 (checked)
    let pout = dev.ptr_mut(out)?;
    let _scratch = statistics(dev, k, l, n, estimator, Some((pout, out_len)))?;
    Ok(())
}

/// Gradient of `scale·(1 − CKA)` w.r.t. K and L, symmetrised, overwritten.
pub(crate) fn cka_grams_backward(
    dev: &Device,
    k: &CudaBuffer,
    l: &CudaBuffer,
    n: usize,
    estimator: HsicEstimator,
    scale: f64,
    dk: Option<&mut CudaBuffer>,
    dl: Option<&mut CudaBuffer>,
) -> Result<()> {
    const OP: &str = "cka_grams_backward";
    let (pk, pl) = (dev.ptr(k)?, dev.ptr(l)?);
    let pdk = match dk {
        Some(d) => Some(dev.ptr_mut(d)?),
        None => None,
    };
    let pdl = match dl {
        Some(d) => Some(dev.ptr_mut(d)?),
        None => None,
    };
    if pdk.is_none() && pdl.is_none() {
        return Ok(());
    }
    let w = statistics(dev, k, l, n, estimator, None)?;
    let pw = dev.ptr(&w)?;
    let unbiased = u32::from(estimator == HsicEstimator::Unbiased);
    let (_, _, norm) = constants(n, estimator);
    let f = (-scale / norm) as f32;
    let threads = n.clamp(32, 256).next_multiple_of(32);
    let cfg = LaunchConfig {
        grid_dim: (
            u32_dim(OP, "n / block", n.div_ceil(threads))?,
            n.clamp(1, 65_535) as u32,
            1,
        ),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let un = u64_of(n);
    for (which, d) in [(0u32, pdk), (1u32, pdl)] {
        if let Some(pd) = d {
            launch_kernel!(dev, Family::Cka, "cka_grad_f32", cfg;
                pk, pl, pw, pd, un, unbiased, which, f)?;
        }
    }
    Ok(())
}
