// Philox fills and dropout (src/ops/dropout_random.rs), bit for bit the streams of
// brain-core/src/philox.rs (Philox4x32-10 in common.cuh).
//
// Every kernel walks the Philox *blocks* of its stream with a grid-stride loop: one
// thread computes block b (words 4b .. 4b+3) once and produces the elements those four
// words make, so no word is computed twice. Full groups are stored (and, for dropout,
// loaded) as float4 when the buffers are 16-byte aligned (`vec`, decided on the host);
// the group at the end of the buffer and unaligned buffers go element by element.
#include "common.cuh"

__device__ __forceinline__ void store4(float* __restrict__ out, u64 i, float4 v, u64 n,
                                       bool vec) {
    if (vec && i + 4 <= n) {
        *reinterpret_cast<float4*>(out + i) = v;
    } else {
        if (i < n) out[i] = v.x;
        if (i + 1 < n) out[i + 1] = v.y;
        if (i + 2 < n) out[i + 2] = v.z;
        if (i + 3 < n) out[i + 3] = v.w;
    }
}

// Box–Muller on one word pair: u1 = ((w_even >> 8) + 1)·2^-24 ∈ (0, 1], u2 = (w_odd >> 8)·2^-24,
// r = √(−2 ln u1), returns (r cos 2πu2, r sin 2πu2). Unlike common.cuh's
// philox_box_muller (cos and sin of the f32-rounded angle 2π·u2, as brain-core's f32
// reference), the angle is taken exactly: sincospif(2·u2) (2·u2 is exact) has no
// argument reduction and no slow path (no local-memory stack), and lands closer to the
// f64 oracle; the two differ by the rounding of the angle, ~2πu·r at most, well inside
// the suite's Box–Muller tolerance.
__device__ __forceinline__ float2 box_muller_exact_angle(u32 w_even, u32 w_odd) {
    const float u1 = (float)((w_even >> 8) + 1u) * BRAIN_INV_2_24;
    const float u2 = philox_uniform(w_odd);
    const float r = sqrtf(-2.0f * logf(u1));
    float s, c;
    sincospif(2.0f * u2, &s, &c);
    return make_float2(r * c, r * s);
}

__device__ __forceinline__ float philox_hi16(u32 w) { return (float)(w >> 16); }
__device__ __forceinline__ float philox_lo16(u32 w) { return (float)(w & 0xffffu); }

// out[i] = (word i >> 8)·2^-24 for i < n.
extern "C" __global__ void fill_uniform_f32(float* __restrict__ out, u64 n, u64 seed,
                                            u64 offset, u32 vec) {
    const u64 blocks = (n + 3) >> 2;
    GRID_STRIDE(b, blocks) {
        const uint4 w = philox_block(seed, offset, b);
        const float4 v = make_float4(philox_uniform(w.x), philox_uniform(w.y),
                                     philox_uniform(w.z), philox_uniform(w.w));
        store4(out, b << 2, v, n, vec != 0);
    }
}

// out[i] = mean + std·z_i, (z_2j, z_2j+1) = Box–Muller(word 2j, word 2j+1): block b
// holds the pairs of elements 4b, 4b+1 and 4b+2, 4b+3.
extern "C" __global__ void fill_normal_f32(float* __restrict__ out, u64 n, u64 seed,
                                           u64 offset, float mean, float std, u32 vec) {
    const u64 blocks = (n + 3) >> 2;
    GRID_STRIDE(b, blocks) {
        const uint4 w = philox_block(seed, offset, b);
        const u64 i = b << 2;
        const float2 z01 = box_muller_exact_angle(w.x, w.y);
        // The second pair only when one of its elements exists (saves the log/sin/cos
        // at the end of an odd-sized buffer).
        float2 z23 = make_float2(0.0f, 0.0f);
        if (i + 2 < n) z23 = box_muller_exact_angle(w.z, w.w);
        const float4 v = make_float4(mean + std * z01.x, mean + std * z01.y,
                                     mean + std * z23.x, mean + std * z23.y);
        store4(out, i, v, n, vec != 0);
    }
}

// out[2i] = high 16 bits of word i, out[2i+1] = low 16 bits, for the n/2 words (n even):
// block b fills out[8b .. 8b+8).
extern "C" __global__ void philox_bits_f32(float* __restrict__ out, u64 n, u64 seed,
                                           u64 offset, u32 vec) {
    const u64 words = n >> 1;
    const u64 blocks = (words + 3) >> 2;
    GRID_STRIDE(b, blocks) {
        const uint4 w = philox_block(seed, offset, b);
        const u64 i = b << 3;
        store4(out, i, make_float4(philox_hi16(w.x), philox_lo16(w.x), philox_hi16(w.y),
                                   philox_lo16(w.y)),
               n, vec != 0);
        if (i + 4 < n)
            store4(out, i + 4, make_float4(philox_hi16(w.z), philox_lo16(w.z),
                                           philox_hi16(w.w), philox_lo16(w.w)),
                   n, vec != 0);
    }
}

// y[i] = x[i]·(keep ? scale : 0), keep ⇔ (word i >> 8) ≥ threshold. A multiply, not a
// select, so NaN and ±∞ in dropped positions still give NaN (as the reference). Used for
// the backward pass too (x = dy, y = dx): the mask is regenerated from (seed, offset).
// x and y may not alias (the Backend hands distinct buffers).
__device__ __forceinline__ float dropout_factor(u32 w, u32 threshold, float scale) {
    return philox_bits24(w) >= threshold ? scale : 0.0f;
}

extern "C" __global__ void dropout_f32(const float* __restrict__ x, float* __restrict__ y,
                                       u64 n, u64 seed, u64 offset, u32 threshold,
                                       float scale, u32 vec) {
    const u64 blocks = (n + 3) >> 2;
    GRID_STRIDE(b, blocks) {
        const uint4 w = philox_block(seed, offset, b);
        const u64 i = b << 2;
        const float4 f =
            make_float4(dropout_factor(w.x, threshold, scale), dropout_factor(w.y, threshold, scale),
                        dropout_factor(w.z, threshold, scale), dropout_factor(w.w, threshold, scale));
        if (vec != 0 && i + 4 <= n) {
            const float4 v = *reinterpret_cast<const float4*>(x + i);
            *reinterpret_cast<float4*>(y + i) =
                make_float4(v.x * f.x, v.y * f.y, v.z * f.z, v.w * f.w);
        } else {
            if (i < n) y[i] = x[i] * f.x;
            if (i + 1 < n) y[i + 1] = x[i + 1] * f.y;
            if (i + 2 < n) y[i + 2] = x[i + 2] * f.z;
            if (i + 3 < n) y[i + 3] = x[i + 3] * f.w;
        }
    }
}
