//! Mean squared error, and [`mean_of_partials`]: the multi-pass sum every loss of this
//! backend ends with (per-workgroup partial sums, then passes over the partials until
//! one workgroup writes the mean into the 1-element loss buffer, on the device).

use crate::gpu::{Bindings, Kernel, Params, Part, Shader};
use crate::{WgpuBackend, WgpuBuffer, WG};
use brain_core::{check, Result};

static SHADER: Shader = shader!("mse.wgsl");
const AB_OUT: Bindings = &[(1, true), (2, true), (3, false)];
const MSE_PARTIAL: Kernel = Kernel::new(&SHADER, "mse_partial", AB_OUT);
const REDUCE_SUM: Kernel = Kernel::new(&SHADER, "reduce_sum", &[(1, true), (3, false)]);
const MSE_GRAD: Kernel = Kernel::new(&SHADER, "mse_grad", AB_OUT);
const MSE_GRAD2: Kernel = Kernel::new(
    &SHADER,
    "mse_grad2",
    &[(1, true), (2, true), (3, false), (4, false)],
);

/// Elements one workgroup of the partial-sum kernels covers (`WG·ITEMS` in mse.wgsl).
pub(crate) const CHUNK: usize = WG as usize * 16;

/// The uniform block of the partial-sum kernels (`Params` of mse.wgsl).
fn sum_params(op: &'static str, n: usize, finish: bool, div: f64) -> Result<Params> {
    Ok(Params::new()
        .u(op, n)?
        .u(op, usize::from(finish))?
        .f(div)
        .f(0.0))
}

/// `out[0] = Σ partials[..count] / div`, summed by passes of [`CHUNK`]-element
/// workgroups (a tree in each) until one workgroup is left. `count ≥ 1`.
pub(crate) fn mean_of_partials(
    be: &WgpuBackend,
    op: &'static str,
    partials: wgpu::Buffer,
    count: usize,
    div: f64,
    out: &wgpu::Buffer,
) -> Result<()> {
    let (mut src, mut count) = (partials, count);
    while count > CHUNK {
        let groups = count.div_ceil(CHUNK);
        let next = be.gpu.alloc(groups)?;
        let parts = [Part::Rows(&src, 1), Part::Blocks(&next, CHUNK, 1)];
        be.gpu
            .dispatch_rows(op, REDUCE_SUM, &parts, count, |_, n| {
                Ok((sum_params(op, n, false, 0.0)?, n.div_ceil(CHUNK) as u64))
            })?;
        (src, count) = (next, groups);
    }
    let params = sum_params(op, count, true, div)?;
    be.gpu.dispatch(op, REDUCE_SUM, &params, &[&src, out], 1)
}

/// `loss[0] = Σ (a − b)² / N`.
pub(crate) fn mse_forward(
    be: &WgpuBackend,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    loss: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "mse_forward";
    check::mse_forward(a.len, b.len, loss.len)?;
    let n = a.len;
    let groups = n.div_ceil(CHUNK);
    let partials = be.gpu.alloc(groups)?;
    // Inputs beyond one storage binding are summed in ranges of whole CHUNKs, each
    // writing its own partials: the same partials as one dispatch.
    let parts = [
        Part::Rows(&a.buf, 1),
        Part::Rows(&b.buf, 1),
        Part::Blocks(&partials, CHUNK, 1),
    ];
    be.gpu.dispatch_rows(OP, MSE_PARTIAL, &parts, n, |_, len| {
        Ok((sum_params(OP, len, false, 0.0)?, len.div_ceil(CHUNK) as u64))
    })?;
    mean_of_partials(be, OP, partials, groups, n as f64, &loss.buf)
}

/// `da += scale·2(a − b)/N`, `db −= the same`.
pub(crate) fn mse_backward(
    be: &WgpuBackend,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    scale: f64,
    da: Option<&mut WgpuBuffer>,
    db: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "mse_backward";
    check::mse_backward(
        a.len,
        b.len,
        scale,
        da.as_ref().map(|d| d.len),
        db.as_ref().map(|d| d.len),
    )?;
    let n = a.len;
    // The coefficient as the reference forms it: the f32 scale, times 2, over N.
    let coef = (scale as f32 as f64) * 2.0 / n as f64;
    let params = |c: f64| -> Result<Params> { Ok(Params::new().u(OP, 0)?.f(0.0).f(c)) };
    match (da, db) {
        (Some(da), Some(db)) => be.elementwise_chunked(
            OP,
            MSE_GRAD2,
            params(coef)?,
            &[&a.buf, &b.buf, &da.buf, &db.buf],
            n,
        ),
        (Some(da), None) => {
            be.elementwise_chunked(OP, MSE_GRAD, params(coef)?, &[&a.buf, &b.buf, &da.buf], n)
        }
        // db −= coef·(a − b) is db += (−coef)·(a − b) exactly.
        (None, Some(db)) => {
            be.elementwise_chunked(OP, MSE_GRAD, params(-coef)?, &[&a.buf, &b.buf, &db.buf], n)
        }
        (None, None) => Ok(()),
    }
}
