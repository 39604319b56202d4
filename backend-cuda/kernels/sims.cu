// Sims token loss forward and backward (src/ops/sims.rs) on a, b [batch, tokens, dim]:
// s_X[b, j] = cos(X[b,0], X[b,j]) for j ≥ 1, norms clamped at EPS = 1e-8;
// loss = mean over the batch·(tokens − 1) pairs of (s_A − s_B)².
//
// One warp per pair (b, j ≥ 1) gathers, in one read of the two token rows of A and of B,
// the six sums X₀·Xⱼ, Xⱼ·Xⱼ, X₀·X₀ (X = A, B): lane-strided (float4 when aligned),
// then a warp butterfly, whose result is the same bits in every lane. Token 0's squared
// norm is recomputed by each pair of its batch row with the same instruction sequence,
// so every pair sees the same value and no second pass is needed.
// - Forward: each warp adds its pairs' (s_A − s_B)², one partial per block; the mean
//   is finished by `sum_partials_f32` of mse.cu.
// - Backward: the same warp writes the pair's gradient coefficients (`sims_coef_f32`),
//   then `sims_grad_f32` reads each side once more and accumulates the gradient of
//   every token, token 0's as a column sum over the tokens of its row (8 strided
//   partial sums per column added in a fixed order).
#include "common.cuh"

#define SIMS_EPS 1e-8f
// Warps per block of the pair kernels (256 threads; src/ops/sims.rs: PAIR_WARPS).
#define SIMS_PAIR_WARPS 8
// Coefficients per pair (src/ops/sims.rs: COEFS).
#define SIMS_COEFS 8

// max(‖x‖, EPS) as the reference's Float::max: a NaN norm gives EPS (the NaN still
// reaches the cosine through the dot product).
__device__ __forceinline__ float sims_clamp(float norm) { return norm > SIMS_EPS ? norm : SIMS_EPS; }

// The six sums of pair (bi, j), in every lane of the calling warp:
// v[0] = A₀·Aⱼ, v[1] = Aⱼ·Aⱼ, v[2] = A₀·A₀, v[3] = B₀·Bⱼ, v[4] = Bⱼ·Bⱼ, v[5] = B₀·B₀.
__device__ __forceinline__ void sims_pair_sums(const float* __restrict__ a,
                                               const float* __restrict__ b, u64 bi, u64 j,
                                               u64 tokens, u64 dim, u32 lane, float v[6]) {
    const u64 o0 = bi * tokens * dim, oj = (bi * tokens + j) * dim;
#pragma unroll
    for (int k = 0; k < 6; ++k) v[k] = 0.0f;
    u64 done = 0;
    if ((dim & 3) == 0 && ((((u64)a) | ((u64)b)) & 15) == 0) {
        const float4* a0 = reinterpret_cast<const float4*>(a + o0);
        const float4* aj = reinterpret_cast<const float4*>(a + oj);
        const float4* b0 = reinterpret_cast<const float4*>(b + o0);
        const float4* bj = reinterpret_cast<const float4*>(b + oj);
        const u64 d4 = dim >> 2;
        for (u64 c = lane; c < d4; c += 32) {
            const float4 x0 = a0[c], xj = aj[c], y0 = b0[c], yj = bj[c];
            v[0] += (x0.x * xj.x + x0.y * xj.y) + (x0.z * xj.z + x0.w * xj.w);
            v[1] += (xj.x * xj.x + xj.y * xj.y) + (xj.z * xj.z + xj.w * xj.w);
            v[2] += (x0.x * x0.x + x0.y * x0.y) + (x0.z * x0.z + x0.w * x0.w);
            v[3] += (y0.x * yj.x + y0.y * yj.y) + (y0.z * yj.z + y0.w * yj.w);
            v[4] += (yj.x * yj.x + yj.y * yj.y) + (yj.z * yj.z + yj.w * yj.w);
            v[5] += (y0.x * y0.x + y0.y * y0.y) + (y0.z * y0.z + y0.w * y0.w);
        }
        done = dim;
    }
    for (u64 c = done + lane; c < dim; c += 32) {
        const float x0 = a[o0 + c], xj = a[oj + c], y0 = b[o0 + c], yj = b[oj + c];
        v[0] += x0 * xj;
        v[1] += xj * xj;
        v[2] += x0 * x0;
        v[3] += y0 * yj;
        v[4] += yj * yj;
        v[5] += y0 * y0;
    }
#pragma unroll
    for (int k = 0; k < 6; ++k) v[k] = warp_sum(v[k]);
}

