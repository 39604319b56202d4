// Philox4x32-10 streams (brain_core::philox): raw words, uniforms, normals, dropout.
//
// Stream layout, as the reference: key = (seed lo, seed hi); counter = (block lo,
// block hi, offset lo, offset hi); block b yields words 4b .. 4b+3. One invocation per
// block: it computes the four words once and writes the (up to) four elements they
// make (eight for philox_bits, two halves per word). Element counts stay below 2³²
// (the host refuses larger), so block < 2³⁰ and its high word is 0.
//
// Bindings: 0 params (uniform), 1 src (read: dropout's x or dy), 3 out (read_write).

struct Params {
    n: u32,          // elements of out
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    threshold: u32,  // dropout: dropped iff (word >> 8) < threshold
    a: f32,          // fill_normal: mean; dropout: 1/(1−p)
    b: f32,          // fill_normal: std
    block0: u32,     // the first block of this dispatch (outputs beyond one binding
                     // are generated in ranges; `out` and `src` start at that block)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const M0: u32 = 0xD2511F53u;
const M1: u32 = 0xCD9E8D57u;
const W0: u32 = 0x9E3779B9u;
const W1: u32 = 0xBB67AE85u;

// High word of the 64-bit product a·b (WGSL has no 32×32→64 multiply), from 16-bit
// halves: every partial sum below fits in 32 bits.
fn mulhi(a: u32, b: u32) -> u32 {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let t = a0 * b0;
    let m1 = a1 * b0 + (t >> 16u);
    let m2 = a0 * b1 + (m1 & 0xffffu);
    return a1 * b1 + (m1 >> 16u) + (m2 >> 16u);
}

// The Philox4x32 block function, 10 rounds (brain_core::philox::philox4x32_10).
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(W0, W1);
        }
        let hi0 = mulhi(M0, c.x);
        let lo0 = M0 * c.x;
        let hi1 = mulhi(M1, c.z);
        let lo1 = M1 * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

// Words 4(block0 + b) .. 4(block0 + b)+3 of the stream (p.seed, p.offset).
fn block(b: u32) -> vec4<u32> {
    let counter = vec4<u32>(p.block0 + b, 0u, p.off_lo, p.off_hi);
    return philox4x32_10(counter, vec2<u32>(p.seed_lo, p.seed_hi));
}

// ⌈count/4⌉ without overflow: the blocks covering `count` words.
fn blocks(count: u32) -> u32 {
    return (count >> 2u) + select(0u, 1u, (count & 3u) != 0u);
}

// 2⁻²⁴.
const INV_2_24: f32 = 5.9604644775390625e-8;

// Uniform in [0, 1): (w >> 8)·2⁻²⁴, exact.
fn to_uniform(w: u32) -> f32 {
    return f32(w >> 8u) * INV_2_24;
}

// ln x for normal x > 0, about 1 ulp (musl's logf before 2017, from FreeBSD's
// e_logf.c). WGSL's own log promises only an absolute error of 2⁻²¹ near 1, which
// would wreck r = √(−2 ln u1) for u1 close to 1.
fn ln_f32(x: f32) -> f32 {
    // x = 2^k·(1 + f) with 1 + f in [√2/2, √2)
    var ix = bitcast<u32>(x) + (0x3f800000u - 0x3f3504f3u);
    let k = i32(ix >> 23u) - 0x7f;
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    let f = bitcast<f32>(ix) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let t1 = w * (0.40000972152 + w * 0.24279078841);
    let t2 = z * (0.66666662693 + w * 0.28498786688);
    let r = t2 + t1;
    let hfsq = 0.5 * f * f;
    let dk = f32(k);
    return s * (hfsq + r) + dk * 9.0580006145e-06 - hfsq + f + dk * 6.9313812256e-01;
}

// 2π·2⁻²⁴.
const TURN24: f32 = 3.7450702829239286e-07;

