// Linear CKA on n×n Gram matrices K, L, biased and unbiased HSIC, forward and backward
// (src/ops/cka.rs): four statistics passes through one scratch buffer w, then (backward)
// one thread per gradient entry.
//
// HSIC is summed over *centred* entries, not from the closed form's uncentred sums
// (whose terms cancel when the Grams have a large mean): with row sums r, column sums
// c and total s (of K̃, the zero-diagonal K, for the unbiased estimator),
//   biased:   Kc[i,j] = K[i,j] − r_i/n − c_j/n + s/n²  (HKH);
//             HSIC(K,L)·(n−1)² = Σ_ij Kc[i,j]·Lc[j,i] (= tr(KHLH), H idempotent);
//   unbiased: K̂[i,j] = K[i,j] − r̃_i/m − c̃_j/m + S̃/((n−1)(n−2)), m = n − 2 (U-centring);
//             HSIC(K,L)·n(n−3) = Σ_{i≠j} K̂[i,j]·L̂[j,i] + [(Σ δ_K·c̃_L − Σ c̃_K·ε_L)/m
//             + Σ δ_K·ε_L/m²], δ_K = r̃_K − c̃_K, ε_L = r̃_L − c̃_L: the bracket, zero for
//             symmetric Grams, makes it Song et al.'s estimator for any matrices.
// Every sum is a strided per-thread share then a fixed block tree (deterministic).
//
// Layout of w (f32), CKA_ST + 7n values:
//   [0, 16)   res: 1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L), α, β, γ
//   [16, 32)  tot: g_K, g_L (s/n² or S̃/((n−1)(n−2))), then the five bracket sums
//   [32, 32 + 4n)       per i: r_K, c_K, r_L, c_L (cka_rows), then divided by n or m
//                       (cka_totals): the centring vectors ρ_K, κ_K, ρ_L, κ_L
//   [32 + 4n, 32 + 7n)  per i: Σ_j of the three centred products (cka_centred)
#include "common.cuh"

#define CKA_TOT 16
#define CKA_ST 32
// Threads per block of every kernel here (src/ops/cka.rs: THREADS).
#define CKA_THREADS 256

__device__ __forceinline__ bool cka_nonfinite(float x) {
    return (__float_as_uint(x) & 0x7fffffffu) >= 0x7f800000u;
}

// N sums over the block at once (blockDim.x a multiple of 32, blockDim.y = 1), each a
// fixed tree; every thread gets the results. Call in uniform control flow.
template <int N>
__device__ __forceinline__ void cka_block_sums(float (&v)[N]) {
    __shared__ float part[N][32];
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 warps = blockDim.x >> 5;
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = warp_sum(v[k]);
    __syncthreads(); // a previous call's readers are done with `part`
    if (lane == 0) {
#pragma unroll
        for (int k = 0; k < N; ++k) part[k][warp] = v[k];
    }
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
            float t = lane < warps ? part[k][lane] : 0.0f;
            t = warp_sum(t);
            if (lane == 0) part[k][0] = t;
        }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = part[k][0];
}

// Row and column sums of K and L (of K̃, L̃ when unbiased), one block per i
// (grid-stride): w[CKA_ST + 4i ..] = r_K, c_K, r_L, c_L.
extern "C" __global__ void __launch_bounds__(CKA_THREADS)
    cka_rows_f32(const float* __restrict__ K, const float* __restrict__ L,
                 float* __restrict__ w, u64 n, u32 unbiased) {
    for (u64 i = blockIdx.x; i < n; i += gridDim.x) {
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
            if (unbiased && j == i) continue;
            v[0] += K[i * n + j];
            v[1] += K[j * n + i];
            v[2] += L[i * n + j];
            v[3] += L[j * n + i];
        }
        cka_block_sums<4>(v);
        if (threadIdx.x == 0) {
            // K̃ = K·(1 − I) entry-wise: a non-finite diagonal entry makes NaN (Inf·0,
            // NaN·0), which the reference's sums then carry.
            if (unbiased && cka_nonfinite(K[i * n + i])) v[0] = v[1] = brain_nan();
            if (unbiased && cka_nonfinite(L[i * n + i])) v[2] = v[3] = brain_nan();
            float* o = w + CKA_ST + 4 * i;
            o[0] = v[0];
            o[1] = v[1];
            o[2] = v[2];
            o[3] = v[3];
        }
    }
}