// Sum over a block of any shape (blockDim.x·blockDim.y a multiple of 32, ≤ 1024), in a
// fixed tree; every thread gets the result. Call in uniform control flow.
__device__ __forceinline__ float sims_block_sum(float v) {
    __shared__ float part[32];
    const u32 tid = threadIdx.y * blockDim.x + threadIdx.x;
    const u32 lane = tid & 31u, warp = tid >> 5;
    const u32 warps = (blockDim.x * blockDim.y) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? part[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) part[0] = v;
    }
    __syncthreads();
    return part[0];
}

// Forward: partial[blockIdx.x] = Σ (s_A − s_B)² over the block's warps' pairs
// (grid-stride over the batch·(tokens − 1) pairs, one warp each).
extern "C" __global__ void __launch_bounds__(SIMS_PAIR_WARPS * 32)
    sims_pairs_f32(const float* __restrict__ a, const float* __restrict__ b,
                   float* __restrict__ partial, u64 batch, u64 tokens, u64 dim) {
    const u32 lane = threadIdx.x & 31u;
    const u64 per = tokens - 1, pairs = batch * per;
    float acc = 0.0f;
    for (u64 q = (u64)blockIdx.x * SIMS_PAIR_WARPS + (threadIdx.x >> 5); q < pairs;
         q += (u64)gridDim.x * SIMS_PAIR_WARPS) {
        const u64 bi = q / per, j = q - bi * per + 1;
        float v[6];
        sims_pair_sums(a, b, bi, j, tokens, dim, lane, v);
        const float sa = v[0] / (sims_clamp(sqrtf(v[2])) * sims_clamp(sqrtf(v[1])));
        const float sb = v[3] / (sims_clamp(sqrtf(v[5])) * sims_clamp(sqrtf(v[4])));
        const float d = sa - sb;
        if (lane == 0) acc += d * d;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Backward, per pair q = (b, j ≥ 1), with g = coef·(s_A − s_B) for A and −g for B,
// m = max(‖·‖, EPS), live = ‖·‖ > EPS:
//   coefs[8q + 4·side + 0] = α = g/(m₀·mⱼ)            (token j: α·x₀; token 0: α·xⱼ)
//   coefs[8q + 4·side + 1] = β = liveⱼ·g·s/mⱼ²         (token j: −β·xⱼ)
//   coefs[8q + 4·side + 2] = g·s                        (token 0: −x₀·live₀/m₀²·Σⱼ g·s)
//   coefs[8q + 4·side + 3] = live₀/m₀²                  (the same for every pair of b)
// coef = 2·scale/(batch·(tokens − 1)), rounded once on the host.
extern "C" __global__ void __launch_bounds__(SIMS_PAIR_WARPS * 32)
    sims_coef_f32(const float* __restrict__ a, const float* __restrict__ b,
                  float* __restrict__ coefs, u64 batch, u64 tokens, u64 dim, float coef) {
    const u32 lane = threadIdx.x & 31u;
    const u64 per = tokens - 1, pairs = batch * per;
    for (u64 q = (u64)blockIdx.x * SIMS_PAIR_WARPS + (threadIdx.x >> 5); q < pairs;
         q += (u64)gridDim.x * SIMS_PAIR_WARPS) {
        const u64 bi = q / per, j = q - bi * per + 1;
        float v[6];
        sims_pair_sums(a, b, bi, j, tokens, dim, lane, v);
        const float n0a = sqrtf(v[2]), nja = sqrtf(v[1]);
        const float n0b = sqrtf(v[5]), njb = sqrtf(v[4]);
        const float m0a = sims_clamp(n0a), mja = sims_clamp(nja);
        const float m0b = sims_clamp(n0b), mjb = sims_clamp(njb);
        const float sa = v[0] / (m0a * mja);
        const float sb = v[3] / (m0b * mjb);
        const float ga = coef * (sa - sb), gb = -ga;
        // lanes 0..7 each write one coefficient
        float out;
        switch (lane) {
        case 0: out = ga / (m0a * mja); break;
        case 1: out = (nja > SIMS_EPS ? 1.0f : 0.0f) * (ga * sa / (mja * mja)); break;
        case 2: out = ga * sa; break;
        case 3: out = (n0a > SIMS_EPS ? 1.0f : 0.0f) / (m0a * m0a); break;
        case 4: out = gb / (m0b * mjb); break;
        case 5: out = (njb > SIMS_EPS ? 1.0f : 0.0f) * (gb * sb / (mjb * mjb)); break;
        case 6: out = gb * sb; break;
        default: out = (n0b > SIMS_EPS ? 1.0f : 0.0f) / (m0b * m0b); break;
        }
        if (lane < SIMS_COEFS) coefs[q * SIMS_COEFS + lane] = out;
    }
}

// The gradient of one side x (0: A, 1: B), accumulated into dx, one block per (column
// tile, batch row b) (grid.y strides over the rows): for every token j ≥ 1
//   dx[b,j,c] += αⱼ·x[b,0,c] − βⱼ·x[b,j,c],
// and for token 0, from the same reads of x[b,j,c],
//   dx[b,0,c] += Σⱼ αⱼ·x[b,j,c] − x[b,0,c]·(live₀/m₀²)·Σⱼ gⱼ·sⱼ.
// Block (32, 8): threadIdx.x owns W consecutive columns (W = 4: float4, when dim % 4 = 0
// and the buffers are aligned; the tile is 32·W wide), threadIdx.y one of 8 strided
// shares of the tokens; token 0's 8 partial sums are added in a fixed order.
template <int W>
__device__ __forceinline__ void sims_grad(const float* __restrict__ x,
                                          const float* __restrict__ coefs,
                                          float* __restrict__ dx, u32 side, u64 batch,
                                          u64 tokens, u64 dim) {
    __shared__ float share[8][32 * W + 1];
    const u64 c = ((u64)blockIdx.x * 32 + threadIdx.x) * W;
    const bool live = c < dim; // W = 4: dim % 4 = 0, so all W columns are in range
    const u64 per = tokens - 1;
    const u32 tid = threadIdx.y * 32 + threadIdx.x;
    for (u64 bi = blockIdx.y; bi < batch; bi += gridDim.y) {
        const u64 o0 = bi * tokens * dim;
        const float* cf = coefs + bi * per * SIMS_COEFS + 4 * side;
        // Σⱼ gⱼ·sⱼ over the row's pairs (the same tree in every block of the row)
        float gs = 0.0f;
        for (u64 p = tid; p < per; p += 256) gs += cf[p * SIMS_COEFS + 2];
        gs = sims_block_sum(gs);
        float x0[W], acc[W];
#pragma unroll
        for (int k = 0; k < W; ++k) x0[k] = acc[k] = 0.0f;
        if (live) {
            if constexpr (W == 4) {
                const float4 v = *reinterpret_cast<const float4*>(x + o0 + c);
                x0[0] = v.x; x0[1] = v.y; x0[2] = v.z; x0[3] = v.w;
            } else {
                x0[0] = x[o0 + c];
            }
            for (u64 j = 1 + threadIdx.y; j < tokens; j += 8) {
                const float alpha = cf[(j - 1) * SIMS_COEFS];
                const float beta = cf[(j - 1) * SIMS_COEFS + 1];
                const u64 oj = o0 + j * dim + c;
                float xj[W], d[W];
                if constexpr (W == 4) {
                    const float4 v = *reinterpret_cast<const float4*>(x + oj);
                    const float4 g = *reinterpret_cast<const float4*>(dx + oj);
                    xj[0] = v.x; xj[1] = v.y; xj[2] = v.z; xj[3] = v.w;
                    d[0] = g.x; d[1] = g.y; d[2] = g.z; d[3] = g.w;
                } else {
                    xj[0] = x[oj];
                    d[0] = dx[oj];
                }
#pragma unroll
                for (int k = 0; k < W; ++k) {
                    d[k] += alpha * x0[k] - beta * xj[k];
                    acc[k] += alpha * xj[k];
                }
                if constexpr (W == 4)
                    *reinterpret_cast<float4*>(dx + oj) = make_float4(d[0], d[1], d[2], d[3]);
                else
                    dx[oj] = d[0];
            }
        }
#pragma unroll
        for (int k = 0; k < W; ++k) share[threadIdx.y][threadIdx.x * W + k] = acc[k];
        __syncthreads();
        if (threadIdx.y == 0 && live) {
            const float gamma = cf[3] * gs;
#pragma unroll
            for (int k = 0; k < W; ++k) {
                float s = 0.0f;
#pragma unroll
                for (int r = 0; r < 8; ++r) s += share[r][threadIdx.x * W + k];
                dx[o0 + c + k] += s - gamma * x0[k];
            }
        }
        __syncthreads(); // `share` is reused by the next row
    }
}

extern "C" __global__ void __launch_bounds__(256)
    sims_grad_f32(const float* __restrict__ x, const float* __restrict__ coefs,
                  float* __restrict__ dx, u32 side, u64 batch, u64 tokens, u64 dim) {
    sims_grad<1>(x, coefs, dx, side, batch, tokens, dim);
}

// sims_grad_f32 with float4 columns: dim % 4 = 0 and x, dx 16-byte aligned (the host
// checks).
extern "C" __global__ void __launch_bounds__(256)
    sims_grad_vec4_f32(const float* __restrict__ x, const float* __restrict__ coefs,
                       float* __restrict__ dx, u32 side, u64 batch, u64 tokens, u64 dim) {
    sims_grad<4>(x, coefs, dx, side, batch, tokens, dim);
}
