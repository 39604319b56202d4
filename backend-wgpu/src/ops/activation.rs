//! GELU (erf and tanh forms) and SiLU, forward and backward, one invocation per
//! element (chunked past the storage binding limit); WGSL has no erf, so the shader
//! carries its own (1.4 ulp).

use crate::gpu::{Kernel, Params, Shader, READ_RW};
use crate::{same_len, WgpuBackend, WgpuBuffer};
use brain_core::{Activation, Result};

static SHADER: Shader = shader!("activation.wgsl");
const GRAD: crate::gpu::Bindings = &[(1, true), (2, true), (3, false)];

fn forward_kernel(act: Activation) -> Kernel {
    let entry = match act {
        Activation::GeluErf => "gelu_erf_forward",
        Activation::GeluTanh => "gelu_tanh_forward",
        Activation::Silu => "silu_forward",
    };
    Kernel::new(&SHADER, entry, READ_RW)
}

fn backward_kernel(act: Activation) -> Kernel {
    let entry = match act {
        Activation::GeluErf => "gelu_erf_backward",
        Activation::GeluTanh => "gelu_tanh_backward",
        Activation::Silu => "silu_backward",
    };
    Kernel::new(&SHADER, entry, GRAD)
}

/// `y = f(x)`.
pub(crate) fn forward(
    be: &WgpuBackend,
    act: Activation,
    x: &WgpuBuffer,
    y: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "activation_forward";
    same_len(OP, "y", y.len, x.len)?;
    be.elementwise_chunked(
        OP,
        forward_kernel(act),
        Params::new(),
        &[&x.buf, &y.buf],
        x.len,
    )
}

/// `dx = dy·f'(x)`.
pub(crate) fn backward(
    be: &WgpuBackend,
    act: Activation,
    x: &WgpuBuffer,
    dy: &WgpuBuffer,
    dx: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "activation_backward";
    same_len(OP, "dy", dy.len, x.len)?;
    same_len(OP, "dx", dx.len, x.len)?;
    let k = backward_kernel(act);
    be.elementwise_chunked(OP, k, Params::new(), &[&x.buf, &dy.buf, &dx.buf], x.len)
}

/// erf alone, for the accuracy test.
pub(crate) fn erf_probe(be: &WgpuBackend, x: &WgpuBuffer, y: &mut WgpuBuffer) -> Result<()> {
    same_len("erf_probe", "y", y.len, x.len)?;
    let k = Kernel::new(&SHADER, "erf_probe", READ_RW);
    be.elementwise_chunked("erf_probe", k, Params::new(), &[&x.buf, &y.buf], x.len)
}
