use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, unit_roundoff, Tol};
use brain_core::{Backend, UpsampleMode, UpsampleShape};
use proptest::prelude::*;

/// Nearest and bilinear (align_corners = false) upsampling, forward and backward.
pub fn upsample<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let mode = prop_oneof![Just(UpsampleMode::Nearest), Just(UpsampleMode::Bilinear)];
    let strategy = (
        (dim(3), dim(5), dim(17), dim(17), 1usize..6),
        mode,
        any::<u64>(),
    );
    run(
        "upsample",
        24,
        strategy,
        |((batch, channels, height, width, factor), mode, seed)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let s = UpsampleShape {
                batch,
                channels,
                height,
                width,
                factor,
            };
            let mut r = Rng::new(seed);
            let x = representable::<B>(&r.vec(s.input_len(), -1.0, 1.0));
            let dy = representable::<B>(&r.vec(s.output_len(), -1.0, 1.0));
            let mut yb = be.alloc(s.output_len()).map_err(e)?;
            be.upsample_forward(mode, &s, &up(be, &x), &mut yb)
                .map_err(e)?;
            let mut y = vec![0.0; s.output_len()];
            or.upsample_forward(mode, &s, &x, &mut y).map_err(e)?;
            // The source coordinate (dst + ½)/k − ½ is rounded relative to its own size
            // (up to max(H, W)), so the weight λ errs by ~u·max(H, W), times |x₁ − x₀| ≤ 2.
            let coord = (height.max(width) + 1) as f64;
            let tol = Tol::new(8.0 * u * coord, 8.0 * u, "bilinear weight λ from a coordinate rounded at magnitude max(H, W); nearest is a copy");
            check_close("upsample y", &down(be, &yb), &y, tol)?;

            let mut dxb = be.alloc(s.input_len()).map_err(e)?;
            be.upsample_backward(mode, &s, &up(be, &dy), &mut dxb)
                .map_err(e)?;
            let mut dx = vec![0.0; s.input_len()];
            or.upsample_backward(mode, &s, &dy, &mut dx).map_err(e)?;
            let k2 = ((factor + 2) * (factor + 2)) as f64;
            let tol = Tol::new(
                8.0 * u * k2 * coord,
                8.0 * u,
                "each input gathers at most (k+2)² terms, each weight off by ~u·max(H, W)",
            );
            check_close("upsample dx", &down(be, &dxb), &dx, tol)
        },
    );
}
