use crate::data::{dim, down, representable, run, Oracle};
use crate::tolerance::{check_close, excepted, unit_roundoff, Tol};
use brain_core::Backend;
use proptest::prelude::*;

/// Philox streams: the integer words bit for bit, uniforms exactly (24-bit values
/// are exact in f32; rounded once in f16), normals to the accuracy of f32 log/sin/cos.
pub fn philox<B: Backend>(be: &B) {
    let or = Oracle::new();
    let bits_exact = !excepted::<B::Elem>("philox_bits exact");
    let u = unit_roundoff::<B::Elem>();
    let seeds = prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()];
    let offsets = prop_oneof![Just(0u64), Just(1u64 << 32), any::<u64>()];
    run(
        "philox",
        24,
        (dim(20_000), seeds, offsets),
        |(n, seed, offset)| {
            let e = |e: brain_core::BrainError| e.to_string();
            let mut b = be.alloc(2 * n).map_err(e)?;
            be.philox_bits(&mut b, seed, offset).map_err(e)?;
            let mut want = vec![0.0; 2 * n];
            or.philox_bits(&mut want, seed, offset).map_err(e)?;
            if bits_exact {
                check_close(
                    "philox_bits",
                    &down(be, &b),
                    &want,
                    Tol::exact("the integer stream is identical on every backend"),
                )?;
            } else {
                check_close(
                    "philox_bits",
                    &down(be, &b),
                    &representable::<B>(&want),
                    Tol::exact("the integer stream rounded once to the element type"),
                )?;
            }

            let mut b = be.alloc(n).map_err(e)?;
            be.fill_uniform(&mut b, seed, offset).map_err(e)?;
            let mut want = vec![0.0; n];
            or.fill_uniform(&mut want, seed, offset).map_err(e)?;
            check_close(
                "fill_uniform",
                &down(be, &b),
                &representable::<B>(&want),
                Tol::exact("k·2⁻²⁴ with k < 2²⁴ is exact in f32 (and f64), rounded once in f16"),
            )?;

            be.fill_normal(&mut b, seed, offset, 0.5, 2.0).map_err(e)?;
            or.fill_normal(&mut want, seed, offset, 0.5, 2.0)
                .map_err(e)?;
            // z = std·r·cos(2πu2) with r ≤ √(2·24·ln 2) ≈ 5.8: the rounded angle 2πu2 (error
            // ~2πu) moves cos by up to that much, times r·std.
            let tol = Tol::new(
                16.0 * u * 6.3 * 5.8 * 2.0,
                16.0 * u,
                "Box–Muller: angle rounding 2πu times r ≤ 5.8 times std",
            );
            check_close("fill_normal", &down(be, &b), &want, tol)
        },
    );
}
