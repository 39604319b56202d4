// MSE loss forward and backward (src/ops/mse.rs), and the final pass of every loss's
// deterministic sum (`sum_partials_f32`, also launched by src/ops/sims.rs).
//
// The forward is two launches: `mse_partial_f32` (a grid of at most MSE_MAX_BLOCKS
// blocks, its size a function of n alone) writes one partial sum per block, and
// `sum_partials_f32` (one block) adds the partials in a fixed tree and divides. Every
// thread keeps four accumulators (one per float4 lane) that are combined pairwise, so a
// value's rounding path is a short serial chain, then a warp tree, then block trees:
// error ~(n / (4·threads) + log2 n)·u, and the same bits on every run.
#include "common.cuh"

// Threads per block of the partial-sum kernels (src/ops/mse.rs: `THREADS`).
#define MSE_THREADS 256

// Whether p is 16-byte aligned (float4 loads).
__device__ __forceinline__ bool mse_aligned16(const void* p) { return (((u64)p) & 15u) == 0; }

// partial[blockIdx.x] = Σ (a − b)² over the block's grid-stride share of n elements.
// float4 loads when both pointers are 16-byte aligned (the scalar tail after them).
extern "C" __global__ void __launch_bounds__(MSE_THREADS)
    mse_partial_f32(const float* __restrict__ a, const float* __restrict__ b,
                    float* __restrict__ partial, u64 n) {
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    u64 done = 0;
    if (mse_aligned16(a) && mse_aligned16(b)) {
        const u64 n4 = n >> 2;
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        GRID_STRIDE(i, n4) {
            const float4 x = a4[i], y = b4[i];
            const float d0 = x.x - y.x, d1 = x.y - y.y, d2 = x.z - y.z, d3 = x.w - y.w;
            s0 += d0 * d0;
            s1 += d1 * d1;
            s2 += d2 * d2;
            s3 += d3 * d3;
        }
        done = n4 << 2;
    }
    // The scalar part: everything (unaligned), or the tail of < 4 elements.
    for (u64 i = done + (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (u64)blockDim.x * gridDim.x) {
        const float d = a[i] - b[i];
        s0 += d * d;
    }
    const float s = block_sum((s0 + s1) + (s2 + s3));
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block: out[0] = (Σ partial[0..count)) / div, a fixed tree over the block (each
// thread first adds its grid-stride share in order). count ≥ 1.
extern "C" __global__ void sum_partials_f32(const float* __restrict__ partial, u32 count,
                                            float div, float* __restrict__ out) {
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[0] = s / div;
}

// da[i] += g, db[i] −= g with g = coef·(a[i] − b[i]), coef = 2·scale/N (rounded once on
// the host). Either gradient may be absent (a null pointer): the branch is uniform.
// float4 loads and stores when every pointer used is 16-byte aligned.
extern "C" __global__ void mse_backward_f32(const float* __restrict__ a,
                                            const float* __restrict__ b,
                                            float* __restrict__ da, float* __restrict__ db,
                                            float coef, u64 n) {
    u64 done = 0;
    const bool vec = mse_aligned16(a) && mse_aligned16(b) && mse_aligned16(da) &&
                     mse_aligned16(db); // null is aligned
    if (vec) {
        const u64 n4 = n >> 2;
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        float4* da4 = reinterpret_cast<float4*>(da);
        float4* db4 = reinterpret_cast<float4*>(db);
        GRID_STRIDE(i, n4) {
            const float4 x = a4[i], y = b4[i];
            const float4 g = make_float4(coef * (x.x - y.x), coef * (x.y - y.y),
                                         coef * (x.z - y.z), coef * (x.w - y.w));
            if (da != nullptr) {
                float4 v = da4[i];
                v.x += g.x;
                v.y += g.y;
                v.z += g.z;
                v.w += g.w;
                da4[i] = v;
            }
            if (db != nullptr) {
                float4 v = db4[i];
                v.x -= g.x;
                v.y -= g.y;
                v.z -= g.z;
                v.w -= g.w;
                db4[i] = v;
            }
        }
        done = n4 << 2;
    }
    for (u64 i = done + (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (u64)blockDim.x * gridDim.x) {
        const float g = coef * (a[i] - b[i]);
        if (da != nullptr) da[i] += g;
        if (db != nullptr) db[i] -= g;
    }
}
