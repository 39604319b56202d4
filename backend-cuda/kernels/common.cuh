// Shared device code for every kernel family of backend-cuda.
//
// NVRTC receives this file as the in-memory header "common.cuh" (see
// src/module_cache.rs), so every family starts with `#include "common.cuh"` and nothing
// else from outside: no system header is needed, and the same text compiles at run
// time on the GPU machine and in CI.
//
// Conventions for kernels (all families):
// - `extern "C" __global__`, name `<what>_f32`; the Rust side looks them up by name.
// - Sizes and indices are 64-bit (`u64`): a buffer may hold more than 2^32 elements.
// - 1-D launches use grid-stride loops (`GRID_STRIDE`), so any grid size is correct and
//   src/launch.rs may cap the grid.
// - Block reductions need blockDim.x to be a multiple of 32 (at most 1024), blockDim.y
//   = blockDim.z = 1.
// - Scalars arrive as f32 (rounded once on the host) unless a kernel says otherwise.
#pragma once

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define GRID_STRIDE(i, n)                                                              \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)(n);            \
         i += (u64)blockDim.x * gridDim.x)

// ------------------------------------------------------------------ constants

#define BRAIN_FRAC_1_SQRT_2 0.70710678118654752440f
#define BRAIN_SQRT_2_OVER_PI 0.79788456080286535588f
#define BRAIN_INV_SQRT_2PI 0.39894228040143267794f
// 2π rounded to f32, as brain-core's `T::from_f64(TAU)` for T = f32.
#define BRAIN_TAU_F32 6.28318548202514648438f
// 2^-24.
#define BRAIN_INV_2_24 5.9604644775390625e-08f

__device__ __forceinline__ float brain_nan() { return __int_as_float(0x7fffffff); }
__device__ __forceinline__ bool brain_isnan(float x) { return x != x; }

// ------------------------------------------------------------------ Philox4x32-10
//
// Exactly brain-core/src/philox.rs: key = (seed lo, seed hi); counter = (block lo,
// block hi, offset lo, offset hi); block b of stream (seed, offset) yields words
// 4b .. 4b+3. Word i is a pure function of (seed, offset, i).

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k.x += PHILOX_W0;
            k.y += PHILOX_W1;
        }
        const u32 hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
        const u32 hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

// The four words of block `block` of stream (seed, offset).
__device__ __forceinline__ uint4 philox_block(u64 seed, u64 offset, u64 block) {
    return philox4x32_10(make_uint4((u32)block, (u32)(block >> 32), (u32)offset,
                                    (u32)(offset >> 32)),
                         make_uint2((u32)seed, (u32)(seed >> 32)));
}

// Word j (0..3) of a block.
__device__ __forceinline__ u32 philox_lane(uint4 b, u32 j) {
    return j == 0 ? b.x : j == 1 ? b.y : j == 2 ? b.z : b.w;
}

// Word i of stream (seed, offset). Kernels that need several consecutive words should
// compute the block once (i / 4) and take its lanes.
__device__ __forceinline__ u32 philox_word(u64 seed, u64 offset, u64 i) {
    return philox_lane(philox_block(seed, offset, i >> 2), (u32)(i & 3));
}

// Top 24 bits of a word, an integer in [0, 2^24).
__device__ __forceinline__ u32 philox_bits24(u32 w) { return w >> 8; }

// Uniform in [0, 1): (w >> 8)·2^-24, exact in f32.
__device__ __forceinline__ float philox_uniform(u32 w) {
    return (float)(w >> 8) * BRAIN_INV_2_24;
}

// Box–Muller on one word pair, in f32 as brain-core's reference for T = f32:
// u1 = ((w_even >> 8) + 1)·2^-24 ∈ (0, 1], u2 = (w_odd >> 8)·2^-24,
// r = √(−2 ln u1), θ = 2π·u2, returns (r cos θ, r sin θ).
__device__ __forceinline__ float2 philox_box_muller(u32 w_even, u32 w_odd) {
    const float u1 = (float)((w_even >> 8) + 1u) * BRAIN_INV_2_24;
    const float u2 = philox_uniform(w_odd);
    const float r = sqrtf(-2.0f * logf(u1));
    const float theta = BRAIN_TAU_F32 * u2;
    return make_float2(r * cosf(theta), r * sinf(theta));
}

// ------------------------------------------------------------------ reductions

struct SumOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

// max that propagates NaN (fmaxf would drop it), as brain-core's `nan_max`.
struct MaxNanOp {
    __device__ __forceinline__ float operator()(float a, float b) const {
        return (brain_isnan(a) || brain_isnan(b)) ? brain_nan() : fmaxf(a, b);
    }
};

template <class Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, SumOp()); }

// Reduce `v` over the block; every thread gets the result. Needs blockDim.x a multiple
// of 32; may be called several times in a row (it synchronises before reusing its
// shared scratch). `identity` fills the lanes past the last warp.
template <class Op>
__device__ __forceinline__ float block_reduce(float v, Op op, float identity) {
    __shared__ float partial[32];
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 warps = (blockDim.x + 31u) >> 5;
    v = warp_reduce(v, op);
    __syncthreads(); // a previous call's readers are done with `partial`
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? partial[lane] : identity;
        v = warp_reduce(v, op);
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    return partial[0];
}

__device__ __forceinline__ float block_sum(float v) { return block_reduce(v, SumOp(), 0.0f); }

__device__ __forceinline__ float block_max_nan(float v) {
    return block_reduce(v, MaxNanOp(), -__int_as_float(0x7f800000));
}