// One block: the totals g_K = s_K/d2, g_L = s_L/d2, the unbiased bracket's five sums, and
// the centring vectors (the sums divided by d1 = n or m, in place).
extern "C" __global__ void __launch_bounds__(CKA_THREADS)
    cka_totals_f32(float* __restrict__ w, u64 n, float d1, float d2) {
    float v[7] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
        float* o = w + CKA_ST + 4 * k;
        const float rk = o[0], ck = o[1], rl = o[2], cl = o[3];
        v[0] += rk;
        v[1] += rl;
        const float dk = rk - ck, el = rl - cl;
        v[2] += dk * cl;
        v[3] += ck * el;
        v[4] += dk * el;
        v[5] += dk * dk;
        v[6] += el * el;
        o[0] = rk / d1;
        o[1] = ck / d1;
        o[2] = rl / d1;
        o[3] = cl / d1;
    }
    cka_block_sums<7>(v);
    if (threadIdx.x == 0) {
        w[CKA_TOT] = v[0] / d2;
        w[CKA_TOT + 1] = v[1] / d2;
#pragma unroll
        for (int k = 2; k < 7; ++k) w[CKA_TOT + k] = v[k];
    }
}

// Per i: Σ_j Kc[i,j]·Lc[j,i], Σ_j Kc[i,j]·Kc[j,i], Σ_j Lc[i,j]·Lc[j,i] (j ≠ i when
// unbiased), one block per i (grid-stride), into w[CKA_ST + 4n + 3i ..].
extern "C" __global__ void __launch_bounds__(CKA_THREADS)
    cka_centred_f32(const float* __restrict__ K, const float* __restrict__ L,
                    float* __restrict__ w, u64 n, u32 unbiased) {
    const float gk = w[CKA_TOT], gl = w[CKA_TOT + 1];
    const float* cv = w + CKA_ST;
    for (u64 i = blockIdx.x; i < n; i += gridDim.x) {
        const float rki = cv[4 * i], cki = cv[4 * i + 1];
        const float rli = cv[4 * i + 2], cli = cv[4 * i + 3];
        float v[3] = {0.0f, 0.0f, 0.0f};
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
            if (unbiased && j == i) continue;
            const float* oj = cv + 4 * j;
            const float kij = ((K[i * n + j] - rki) - oj[1]) + gk;
            const float kji = ((K[j * n + i] - oj[0]) - cki) + gk;
            const float lij = ((L[i * n + j] - rli) - oj[3]) + gl;
            const float lji = ((L[j * n + i] - oj[2]) - cli) + gl;
            v[0] += kij * lji;
            v[1] += kij * kji;
            v[2] += lij * lji;
        }
        cka_block_sums<3>(v);
        if (threadIdx.x == 0) {
            float* o = w + CKA_ST + 4 * n + 3 * i;
            o[0] = v[0];
            o[1] = v[1];
            o[2] = v[2];
        }
    }
}

