// Fused multi-tensor AdamW with global-norm clipping, all on the device
// (src/ops/adamw.rs). Three kernels, no host round trip:
//   1. adamw_sumsq_f32 (only when clipping or the norm is wanted): Σg² of every chunk
//      of every gradient, in f64, into partials[chunk];
//   2. adamw_finish_f32 (one block): the global norm √Σ (f64, rounded once to f32, as
//      backend-cpu does) and the clip coefficient into stat = [norm, clip], and the norm
//      into grad_norm[0] when asked;
//   3. adamw_update_f32: p, m, v from the gradient times stat[1] (or 1 without
//      clipping), brain-core's f32 formula with every operation rounded as written
//      (__f*_rn, no FMA contraction), so an element's update is bit-identical to the
//      reference's and backend-cpu's given the same clip coefficient.
//
// Many tensors per launch: the kernels get a table of up to ADAMW_TENSORS tensors by
// value (kernel parameters, so nothing is uploaded) and every block serves one CHUNK of
// one tensor, found from the table's cumulative chunk counts; biases and norms of a few
// hundred values thus cost one block each in a shared launch instead of a launch each.
// Within a chunk, float4 accesses when the tensor's buffers are 16-byte aligned (chunk
// starts are multiples of 4), element by element for the last < 4 values.
#include "common.cuh"

#define ADAMW_TENSORS 48
#define ADAMW_THREADS 256
#define ADAMW_CHUNK 4096 // elements per block: 4 float4 per thread

// Mirrors `Table` in src/ops/adamw.rs field for field (#[repr(C)]).
struct AdamwTable {
    u64 param[ADAMW_TENSORS];
    u64 grad[ADAMW_TENSORS];
    u64 exp_avg[ADAMW_TENSORS];
    u64 exp_avg_sq[ADAMW_TENSORS];
    u64 len[ADAMW_TENSORS];
    // chunk_start[t] = chunks (blocks) of tensors 0 .. t−1; chunk_start[count] = grid.
    u32 chunk_start[ADAMW_TENSORS + 1];
    u32 count;
};

// The tensor whose chunks include block b: the last t with chunk_start[t] ≤ b (binary
// search over the uniform table: every thread of the block takes the same path).
__device__ __forceinline__ u32 adamw_tensor_of(const AdamwTable& tab, u32 b) {
    u32 lo = 0, hi = tab.count; // chunk_start[lo] ≤ b < chunk_start[hi]
    while (hi - lo > 1) {
        const u32 mid = (lo + hi) >> 1;
        if (tab.chunk_start[mid] <= b) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

__device__ __forceinline__ double block_sum_f64(double v) {
    __shared__ double warp_part[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 warps = (blockDim.x + 31u) >> 5;
    __syncthreads();
    if (lane == 0) warp_part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? warp_part[lane] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v; // valid in thread 0
}

__device__ __forceinline__ double sq(float g) {
    const double d = (double)g;
    return d * d; // exact: a 24-bit mantissa squared fits in 53 bits
}

// partials[base + b] = Σ g² over chunk b of this launch's tensors (f64).
extern "C" __global__ void adamw_sumsq_f32(AdamwTable tab, double* __restrict__ partials,
                                           u64 base) {
    const u32 b = blockIdx.x;
    const u32 t = adamw_tensor_of(tab, b);
    const u64 start = (u64)(b - tab.chunk_start[t]) * ADAMW_CHUNK;
    const u64 len = tab.len[t];
    const u64 n = len - start < ADAMW_CHUNK ? len - start : ADAMW_CHUNK;
    const float* g = reinterpret_cast<const float*>(tab.grad[t]) + start;
    double acc = 0.0;
    u64 done = 0;
    if ((tab.grad[t] & 15u) == 0) {
        const u64 n4 = n >> 2;
        for (u64 i = threadIdx.x; i < n4; i += blockDim.x) {
            const float4 v = reinterpret_cast<const float4*>(g)[i];
            acc += (sq(v.x) + sq(v.y)) + (sq(v.z) + sq(v.w));
        }
        done = n4 << 2;
    }
    for (u64 i = done + threadIdx.x; i < n; i += blockDim.x) acc += sq(g[i]);
    acc = block_sum_f64(acc);
    if (threadIdx.x == 0) partials[base + b] = acc;
}

// One block: stat = [‖g‖₂, clip] from partials[0 .. count); grad_norm[0] = ‖g‖₂ when
// grad_norm is not null. clip = min(1, max_norm / (norm + clip_eps)) in f32 with a NaN
// kept (brain_core's clip_coefficient), or 1 without clipping.
extern "C" __global__ void adamw_finish_f32(const double* __restrict__ partials, u64 count,
                                            float* __restrict__ stat,
                                            float* __restrict__ grad_norm, u32 clip_on,
                                            float max_norm, float clip_eps) {
    double acc = 0.0;
    // A serial run per thread in a fixed order, then the block tree: deterministic.
    for (u64 i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
    acc = block_sum_f64(acc);
    if (threadIdx.x == 0) {
        const float norm = (float)sqrt(acc);
        float clip = 1.0f;
        if (clip_on != 0) {
            const float c = __fdiv_rn(max_norm, __fadd_rn(norm, clip_eps));
            if (brain_isnan(c) || c < 1.0f) clip = c;
        }
        stat[0] = norm;
        stat[1] = clip;
        if (grad_norm != nullptr) grad_norm[0] = norm;
    }
}

struct AdamwScalars {
    float clip, decay, step_size, inv_sqrt_bc2, eps, beta1, beta2, omb1, omb2;
};

// brain_core::reference::adamw::adamw_element on the gradient times the clip
// coefficient, operation for operation.
__device__ __forceinline__ void adamw_element(const AdamwScalars& s, float& p, float g,
                                              float& m, float& v) {
    g = __fmul_rn(g, s.clip);
    const float pd = __fmul_rn(p, s.decay);
    m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(s.omb1, g));
    v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(__fmul_rn(s.omb2, g), g));
    const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(v), s.inv_sqrt_bc2), s.eps);
    p = __fsub_rn(pd, __fdiv_rn(__fmul_rn(s.step_size, m), denom));
}

