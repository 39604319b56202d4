//! Linear CKA on n×n Gram matrices (biased and unbiased HSIC): row/column sums, the
//! totals and centring vectors, per-row sums of centred products, then one workgroup
//! forms the HSICs and 1 − CKA, all through one scratch buffer (its first elements
//! are the results, copied to `out` on the device). The backward repeats those passes
//! and writes each gradient entry from the centred Grams. See shaders/cka.wgsl for the
//! formulas: HSIC is summed over centred entries, so Grams with a large mean lose no
//! accuracy to cancellation.

use crate::gpu::{Kernel, Params, Shader};
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::{check, HsicEstimator, Result};

static SHADER: Shader = shader!("cka.wgsl");
const KLW: crate::gpu::Bindings = &[(1, true), (2, true), (3, false)];
const W: crate::gpu::Bindings = &[(3, false)];
const CKA_ROWS: Kernel = Kernel::new(&SHADER, "cka_rows", KLW);
const CKA_TOTALS: Kernel = Kernel::new(&SHADER, "cka_totals", W);
const CKA_CENTRED: Kernel = Kernel::new(&SHADER, "cka_centred", KLW);
const CKA_FINISH: Kernel = Kernel::new(&SHADER, "cka_finish", W);
const CKA_GRAD: Kernel = Kernel::new(
    &SHADER,
    "cka_grad",
    &[(1, true), (2, true), (4, true), (5, false)],
);

/// The uniform block (`Params` of cka.wgsl); `which` and `scale` for the gradient.
fn params(
    op: &'static str,
    n: usize,
    est: HsicEstimator,
    which: usize,
    scale: f64,
) -> Result<Params> {
    let nf = n as f64;
    let (d1, d2, norm) = match est {
        HsicEstimator::Biased => (nf, nf * nf, (nf - 1.0) * (nf - 1.0)),
        HsicEstimator::Unbiased => (nf - 2.0, (nf - 1.0) * (nf - 2.0), nf * (nf - 3.0)),
    };
    Ok(Params::new()
        .u(op, n)?
        .u(op, usize::from(est == HsicEstimator::Unbiased))?
        .u(op, which)?
        .u(op, n * n)?
        .f(d1)
        .f(d2)
        .f(norm)
        .f(scale))
}

/// Run the four statistics passes; the returned scratch buffer starts with
/// `[1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L), α, β, γ]` (arguments checked).
fn statistics(
    be: &WgpuBackend,
    op: &'static str,
    k: &WgpuBuffer,
    l: &WgpuBuffer,
    n: usize,
    est: HsicEstimator,
) -> Result<wgpu::Buffer> {
    let w = be.gpu.alloc(32 + 7 * n)?;
    let p = params(op, n, est, 0, 0.0)?;
    let kl = [&k.buf, &l.buf, &w];
    be.gpu.dispatch(op, CKA_ROWS, &p, &kl, n as u64)?;
    be.gpu.dispatch(op, CKA_TOTALS, &p, &[&w], 1)?;
    be.gpu.dispatch(op, CKA_CENTRED, &p, &kl, n as u64)?;
    be.gpu.dispatch(op, CKA_FINISH, &p, &[&w], 1)?;
    Ok(w)
}

/// `out[0] = 1 − CKA`, and `out[1..4] = [HSIC(K,L), HSIC(K,K), HSIC(L,L)]` when `out`
/// has 4 elements.
pub(crate) fn cka_grams_forward(
    be: &WgpuBackend,
    k: &WgpuBuffer,
    l: &WgpuBuffer,
    n: usize,
    estimator: HsicEstimator,
    out: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "cka_grams_forward";
    check::cka_grams_forward(k.len, l.len, n, estimator, out.len)?;
    let w = statistics(be, OP, k, l, n, estimator)?;
    be.gpu.copy(&w, &out.buf, out.len);
    Ok(())
}

/// `dk`, `dl` (overwritten) = G + Gᵀ of G = ∂(scale·(1 − CKA))/∂K (resp. L).
pub(crate) fn cka_grams_backward(
    be: &WgpuBackend,
    k: &WgpuBuffer,
    l: &WgpuBuffer,
    n: usize,
    estimator: HsicEstimator,
    scale: f64,
    dk: Option<&mut WgpuBuffer>,
    dl: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "cka_grams_backward";
    check::cka_grams_backward(
        k.len,
        l.len,
        n,
        estimator,
        scale,
        dk.as_ref().map(|d| d.len),
        dl.as_ref().map(|d| d.len),
    )?;
    if dk.is_none() && dl.is_none() {
        return Ok(());
    }
    let w = statistics(be, OP, k, l, n, estimator)?;
    for (which, d) in [(0, dk), (1, dl)] {
        if let Some(d) = d {
            let p = params(OP, n, estimator, which, scale)?;
            let groups = ((n * n) as u64).div_ceil(crate::WG);
            be.gpu
                .dispatch(OP, CKA_GRAD, &p, &[&k.buf, &l.buf, &w, &d.buf], groups)?;
        }
    }
    Ok(())
}