// One block: the three HSICs, 1 − CKA and the backward's coefficients into w[0..7), and
// out[0..out_len) = [1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L)] (out_len 1 or 4; out may
// be null). m = n − 2 (unbiased only), norm = (n−1)² or n(n−3).
extern "C" __global__ void __launch_bounds__(CKA_THREADS)
    cka_finish_f32(float* __restrict__ w, float* __restrict__ out, u32 out_len, u64 n,
                   u32 unbiased, float m, float norm) {
    const float* cs = w + CKA_ST + 4 * n;
    float v[3] = {0.0f, 0.0f, 0.0f};
    for (u64 i = threadIdx.x; i < n; i += blockDim.x) {
        v[0] += cs[3 * i];
        v[1] += cs[3 * i + 1];
        v[2] += cs[3 * i + 2];
    }
    cka_block_sums<3>(v);
    if (threadIdx.x == 0) {
        float kl = v[0], kk = v[1], ll = v[2];
        if (unbiased) {
            const float* t = w + CKA_TOT;
            kl += (t[2] - t[3]) / m + t[4] / (m * m);
            kk += t[5] / (m * m);
            ll += t[6] / (m * m);
        }
        const float hab = kl / norm, haa = kk / norm, hbb = ll / norm;
        const float alpha = 1.0f / sqrtf(haa * hbb);
        const float cka = hab * alpha;
        const float res[7] = {1.0f - cka, hab, haa, hbb, alpha, 0.5f * cka / haa,
                              0.5f * cka / hbb};
#pragma unroll
        for (int k = 0; k < 7; ++k) w[k] = res[k];
        if (out != nullptr) {
            for (u32 k = 0; k < out_len && k < 4; ++k) out[k] = res[k];
        }
    }
}

// Xc[i,j] + Xc[j,i] of X centred by the vector at offset u on the row index and the one
// at offset v on the column index (offsets 0..3 into ρ_K, κ_K, ρ_L, κ_L), g its total.
__device__ __forceinline__ float cka_sym(const float* __restrict__ X,
                                         const float* __restrict__ cv, float g, u64 n, u64 i,
                                         u64 j, u32 u, u32 v) {
    const float* oi = cv + 4 * i;
    const float* oj = cv + 4 * j;
    return (((X[i * n + j] - oi[u]) - oj[v]) + g) + (((X[j * n + i] - oj[u]) - oi[v]) + g);
}

// d (overwritten) = G + Gᵀ of G = ∂(scale·(1 − CKA))/∂K (which 0) or ∂/∂L (which 1):
//   dk = αf·Lsym − 2βf·Ksym,  dl = αf·Ksym′ − 2γf·Lsym′,  f = −scale/norm (host f64),
// Xsym the symmetrised centred X (the HSIC(X,X) terms); the cross term centres L by
// rows only (dk) or K by columns only (dl) when unbiased, as the derivative of the
// estimator's (2/m)·1ᵀK̃L̃1 term says. Zero diagonal when unbiased (NaN where the entry
// is not finite, as the reference's ·0). grid.x over columns j, grid.y strides over i.
extern "C" __global__ void cka_grad_f32(const float* __restrict__ K,
                                        const float* __restrict__ L,
                                        const float* __restrict__ w, float* __restrict__ d,
                                        u64 n, u32 unbiased, u32 which, float f) {
    const u64 j = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    const float* cv = w + CKA_ST;
    const float gk = w[CKA_TOT], gl = w[CKA_TOT + 1];
    const float af = w[4] * f;
    const float bf = 2.0f * (which == 0 ? w[5] : w[6]) * f;
    for (u64 i = blockIdx.y; i < n; i += gridDim.y) {
        float v;
        if (which == 0) {
            const float xt = unbiased ? cka_sym(L, cv, gl, n, i, j, 2, 2)
                                      : cka_sym(L, cv, gl, n, i, j, 2, 3);
            v = af * xt - bf * cka_sym(K, cv, gk, n, i, j, 0, 1);
        } else {
            const float xt = unbiased ? cka_sym(K, cv, gk, n, i, j, 1, 1)
                                      : cka_sym(K, cv, gk, n, i, j, 0, 1);
            v = af * xt - bf * cka_sym(L, cv, gl, n, i, j, 2, 3);
        }
        if (unbiased && i == j) v = cka_nonfinite(v) ? brain_nan() : 0.0f;
        d[i * n + j] = v;
    }
}