// One chunk of one tensor per block. `stat` is null without clipping (clip = 1).
extern "C" __global__ void adamw_update_f32(AdamwTable tab, const float* __restrict__ stat,
                                            float decay, float step_size, float inv_sqrt_bc2,
                                            float eps, float beta1, float beta2, float omb1,
                                            float omb2) {
    AdamwScalars s;
    s.clip = stat != nullptr ? stat[1] : 1.0f;
    s.decay = decay;
    s.step_size = step_size;
    s.inv_sqrt_bc2 = inv_sqrt_bc2;
    s.eps = eps;
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.omb1 = omb1;
    s.omb2 = omb2;
    const u32 b = blockIdx.x;
    const u32 t = adamw_tensor_of(tab, b);
    const u64 start = (u64)(b - tab.chunk_start[t]) * ADAMW_CHUNK;
    const u64 len = tab.len[t];
    const u64 n = len - start < ADAMW_CHUNK ? len - start : ADAMW_CHUNK;
    float* p = reinterpret_cast<float*>(tab.param[t]) + start;
    const float* g = reinterpret_cast<const float*>(tab.grad[t]) + start;
    float* m = reinterpret_cast<float*>(tab.exp_avg[t]) + start;
    float* v = reinterpret_cast<float*>(tab.exp_avg_sq[t]) + start;
    u64 done = 0;
    if (((tab.param[t] | tab.grad[t] | tab.exp_avg[t] | tab.exp_avg_sq[t]) & 15u) == 0) {
        const u64 n4 = n >> 2;
        for (u64 i = threadIdx.x; i < n4; i += blockDim.x) {
            float4 pv = reinterpret_cast<const float4*>(p)[i];
            const float4 gv = reinterpret_cast<const float4*>(g)[i];
            float4 mv = reinterpret_cast<const float4*>(m)[i];
            float4 vv = reinterpret_cast<const float4*>(v)[i];
            adamw_element(s, pv.x, gv.x, mv.x, vv.x);
            adamw_element(s, pv.y, gv.y, mv.y, vv.y);
            adamw_element(s, pv.z, gv.z, mv.z, vv.z);
            adamw_element(s, pv.w, gv.w, mv.w, vv.w);
            reinterpret_cast<float4*>(p)[i] = pv;
            reinterpret_cast<float4*>(m)[i] = mv;
            reinterpret_cast<float4*>(v)[i] = vv;
        }
        done = n4 << 2;
    }
    for (u64 i = done + threadIdx.x; i < n; i += blockDim.x) {
        float pe = p[i], me = m[i], ve = v[i];
        adamw_element(s, pe, g[i], me, ve);
        p[i] = pe;
        m[i] = me;
        v[i] = ve;
    }
}
