//! Sobel gradients on NCHW (per channel, zero padding 1) and the fused Sobel loss.
//!
//! - Forward: one invocation per pixel writes gx, gy and the magnitude.
//! - Backward: the effective gradients D = dg + dmag·g/|g| (a pass over the pixels into a
//!   temporary, only when dmagnitude is given), then a gather dx = −(Sx(Dx) + Sy(Dy)),
//!   which reads dgx, dgy directly when there is no dmagnitude.
//! - Loss forward: the per-pixel terms summed by workgroups (4 terms per invocation,
//!   then a 256-wide tree) into partials, then reduced by the same scheme until one
//!   value is left, divided by N into the 1-element loss buffer: a tree order, no
//!   download, no atomics.
//! - Loss backward: the loss's effective gradients (c = 2·scale/N) into a temporary, then
//!   the same gather accumulated onto dpred and dtarget.

use crate::gpu::{Kernel, Params, Shader};
use crate::{WgpuBackend, WgpuBuffer};
use brain_core::ops::SOBEL_EPS;
use brain_core::{check, ImageShape, Result, SobelLossForm};

static SHADER: Shader = shader!("sobel.wgsl");
const FORWARD: Kernel = Kernel::new(
    &SHADER,
    "sobel_forward",
    &[(1, true), (10, false), (11, false), (12, false)],
);
const EFF: Kernel = Kernel::new(
    &SHADER,
    "sobel_eff",
    &[(1, true), (2, true), (4, true), (5, true), (13, false)],
);
const GATHER: Kernel = Kernel::new(
    &SHADER,
    "sobel_gather",
    &[(1, true), (2, true), (14, false)],
);
const LOSS_TERMS: Kernel = Kernel::new(
    &SHADER,
    "sobel_loss_terms",
    &[(1, true), (2, true), (15, false)],
);
const REDUCE: Kernel = Kernel::new(&SHADER, "sobel_reduce", &[(1, true), (15, false)]);
const LOSS_EFF: Kernel = Kernel::new(
    &SHADER,
    "sobel_loss_eff",
    &[(1, true), (2, true), (13, false)],
);

/// Invocations per workgroup (the shaders' `WG`).
const WG: u64 = 256;
/// Elements one workgroup of the loss and reduce passes sums (`WG·PER`).
const PER_GROUP: usize = 256 * 4;

/// How the gather writes g = Sx(Dx) + Sy(Dy).
#[derive(Clone, Copy)]
enum Gather {
    /// out = −g (dx of `sobel_backward`).
    Set = 0,
    /// out −= g.
    Sub = 1,
    /// out += g.
    Add = 2,
}

/// The uniform block of every Sobel kernel (see `struct Params` in sobel.wgsl).
#[derive(Clone, Copy, Default)]
struct P {
    n: usize,
    mode: u32,
    off_x: usize,
    off_y: usize,
    use_x: bool,
    use_y: bool,
    c: f64,
}

fn sobel_params(op: &'static str, s: &ImageShape, p: P) -> Result<Params> {
    Ok(Params::new()
        .u(op, p.n)?
        .u(op, s.height)?
        .u(op, s.width)?
        .u(op, p.mode as usize)?
        .u(op, p.off_x)?
        .u(op, p.off_y)?
        .u(op, usize::from(p.use_x))?
        .u(op, usize::from(p.use_y))?
        .f(p.c)
        .f(SOBEL_EPS))
}

/// One invocation per pixel.
fn per_pixel(
    be: &WgpuBackend,
    op: &'static str,
    kernel: Kernel,
    params: &Params,
    buffers: &[&wgpu::Buffer],
    n: usize,
) -> Result<()> {
    be.gpu
        .dispatch(op, kernel, params, buffers, (n as u64).div_ceil(WG))
}

/// gx, gy, √(gx² + gy² + ε) of x.
pub(crate) fn sobel_forward(
    be: &WgpuBackend,
    x: &WgpuBuffer,
    shape: &ImageShape,
    gx: &mut WgpuBuffer,
    gy: &mut WgpuBuffer,
    magnitude: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "sobel_forward";
    check::sobel_forward(x.len, shape, gx.len, gy.len, magnitude.len)?;
    let n = shape.len();
    if n == 0 {
        return Ok(());
    }
    let params = sobel_params(OP, shape, P { n, ..P::default() })?;
    per_pixel(
        be,
        OP,
        FORWARD,
        &params,
        &[&x.buf, &gx.buf, &gy.buf, &magnitude.buf],
        n,
    )
}

/// dx (overwritten) = −(Sx(Dx) + Sy(Dy)) with Dx = dgx + dmag·gx/|g|, Dy likewise.
pub(crate) fn sobel_backward<'a>(
    be: &WgpuBackend,
    x: &'a WgpuBuffer,
    shape: &ImageShape,
    dgx: Option<&'a WgpuBuffer>,
    dgy: Option<&'a WgpuBuffer>,
    dmagnitude: Option<&WgpuBuffer>,
    dx: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "sobel_backward";
    check::sobel_backward(
        x.len,
        shape,
        dgx.map(|b| b.len),
        dgy.map(|b| b.len),
        dmagnitude.map(|b| b.len),
        dx.len,
    )?;
    let n = shape.len();
    if n == 0 {
        return Ok(());
    }
    // Absent inputs are flagged unused and bound to x, which the kernels then never read.
    let or_x = |b: Option<&'a WgpuBuffer>| b.map_or(&x.buf, |b| &b.buf);
    let Some(dm) = dmagnitude else {
        let p = P {
            n,
            mode: Gather::Set as u32,
            use_x: dgx.is_some(),
            use_y: dgy.is_some(),
            ..P::default()
        };
        let params = sobel_params(OP, shape, p)?;
        let bufs = [or_x(dgx), or_x(dgy), &dx.buf];
        return per_pixel(be, OP, GATHER, &params, &bufs, n);
    };
    let n2 = n.saturating_mul(2);
    Params::new().u(OP, n2)?; // every eff index fits in 32 bits
    let p = P {
        n,
        use_x: dgx.is_some(),
        use_y: dgy.is_some(),
        ..P::default()
    };
    let params = sobel_params(OP, shape, p)?;
    let eff = be.gpu.alloc(n2)?;
    per_pixel(
        be,
        OP,
        EFF,
        &params,
        &[&x.buf, or_x(dgx), or_x(dgy), &dm.buf, &eff],
        n,
    )?;
    gather(be, OP, shape, &eff, [0, n], Gather::Set, &dx.buf)
}

