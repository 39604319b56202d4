//! Classifier-free guidance: ε = ε_u + g·(ε_c − ε_u).

use crate::backend::Backend;
use crate::error::Result;

/// `out = uncond + scale·(cond − uncond)` (diffusers' `guidance_scale`; scale 1 gives
/// `cond`, scale 0 gives `uncond`).
pub fn classifier_free_guidance<B: Backend>(
    be: &B,
    uncond: &B::Buffer,
    cond: &B::Buffer,
    scale: f64,
    out: &mut B::Buffer,
) -> Result<()> {
    be.guidance_combine(uncond, cond, scale, out)
}
