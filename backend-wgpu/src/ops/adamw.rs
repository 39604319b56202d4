//! Fused AdamW over all parameter tensors, global-norm clipping included, without a
//! host round trip: the norm and the clip coefficient live in a 2-element device
//! buffer that the update kernels read (see `shaders/adamw.wgsl` for the passes).
//! Tensors larger than one storage binding are processed in element ranges (whole
//! `CHUNK`s for the sum of squares), with results identical to one dispatch.

use crate::gpu::{Bindings, Kernel, Params, Part, Shader};
use crate::{same_len, WgpuBackend, WgpuBuffer, WG};
use brain_core::ops::CLIP_NORM_EPS;
use brain_core::reference::adamw::AdamWScalars;
use brain_core::{check, AdamW, AdamWTensor, Result};

static SHADER: Shader = shader!("adamw.wgsl");
const REDUCE: Bindings = &[(1, true), (3, false)];
const SUM_SQUARES: Kernel = Kernel::new(&SHADER, "sum_squares", REDUCE);
const FINISH: Kernel = Kernel::new(&SHADER, "finish", REDUCE);
const UPDATE: Kernel = Kernel::new(
    &SHADER,
    "update",
    &[(1, true), (2, true), (3, false), (4, false), (5, false)],
);

/// Elements one reduction workgroup sums (the shader's `CHUNK`).
const CHUNK: usize = 4096;

/// The shader's `Params`: the per-step scalars, rounded once to f32, and the
/// per-dispatch words `n`, `offset`, `square`.
struct Step<'a> {
    cfg: &'a AdamW,
    s: AdamWScalars<f64>,
}

impl Step<'_> {
    fn params(&self, n: usize, offset: usize, square: bool) -> Result<Params> {
        const OP: &str = "adamw_step";
        let (clip_on, max_norm) = match self.cfg.max_grad_norm {
            Some(c) => (1, c),
            None => (0, 0.0),
        };
        Ok(Params::new()
            .u(OP, n)?
            .u(OP, offset)?
            .u(OP, usize::from(square))?
            .u(OP, clip_on)?
            .f(max_norm)
            .f(CLIP_NORM_EPS)
            .f(self.s.decay)
            .f(self.s.step_size)
            .f(self.s.inv_sqrt_bc2)
            .f(self.s.eps)
            .f(self.s.beta1)
            .f(self.s.beta2))
    }
}

/// One fused step; `grad_norm` (1 element) gets the norm before clipping.
pub(crate) fn adamw_step(
    be: &WgpuBackend,
    cfg: &AdamW,
    tensors: &mut [AdamWTensor<'_, WgpuBackend>],
    grad_norm: Option<&mut WgpuBuffer>,
) -> Result<()> {
    const OP: &str = "adamw_step";
    check::adamw(cfg)?;
    for t in tensors.iter() {
        same_len(OP, "grad", t.grad.len, t.param.len)?;
        same_len(OP, "exp_avg", t.exp_avg.len, t.param.len)?;
        same_len(OP, "exp_avg_sq", t.exp_avg_sq.len, t.param.len)?;
    }
    if let Some(n) = &grad_norm {
        same_len(OP, "grad_norm", n.len, 1)?;
    }
    // Bias corrections in f64 on the host (as PyTorch in Python floats), then rounded
    // once to f32 by `Params::f`, exactly as `AdamWScalars::<f32>` rounds them.
    let step = Step {
        cfg,
        s: AdamWScalars::new(cfg),
    };
    // [norm, clip]: the finish kernel overwrites both; without it the clip stays 1.
    let stat = be.gpu.upload(&[0.0, 1.0])?;
    if cfg.max_grad_norm.is_some() || grad_norm.is_some() {
        global_norm(be, &step, tensors, &stat)?;
        if let Some(n) = grad_norm {
            be.gpu.copy(&stat, &n.buf, 1);
        }
    }
    for t in tensors.iter() {
        // Element-wise: tensors beyond one storage binding are updated in ranges.
        let parts = [
            Part::Rows(&t.grad.buf, 1),
            Part::Whole(&stat),
            Part::Rows(&t.param.buf, 1),
            Part::Rows(&t.exp_avg.buf, 1),
            Part::Rows(&t.exp_avg_sq.buf, 1),
        ];
        be.gpu
            .dispatch_rows(OP, UPDATE, &parts, t.param.len, |_, n| {
                Ok((step.params(n, 0, false)?, (n as u64).div_ceil(WG)))
            })?;
    }
    Ok(())
}

/// `stat = [‖g‖₂, clip coefficient]` over all gradients: per-chunk sums of squares
/// into one partials buffer, tree levels until one workgroup's worth is left, then
/// the finishing workgroup.
fn global_norm(
    be: &WgpuBackend,
    step: &Step<'_>,
    tensors: &[AdamWTensor<'_, WgpuBackend>],
    stat: &wgpu::Buffer,
) -> Result<()> {
    const OP: &str = "adamw_step";
    let total: usize = tensors.iter().map(|t| t.grad.len.div_ceil(CHUNK)).sum();
    let mut partials = be.gpu.alloc(total)?;
    let mut offset = 0;
    for t in tensors {
        // A gradient beyond one storage binding is summed in ranges of whole CHUNKs:
        // each range's workgroups write the slots the unchunked dispatch would.
        let parts = [Part::Rows(&t.grad.buf, 1), Part::Whole(&partials)];
        be.gpu
            .dispatch_rows_by(OP, SUM_SQUARES, &parts, t.grad.len, CHUNK, |first, n| {
                let params = step.params(n, offset + first / CHUNK, true)?;
                Ok((params, n.div_ceil(CHUNK) as u64))
            })?;
        offset += t.grad.len.div_ceil(CHUNK);
    }
    let mut len = total;
    while len > CHUNK {
        let groups = len.div_ceil(CHUNK);
        let next = be.gpu.alloc(groups)?;
        let parts = [Part::Rows(&partials, 1), Part::Blocks(&next, CHUNK, 1)];
        be.gpu.dispatch_rows(OP, SUM_SQUARES, &parts, len, |_, n| {
            Ok((step.params(n, 0, false)?, n.div_ceil(CHUNK) as u64))
        })?;
        partials = next;
        len = groups;
    }
    let params = step.params(len, 0, false)?;
    be.gpu.dispatch(OP, FINISH, &params, &[&partials, stat], 1)
}
