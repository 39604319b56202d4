// Rounding f32 to f16, to nearest with ties to even, on every adapter: WGSL lets an
// f32→f16 conversion of a value between two f16 return either of them. Prepended (after
// `enable f16;` and common.wgsl) to the f16 kernels.

// The f16 nearest to x (ties to even) as bits; overflow gives ±Inf, NaN stays NaN.
fn f16_bits(x: f32) -> u32 {
    let bits = bitcast<u32>(x);
    let sign = (bits >> 16u) & 0x8000u;
    let e = i32((bits >> 23u) & 0xffu);
    let m = bits & 0x7fffffu;
    if (e == 255) {
        // Inf, or a quiet NaN keeping the top of the payload.
        return sign | 0x7c00u | select(0u, 0x200u | (m >> 13u), m != 0u);
    }
    let he = e - 112; // the f16 biased exponent
    if (he >= 31) {
        return sign | 0x7c00u;
    }
    if (he <= 0) {
        // Subnormal f16 (or zero): units of 2⁻²⁴.
        if (he < -10) {
            return sign; // below half the smallest subnormal
        }
        let shift = u32(14 - he);
        let full = m | 0x800000u;
        let r = full >> shift;
        let rem = full & ((1u << shift) - 1u);
        let half = 1u << (shift - 1u);
        let up = rem > half || (rem == half && (r & 1u) == 1u);
        return sign | (r + select(0u, 1u, up));
    }
    // Normal: a carry out of the significand bumps the exponent (up to Inf), as it must.
    let r = (u32(he) << 10u) | (m >> 13u);
    let rem = m & 0x1fffu;
    let up = rem > 0x1000u || (rem == 0x1000u && (r & 1u) == 1u);
    return sign | (r + select(0u, 1u, up));
}

// x rounded to f16 (the conversion of a representable value is exact).
fn round16(x: f32) -> f16 {
    return f16(unpack2x16float(f16_bits(x)).x);
}