/// `out` updated (see [`Gather`]) with Sx of the field at `off[0]` of `eff` plus Sy of
/// the one at `off[1]`.
fn gather(
    be: &WgpuBackend,
    op: &'static str,
    shape: &ImageShape,
    eff: &wgpu::Buffer,
    off: [usize; 2],
    mode: Gather,
    out: &wgpu::Buffer,
) -> Result<()> {
    let n = shape.len();
    let p = P {
        n,
        mode: mode as u32,
        off_x: off[0],
        off_y: off[1],
        use_x: true,
        use_y: true,
        c: 0.0,
    };
    let params = sobel_params(op, shape, p)?;
    per_pixel(be, op, GATHER, &params, &[eff, eff, out], n)
}

fn form_mode(form: SobelLossForm) -> u32 {
    match form {
        SobelLossForm::Magnitude => 0,
        SobelLossForm::Components => 1,
    }
}

/// The fused loss into the 1-element `loss`: mean over pixels of (M_p − M_t)² or of
/// (gx_p − gx_t)² + (gy_p − gy_t)².
pub(crate) fn sobel_loss_forward(
    be: &WgpuBackend,
    pred: &WgpuBuffer,
    target: &WgpuBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    loss: &mut WgpuBuffer,
) -> Result<()> {
    const OP: &str = "sobel_loss_forward";
    check::sobel_loss_forward(pred.len, target.len, shape, loss.len)?;
    let n = shape.len(); // ≥ 1 (checked)
    let mut groups = n.div_ceil(PER_GROUP);
    let mut parts = be.gpu.alloc(groups)?;
    let p = P {
        n,
        mode: form_mode(form),
        ..P::default()
    };
    let params = sobel_params(OP, shape, p)?;
    be.gpu.dispatch(
        OP,
        LOSS_TERMS,
        &params,
        &[&pred.buf, &target.buf, &parts],
        groups as u64,
    )?;
    // Reduce the partials level by level; the last level (one group) divides by N and
    // writes the loss.
    loop {
        let count = groups;
        groups = count.div_ceil(PER_GROUP);
        let last = groups == 1;
        let p = P {
            n: count,
            c: if last { n as f64 } else { 1.0 },
            ..P::default()
        };
        let params = sobel_params(OP, shape, p)?;
        if last {
            return be
                .gpu
                .dispatch(OP, REDUCE, &params, &[&parts, &loss.buf], 1);
        }
        let next = be.gpu.alloc(groups)?;
        be.gpu
            .dispatch(OP, REDUCE, &params, &[&parts, &next], groups as u64)?;
        parts = next;
    }
}

/// dpred, dtarget += the gradients of scale·loss.
pub(crate) fn sobel_loss_backward(
    be: &WgpuBackend,
    pred: &WgpuBuffer,
    target: &WgpuBuffer,
    shape: &ImageShape,
    form: SobelLossForm,
    scale: f64,
    dpred: Option<&mut WgpuBuffer>,
    dtarget: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "sobel_loss_backward";
    check::sobel_loss_backward(
        pred.len,
        target.len,
        shape,
        scale,
        dpred.as_deref().map(|b| b.len),
        dtarget.as_deref().map(|b| b.len),
    )?;
    if dpred.is_none() && dtarget.is_none() {
        return Ok(());
    }
    let n = shape.len(); // ≥ 1 (checked)
                         // eff layout: [Dx_p, Dy_p] (components: the target's are their negation), plus
                         // [Dx_t, Dy_t] for the magnitude form when dtarget is wanted.
    let (mode, fields) = match form {
        SobelLossForm::Components => (0, 2),
        SobelLossForm::Magnitude if dtarget.is_none() => (1, 2),
        SobelLossForm::Magnitude => (2, 4),
    };
    let len = n.saturating_mul(fields);
    Params::new().u(OP, len)?; // every eff index fits in 32 bits
    let eff = be.gpu.alloc(len)?;
    let p = P {
        n,
        mode,
        c: 2.0 * scale / n as f64,
        ..P::default()
    };
    let params = sobel_params(OP, shape, p)?;
    per_pixel(
        be,
        OP,
        LOSS_EFF,
        &params,
        &[&pred.buf, &target.buf, &eff],
        n,
    )?;
    if let Some(dp) = dpred {
        gather(be, OP, shape, &eff, [0, n], Gather::Sub, &dp.buf)?;
    }
    if let Some(dt) = dtarget {
        match form {
            // the target's effective gradients are the pred's negated: out −= −g
            SobelLossForm::Components => gather(be, OP, shape, &eff, [0, n], Gather::Add, &dt.buf)?,
            SobelLossForm::Magnitude => {
                gather(be, OP, shape, &eff, [2 * n, 3 * n], Gather::Sub, &dt.buf)?
            }
        }
    }
    Ok(())
}
