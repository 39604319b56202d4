//! fill, add, scale, axpy: one invocation per element, chunked past the storage
//! binding limit.

use crate::gpu::{Kernel, Params, Shader, READ_RW};
use crate::{same_len, WgpuBackend, WgpuBuffer};
use brain_core::Result;

static SHADER: Shader = shader!("elementwise.wgsl");
const FILL: Kernel = Kernel::new(&SHADER, "fill", &[(3, false)]);
const ADD: Kernel = Kernel::new(&SHADER, "add", &[(1, true), (2, true), (3, false)]);
const SCALE: Kernel = Kernel::new(&SHADER, "scale", &[(3, false)]);
const AXPY: Kernel = Kernel::new(&SHADER, "axpy", READ_RW);

/// `dst[i] = value`.
pub(crate) fn fill(be: &WgpuBackend, dst: &mut WgpuBuffer, value: f64) -> Result<()> {
    let params = Params::new().f(value);
    be.elementwise_chunked("fill", FILL, params, &[&dst.buf], dst.len)
}

/// `out = a + b`.
pub(crate) fn add(
    be: &WgpuBackend,
    a: &WgpuBuffer,
    b: &WgpuBuffer,
    out: &mut WgpuBuffer,
) -> Result<()> {
    same_len("add", "b", b.len, a.len)?;
    same_len("add", "out", out.len, a.len)?;
    be.elementwise_chunked(
        "add",
        ADD,
        Params::new(),
        &[&a.buf, &b.buf, &out.buf],
        a.len,
    )
}

/// `x ← alpha·x`.
pub(crate) fn scale(be: &WgpuBackend, x: &mut WgpuBuffer, alpha: f64) -> Result<()> {
    let params = Params::new().f(alpha);
    be.elementwise_chunked("scale", SCALE, params, &[&x.buf], x.len)
}

/// `y ← alpha·x + y`.
pub(crate) fn axpy(be: &WgpuBackend, alpha: f64, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
    same_len("axpy", "y", y.len, x.len)?;
    let params = Params::new().f(alpha);
    be.elementwise_chunked("axpy", AXPY, params, &[&x.buf, &y.buf], x.len)
}