// (cos θ, sin θ) for θ = 2π·k·2⁻²⁴, k < 2²⁴, i.e. θ = 2π·u2 with u2 = k·2⁻²⁴ the
// reference's uniform. The quadrant comes exactly from the integer k, leaving
// |a| ≤ π/4 for the polynomials (fdlibm's k_sinf/k_cosf, under 1 ulp there). WGSL's
// cos and sin promise only 2⁻¹¹ absolute, too coarse for the suite.
fn cos_sin_turns(k: u32) -> vec2<f32> {
    let q = (k + 0x200000u) >> 22u;  // nearest quadrant, 0 ..= 4
    let a = f32(i32(k) - i32(q << 22u)) * TURN24;
    let z = a * a;
    let rs = 8.3333337680e-03 + z * (-1.9841270114e-04 + z * (2.7557314297e-06
        + z * (-2.5050759689e-08 + z * 1.5896910177e-10)));
    let s = a + z * a * (-1.6666667163e-01 + z * rs);
    let rc = z * (4.1666667908e-02 + z * (-1.3888889225e-03 + z * (2.4801587642e-05
        + z * (-2.7557314297e-07 + z * (2.0875723372e-09 + z * -1.1359647598e-11)))));
    let c = 1.0 - (0.5 * z - z * rc);
    switch (q & 3u) {
        case 0u: { return vec2<f32>(c, s); }
        case 1u: { return vec2<f32>(-s, c); }
        case 2u: { return vec2<f32>(-c, -s); }
        default: { return vec2<f32>(s, -c); }
    }
}

// Box–Muller on one word pair, as brain_core::philox::box_muller:
// u1 = ((w >> 8) + 1)·2⁻²⁴ ∈ (0, 1], r = √(−2 ln u1), z = (r cos 2πu2, r sin 2πu2).
fn box_muller(w_even: u32, w_odd: u32) -> vec2<f32> {
    let u1 = f32((w_even >> 8u) + 1u) * INV_2_24;
    let r = sqrt(-2.0 * ln_f32(u1));
    return r * cos_sin_turns(w_odd >> 8u);
}

// out[i] = uniform(word i)
@compute @workgroup_size(256)
fn fill_uniform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let b = element(wid, nwg, lid);
    let first = 4u * b;
    if (b >= blocks(p.n)) {
        return;
    }
    let w = block(b);
    let count = min(p.n - first, 4u);
    for (var j = 0u; j < count; j++) {
        out[first + j] = to_uniform(w[j]);
    }
}

// out[i] = mean + std·z_i, z from Box–Muller on the words (2⌊i/2⌋, 2⌊i/2⌋+1): a block
// holds two whole pairs.
@compute @workgroup_size(256)
fn fill_normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let b = element(wid, nwg, lid);
    let first = 4u * b;
    if (b >= blocks(p.n)) {
        return;
    }
    let w = block(b);
    let z01 = box_muller(w.x, w.y);
    let z23 = box_muller(w.z, w.w);
    var z = array<f32, 4>(z01.x, z01.y, z23.x, z23.y);
    let count = min(p.n - first, 4u);
    for (var j = 0u; j < count; j++) {
        out[first + j] = p.a + p.b * z[j];
    }
}

// out[2i] = hi16(word i), out[2i+1] = lo16(word i); p.n even.
@compute @workgroup_size(256)
fn philox_bits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let b = element(wid, nwg, lid);
    let words = p.n / 2u;
    let first = 4u * b;
    if (b >= blocks(words)) {
        return;
    }
    let w = block(b);
    let count = min(words - first, 4u);
    for (var j = 0u; j < count; j++) {
        out[2u * (first + j)] = f32(w[j] >> 16u);
        out[2u * (first + j) + 1u] = f32(w[j] & 0xffffu);
    }
}

// out[i] = src[i]·(keep_i ? 1/(1−p) : 0), keep_i = (word i >> 8) ≥ threshold. A
// multiply, not a select of the output, so NaN and Inf in dropped places propagate.
@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let b = element(wid, nwg, lid);
    let first = 4u * b;
    if (b >= blocks(p.n)) {
        return;
    }
    let w = block(b);
    let count = min(p.n - first, 4u);
    for (var j = 0u; j < count; j++) {
        let keep = (w[j] >> 8u) >= p.threshold;
        out[first + j] = src[first + j] * select(0.0, p.a, keep);
    }
}
