//! The Sims token loss: cosine profiles of every token against token 0, per batch
//! row. One pass gathers each token row's dot product with token 0 and squared norm
//! (A and B together, trees in workgroup memory); the forward then sums the squared
//! profile differences per workgroup and finishes the mean with
//! [`mean_of_partials`](crate::ops::mse::mean_of_partials); the backward is one
//! invocation per element (token 0 sums its tokens − 1 terms in turn).

use crate::gpu::{Kernel, Params, Shader};
use crate::ops::mse::{mean_of_partials, CHUNK};
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::{check, Result};

static SHADER: Shader = shader!("sims.wgsl");
const SIMS_ROWS: Kernel = Kernel::new(&SHADER, "sims_rows", &[(1, true), (2, true), (4, false)]);
const SIMS_PAIRS: Kernel = Kernel::new(&SHADER, "sims_pairs", &[(2, true), (3, false)]);
const SIMS_GRAD: Kernel = Kernel::new(&SHADER, "sims_grad", &[(1, true), (2, true), (3, false)]);

/// The uniform block (`Params` of sims.wgsl).
fn params(
    op: &'static str,
    n: usize,
    batch: usize,
    tokens: usize,
    dim: usize,
    side: usize,
    coef: f64,
) -> Result<Params> {
    Ok(Params::new()
        .u(op, n)?
        .u(op, batch)?
        .u(op, tokens)?
        .u(op, dim)?
        .u(op, side)?
        .f(coef))
}

/// Per token row `[A₀·Aₜ, ‖Aₜ‖², B₀·Bₜ, ‖Bₜ‖²]`, `[batch·tokens, 4]` (arguments checked).
fn row_stats(
    be: &WgpuBackend,
    op: &'static str,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
) -> Result<wgpu::Buffer> {
    let rows = batch * tokens;
    let st = be.gpu.alloc(rows * 4)?;
    let p = params(op, 0, batch, tokens, dim, 0, 0.0)?;
    be.gpu
        .dispatch(op, SIMS_ROWS, &p, &[&a.buf, &b.buf, &st], rows as u64)?;
    Ok(st)
}

/// `loss[0] = mean((s_A − s_B)²)` over the `batch·(tokens − 1)` pairs.
pub(crate) fn sims_forward(
    be: &WgpuBackend,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
    loss: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "sims_forward";
    check::sims_forward(a.len, b.len, batch, tokens, dim, loss.len)?;
    let st = row_stats(be, OP, a, b, batch, tokens, dim)?;
    let pairs = batch * (tokens - 1);
    let groups = pairs.div_ceil(CHUNK);
    let partials = be.gpu.alloc(groups)?;
    let p = params(OP, pairs, batch, tokens, dim, 0, 0.0)?;
    be.gpu
        .dispatch(OP, SIMS_PAIRS, &p, &[&st, &partials], groups as u64)?;
    mean_of_partials(be, OP, partials, groups, pairs as f64, &loss.buf)
}

/// `da`, `db` += the gradient of `scale·loss`.
pub(crate) fn sims_backward(
    be: &WgpuBackend,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    batch: usize,
    tokens: usize,
    dim: usize,
    scale: f64,
    da: Option<&mut WgpuBuffer>,
    db: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "sims_backward";
    check::sims_backward(
        a.len,
        b.len,
        batch,
        tokens,
        dim,
        scale,
        da.as_ref().map(|d| d.len),
        db.as_ref().map(|d| d.len),
    )?;
    if da.is_none() && db.is_none() {
        return Ok(());
    }
    let st = row_stats(be, OP, a, b, batch, tokens, dim)?;
    let n = a.len;
    // ∂loss/∂s_A = 2·scale·(s_A − s_B)/pairs = −∂loss/∂s_B, the coefficient formed as
    // the reference forms it (f32 scale, times 2, over the pair count).
    let coef = (scale as f32 as f64) * 2.0 / (batch * (tokens - 1)) as f64;
    for (side, x, dx, c) in [(0, a, da, coef), (1, b, db, -coef)] {
        if let Some(dx) = dx {
            let p = params(OP, n, batch, tokens, dim, side, c)?;
            be.gpu.dispatch(
                OP,
                SIMS_GRAD,
                &p,
                &[&x.buf, &st, &dx.buf],
                (n as u64).div_ceil(crate::WG),
            )?;
        }
    }
    Ok(())
}
