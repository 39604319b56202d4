// LayerNorm and GroupNorm, forward and backward (src/ops/norm.rs).
//
// A "row" is the run of values that share statistics: a LayerNorm row (len = cols), or
// the (C/G)·S contiguous values of one (n, g) of a GroupNorm. A LayerNorm is a
// GroupNorm with G = 1, S = 1, C/G = cols, so the forward kernel serves both.
//
// Row kernels give each row a *segment* of T threads (a power of 2 in [32, 1024], chosen
// on the host so that a thread holds about four VEC-wide items of the row); a block is
// max(T, 256) threads, i.e. 256/T rows per block for short rows. Items are VEC = 4 floats
// (float4 loads) when the row length (and for GroupNorm S) is a multiple of 4 and every
// buffer is 16-byte aligned, else single floats. A thread keeps its items in registers
// when the row fits (SLOTS per thread), so every pass after the first costs no memory
// traffic; longer rows are streamed again from memory (L1/L2) for each pass.
//
// Sums are f32: a short serial run per thread, then a fixed-order tree (warp shuffles,
// then the warps of a segment in order): error ~(items per thread + log2 T)·u, and the
// result does not depend on scheduling. The forward pass is two-pass around a first
// mean m0, with the corrected mean m0 + Σd/n and var = Σd²/n − (Σd/n)² (d = x − m0), so
// rows offset far from 0 (x ≈ 100 ± 1) keep their digits.
//
// Parameter gradients (dγ += Σ dy·x̂, dβ += Σ dy over rows) are column sums over rows:
// deterministic partial sums into a scratch [R, 2·C] (dγ terms in columns [0, C), dβ
// terms in [C, 2·C)), then `norm_param_grad_f32` adds the column sums of the scratch
// into dγ and dβ in a fixed order. No float atomics anywhere.
#include "common.cuh"

// Items per thread kept in registers by the forward and the LayerNorm backward kernels.
#define FWD_SLOTS 4
#define BWD_SLOTS 2
// Serial run length before a partial sum is folded into the running total.
#define CASCADE 16

template <int VEC>
struct Vec;
template <>
struct Vec<1> {
    typedef float T;
};
template <>
struct Vec<4> {
    typedef float4 T;
};

__device__ __forceinline__ float hsum(float v) { return v; }
__device__ __forceinline__ float hsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }

template <int VEC>
__device__ __forceinline__ typename Vec<VEC>::T vload(const float* __restrict__ p, u64 item) {
    if constexpr (VEC == 4) {
        return *reinterpret_cast<const float4*>(p + item * 4);
    } else {
        return p[item];
    }
}

template <int VEC>
__device__ __forceinline__ void vstore(float* __restrict__ p, u64 item,
                                       typename Vec<VEC>::T v) {
    if constexpr (VEC == 4) {
        *reinterpret_cast<float4*>(p + item * 4) = v;
    } else {
        p[item] = v;
    }
}

template <int VEC>
__device__ __forceinline__ typename Vec<VEC>::T vzero() {
    if constexpr (VEC == 4) {
        return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else {
        return 0.0f;
    }
}

// Element-wise helpers on float / float4.
#define VMAP1(NAME, EXPR)                                                              \
    __device__ __forceinline__ float NAME(float a, float b) { return EXPR; }            \
    __device__ __forceinline__ float4 NAME(float4 a4, float4 b4) {                      \
        float4 r;                                                                       \
        {                                                                               \
            float a = a4.x, b = b4.x;                                                   \
            r.x = EXPR;                                                                 \
        }                                                                               \
        {                                                                               \
            float a = a4.y, b = b4.y;                                                   \
            r.y = EXPR;                                                                 \
        }                                                                               \
        {                                                                               \
            float a = a4.z, b = b4.z;                                                   \
            r.z = EXPR;                                                                 \
        }                                                                               \
        {                                                                               \
            float a = a4.w, b = b4.w;                                                   \
            r.w = EXPR;                                                                 \
        }                                                                               \
        return r;                                                                       \
    }
VMAP1(vadd, a + b)
VMAP1(vmul, a* b)

template <int VEC>
__device__ __forceinline__ typename Vec<VEC>::T vfill(float s) {
    if constexpr (VEC == 4) {
        return make_float4(s, s, s, s);
    } else {
        return s;
    }
}

// The input gradient of one value: (dŷ − a − x̂·b)·rstd, as the reference.
__device__ __forceinline__ float dx_of(float dn, float xh, float a, float b, float rs) {
    return (dn - a - xh * b) * rs;
}
__device__ __forceinline__ float4 dx_of(float4 dn, float4 xh, float a, float b, float rs) {
    return make_float4(dx_of(dn.x, xh.x, a, b, rs), dx_of(dn.y, xh.y, a, b, rs),
                       dx_of(dn.z, xh.z, a, b, rs), dx_of(dn.w, xh.w, a, b, rs));
}

__device__ __forceinline__ float vsub_s(float a, float s) { return a - s; }
__device__ __forceinline__ float4 vsub_s(float4 a, float s) {
    return make_float4(a.x - s, a.y - s, a.z - s, a.w - s);
}
__device__ __forceinline__ float vsq_sum(float a) { return a * a; }
__device__ __forceinline__ float vsq_sum(float4 a) {
    return (a.x * a.x + a.y * a.y) + (a.z * a.z + a.w * a.w);
}

// ------------------------------------------------------------------ segment sums

// Sums (a, b) over the `seg` consecutive threads holding this one (seg a power of 2 in
// [1, blockDim.x], segments aligned to multiples of seg); every thread of the segment
// gets the same totals. Butterfly shuffles inside a warp (each lane computes the same
// additions, commuted, so all lanes agree bit for bit), then the warps of a segment in
// index order. Must be reached by every thread of the block when seg > 32 (barriers).
__device__ __forceinline__ float2 seg_sum2(float a, float b, u32 seg) {
    __shared__ float2 warp_part[32];
    const u32 width = seg < 32u ? seg : 32u;
    for (u32 o = width >> 1; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffffu, a, o);
        b += __shfl_xor_sync(0xffffffffu, b, o);
    }
    if (seg <= 32u) return make_float2(a, b);
    const u32 warp = threadIdx.x >> 5, lane = threadIdx.x & 31u;
    __syncthreads(); // earlier readers of warp_part are done
    if (lane == 0) warp_part[warp] = make_float2(a, b);
    __syncthreads();
    const u32 nw = seg >> 5;
    const u32 first = (threadIdx.x / seg) * nw;
    float2 s = warp_part[first];
    for (u32 i = 1; i < nw; ++i) {
        const float2 t = warp_part[first + i];
        s.x += t.x;
        s.y += t.y;
    }
    return s;
}

__device__ __forceinline__ bool norm_isfinite(float v) { return isfinite(v); }

// ------------------------------------------------------------------ forward (both norms)

// γ/β index of the first value of item `item` of a row whose channels start at `cbase`
// (S = 1: one channel per value; else S % VEC == 0, so an item never straddles two).
__device__ __forceinline__ u64 channel_of(u64 cbase, u64 j, u64 spatial) {
    return spatial == 1 ? cbase + j : cbase + j / spatial;
}

template <int VEC>
__device__ __forceinline__ typename Vec<VEC>::T affine(typename Vec<VEC>::T xv, float mean,
                                                       float rs, const float* __restrict__ gamma,
                                                       const float* __restrict__ beta, u64 c,
                                                       u64 spatial) {
    if constexpr (VEC == 4) {
        float4 g, b;
        if (spatial == 1) {
            g = *reinterpret_cast<const float4*>(gamma + c);
            b = *reinterpret_cast<const float4*>(beta + c);
        } else {
            g = make_float4(gamma[c], gamma[c], gamma[c], gamma[c]);
            b = make_float4(beta[c], beta[c], beta[c], beta[c]);
        }
        return make_float4((xv.x - mean) * rs * g.x + b.x, (xv.y - mean) * rs * g.y + b.y,
                           (xv.z - mean) * rs * g.z + b.z, (xv.w - mean) * rs * g.w + b.w);
    } else {
        return (xv - mean) * rs * gamma[c] + beta[c];
    }
}

// y = (x − mean)·rstd·γ_c + β_c per row; mean[row], rstd[row] saved. `len` values per
// row (len ≥ 1, len % VEC == 0), channels of a row start at (row % groups)·cpg and
// change every `spatial` values. T threads per row (blockDim.x a multiple of T).
template <int VEC>
__device__ __forceinline__ void norm_forward(const float* __restrict__ x,
                                             const float* __restrict__ gamma,
                                             const float* __restrict__ beta,
                                             float* __restrict__ y, float* __restrict__ mean_out,
                                             float* __restrict__ rstd_out, u64 rows, u64 len,
                                             u64 spatial, u64 groups, u64 cpg, u32 T,
                                             float eps) {
    typedef typename Vec<VEC>::T V;
    const u32 seg = threadIdx.x / T, lane = threadIdx.x % T, spb = blockDim.x / T;
    const u64 items = len / VEC;
    const bool cached = items <= (u64)FWD_SLOTS * T;
    const float n = (float)len;
    for (u64 base = (u64)blockIdx.x * spb; base < rows; base += (u64)gridDim.x * spb) {
        const u64 row = base + seg;
        const bool valid = row < rows;
        const u64 lim = valid ? items : 0; // rows past the end run over nothing
        const float* xr = x + row * len;
        float* yr = y + row * len;
        V v[FWD_SLOTS];
        // Pass 1: Σx.
        float s = 0.0f;
        if (cached) {
#pragma unroll
            for (int t = 0; t < FWD_SLOTS; ++t) {
                const u64 i = lane + (u64)t * T;
                v[t] = i < lim ? vload<VEC>(xr, i) : vzero<VEC>();
                s += hsum(v[t]);
            }
        } else {
            for (u64 i0 = lane; i0 < lim; i0 += (u64)T * CASCADE) {
                float c = 0.0f;
                for (u64 i = i0, k = 0; i < lim && k < CASCADE; i += T, ++k)
                    c += hsum(vload<VEC>(xr, i));
                s += c;
            }
        }
        const float m0 = seg_sum2(s, 0.0f, T).x / n;
        // Pass 2: Σd, Σd² with d = x − m0.
        float s1 = 0.0f, s2 = 0.0f;
        if (cached) {
#pragma unroll
            for (int t = 0; t < FWD_SLOTS; ++t) {
                const u64 i = lane + (u64)t * T;
                if (i < lim) {
                    const V d = vsub_s(v[t], m0);
                    s1 += hsum(d);
                    s2 += vsq_sum(d);
                }
            }
        } else {
            for (u64 i0 = lane; i0 < lim; i0 += (u64)T * CASCADE) {
                float c1 = 0.0f, c2 = 0.0f;
                for (u64 i = i0, k = 0; i < lim && k < CASCADE; i += T, ++k) {
                    const V d = vsub_s(vload<VEC>(xr, i), m0);
                    c1 += hsum(d);
                    c2 += vsq_sum(d);
                }
                s1 += c1;
                s2 += c2;
            }
        }
        const float2 sd = seg_sum2(s1, s2, T);
        const float dm = sd.x / n;
        float var = sd.y / n - dm * dm;
        if (var < 0.0f) var = 0.0f; // cancellation on constant rows; NaN stays NaN
        // A non-finite m0 stays the mean (∞ + NaN would turn +∞ into NaN).
        const float mean = norm_isfinite(m0) ? m0 + dm : m0;
        const float rs = 1.0f / sqrtf(var + eps);
        // Pass 3: y.
        const u64 cbase = valid ? (row % groups) * cpg : 0;
        if (cached) {
#pragma unroll
            for (int t = 0; t < FWD_SLOTS; ++t) {
                const u64 i = lane + (u64)t * T;
                if (i < lim) {
                    const u64 c = channel_of(cbase, i * VEC, spatial);
                    vstore<VEC>(yr, i, affine<VEC>(v[t], mean, rs, gamma, beta, c, spatial));
                }
            }
        } else {
            for (u64 i = lane; i < lim; i += T) {
                const u64 c = channel_of(cbase, i * VEC, spatial);
                vstore<VEC>(yr, i,
                            affine<VEC>(vload<VEC>(xr, i), mean, rs, gamma, beta, c, spatial));
            }
        }
        if (valid && lane == 0) {
            mean_out[row] = mean;
            rstd_out[row] = rs;
        }
    }
}

#define NORM_FORWARD(NAME, VEC)                                                          \
    extern "C" __global__ void NAME(const float* __restrict__ x,                         \
                                    const float* __restrict__ gamma,                     \
                                    const float* __restrict__ beta, float* __restrict__ y, \
                                    float* __restrict__ mean, float* __restrict__ rstd,  \
                                    u64 rows, u64 len, u64 spatial, u64 groups, u64 cpg, \
                                    u32 seg_threads, float eps) {                        \
        norm_forward<VEC>(x, gamma, beta, y, mean, rstd, rows, len, spatial, groups, cpg,  \
                          seg_threads, eps);                                             \
    }

NORM_FORWARD(norm_forward_f32, 1)
NORM_FORWARD(norm_forward_v4_f32, 4)

// ------------------------------------------------------------------ LayerNorm backward

// dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)), dŷ = dy·γ, x̂ = (x − mean)·rstd, per row;
// and the parameter-gradient partials of a *band* of rows_per_band consecutive rows:
// part[band, c] = Σ_band dy·x̂, part[band, cols + c] = Σ_band dy. One band per segment
// of T threads (grid = ⌈bands / segments per block⌉). When a row fits the registers
// (items ≤ BWD_SLOTS·T) each thread keeps its columns' x, dy and band partials there;
// otherwise the rows are streamed and the partials accumulate in `part` itself (each
// band's row of `part` belongs to one segment).
template <int VEC>
__device__ __forceinline__ void layernorm_backward(
    const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ gamma,
    const float* __restrict__ mean, const float* __restrict__ rstd, float* __restrict__ dx,
    float* __restrict__ part, u64 rows, u64 cols, u32 T, u64 rows_per_band) {
    typedef typename Vec<VEC>::T V;
    const u32 seg = threadIdx.x / T, lane = threadIdx.x % T, spb = blockDim.x / T;
    const u64 items = cols / VEC;
    const bool cached = items <= (u64)BWD_SLOTS * T;
    const float n = (float)cols;
    const u64 band = (u64)blockIdx.x * spb + seg;
    const u64 first = band * rows_per_band;
    const bool band_valid = first < rows;
    float* pg = part + band * 2 * cols; // this band's dγ partials, then its dβ partials
    float* pb = pg + cols;
    V acc_g[BWD_SLOTS], acc_b[BWD_SLOTS];
#pragma unroll
    for (int t = 0; t < BWD_SLOTS; ++t) {
        acc_g[t] = vzero<VEC>();
        acc_b[t] = vzero<VEC>();
    }
    // Every segment of the block runs the same number of iterations (barriers inside).
    for (u64 r = 0; r < rows_per_band; ++r) {
        const u64 row = first + r;
        const bool valid = band_valid && row < rows;
        const u64 lim = valid ? items : 0;
        const float m = valid ? mean[row] : 0.0f;
        const float rs = valid ? rstd[row] : 0.0f;
        const float* xr = x + row * cols;
        const float* dyr = dy + row * cols;
        float* dxr = dx + row * cols;
        float s1 = 0.0f, s2 = 0.0f; // Σ dŷ, Σ dŷ·x̂
        V xv[BWD_SLOTS], dv[BWD_SLOTS];
        if (cached) {
#pragma unroll
            for (int t = 0; t < BWD_SLOTS; ++t) {
                const u64 i = lane + (u64)t * T;
                if (i < lim) {
                    xv[t] = vload<VEC>(xr, i);
                    dv[t] = vload<VEC>(dyr, i);
                    const V xh = vmul(vsub_s(xv[t], m), vfill<VEC>(rs));
                    const V dn = vmul(dv[t], vload<VEC>(gamma, i));
                    s1 += hsum(dn);
                    s2 += hsum(vmul(dn, xh));
                    acc_g[t] = vadd(acc_g[t], vmul(dv[t], xh));
                    acc_b[t] = vadd(acc_b[t], dv[t]);
                } else {
                    xv[t] = vzero<VEC>();
                    dv[t] = vzero<VEC>();
                }
            }
        } else {
            for (u64 i0 = lane; i0 < lim; i0 += (u64)T * CASCADE) {
                float c1 = 0.0f, c2 = 0.0f;
                for (u64 i = i0, k = 0; i < lim && k < CASCADE; i += T, ++k) {
                    const V d = vload<VEC>(dyr, i);
                    const V xh = vmul(vsub_s(vload<VEC>(xr, i), m), vfill<VEC>(rs));
                    const V dn = vmul(d, vload<VEC>(gamma, i));
                    c1 += hsum(dn);
                    c2 += hsum(vmul(dn, xh));
                    const V g = vmul(d, xh);
                    if (r == 0) {
                        vstore<VEC>(pg, i, g);
                        vstore<VEC>(pb, i, d);
                    } else {
                        vstore<VEC>(pg, i, vadd(vload<VEC>(pg, i), g));
                        vstore<VEC>(pb, i, vadd(vload<VEC>(pb, i), d));
                    }
                }
                s1 += c1;
                s2 += c2;
            }
        }
        const float2 s = seg_sum2(s1, s2, T);
        const float a = s.x / n, b = s.y / n;
        if (cached) {
#pragma unroll
            for (int t = 0; t < BWD_SLOTS; ++t) {
                const u64 i = lane + (u64)t * T;
                if (i < lim) {
                    const V xh = vmul(vsub_s(xv[t], m), vfill<VEC>(rs));
                    const V dn = vmul(dv[t], vload<VEC>(gamma, i));
                    vstore<VEC>(dxr, i, dx_of(dn, xh, a, b, rs));
                }
            }
        } else {
            for (u64 i = lane; i < lim; i += T) {
                const V xh = vmul(vsub_s(vload<VEC>(xr, i), m), vfill<VEC>(rs));
                const V dn = vmul(vload<VEC>(dyr, i), vload<VEC>(gamma, i));
                vstore<VEC>(dxr, i, dx_of(dn, xh, a, b, rs));
            }
        }
    }
    if (cached && band_valid) {
#pragma unroll
        for (int t = 0; t < BWD_SLOTS; ++t) {
            const u64 i = lane + (u64)t * T;
            if (i < items) {
                vstore<VEC>(pg, i, acc_g[t]);
                vstore<VEC>(pb, i, acc_b[t]);
            }
        }
    }
}

#define LAYERNORM_BACKWARD(NAME, VEC)                                                     \
    extern "C" __global__ void NAME(                                                      \
        const float* __restrict__ dy, const float* __restrict__ x,                        \
        const float* __restrict__ gamma, const float* __restrict__ mean,                  \
        const float* __restrict__ rstd, float* __restrict__ dx, float* __restrict__ part, \
        u64 rows, u64 cols, u32 seg_threads, u64 rows_per_band) {                         \
        layernorm_backward<VEC>(dy, x, gamma, mean, rstd, dx, part, rows, cols,           \
                                seg_threads, rows_per_band);                              \
    }

LAYERNORM_BACKWARD(layernorm_backward_f32, 1)
LAYERNORM_BACKWARD(layernorm_backward_v4_f32, 4)

// ------------------------------------------------------------------ GroupNorm backward

// One block per (n, g) row (grid-stride). The block is cut into segments of `cs`
// threads (the power of 2 ≥ S, at most blockDim.x), one channel per segment at a time:
// each channel's Σ dy·x̂ and Σ dy go to part[n, c] and part[n, C + c] (reduced over n
// afterwards) and are folded into A = Σ_c γ_c·Σ dy and B = Σ_c γ_c·Σ dy·x̂ (the row's
// Σ dŷ and Σ dŷ·x̂); then dx = rstd·(dy·γ_c − A/L − x̂·B/L) over the row, L = cpg·S.
// VEC = 4 needs S % 4 == 0 (an item never straddles two channels).
template <int VEC>
__device__ __forceinline__ void groupnorm_backward(
    const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ gamma,
    const float* __restrict__ mean, const float* __restrict__ rstd, float* __restrict__ dx,
    float* __restrict__ part, u64 rows, u64 spatial, u64 groups, u64 cpg, u32 cs) {
    typedef typename Vec<VEC>::T V;
    const u64 len = cpg * spatial;
    const u64 channels = groups * cpg;
    const u64 s_items = spatial / VEC;
    const u32 per = blockDim.x / cs; // channels per pass
    const u32 cl_off = threadIdx.x / cs, lane = threadIdx.x % cs;
    const float n = (float)len;
    for (u64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const u64 batch = row / groups, g = row - batch * groups;
        const float m = mean[row], rs = rstd[row];
        const float* xr = x + row * len;
        const float* dyr = dy + row * len;
        float ga = 0.0f, gb = 0.0f; // held by segment heads only
        for (u64 c0 = 0; c0 < cpg; c0 += per) {
            const u64 cl = c0 + cl_off;
            const u64 lim = cl < cpg ? s_items : 0;
            const float* xc = xr + cl * spatial;
            const float* dc = dyr + cl * spatial;
            float sg = 0.0f, sd = 0.0f;
            for (u64 i0 = lane; i0 < lim; i0 += (u64)cs * CASCADE) {
                float cg = 0.0f, cd = 0.0f;
                for (u64 i = i0, k = 0; i < lim && k < CASCADE; i += cs, ++k) {
                    const V d = vload<VEC>(dc, i);
                    const V xh = vmul(vsub_s(vload<VEC>(xc, i), m), vfill<VEC>(rs));
                    cg += hsum(vmul(d, xh));
                    cd += hsum(d);
                }
                sg += cg;
                sd += cd;
            }
            const float2 t = seg_sum2(sg, sd, cs);
            if (lane == 0 && cl < cpg) {
                const u64 c = g * cpg + cl;
                part[batch * 2 * channels + c] = t.x;
                part[batch * 2 * channels + channels + c] = t.y;
                ga += gamma[c] * t.y;
                gb += gamma[c] * t.x;
            }
        }
        const float2 s = seg_sum2(ga, gb, blockDim.x);
        const float a = s.x / n, b = s.y / n;
        const u64 items = len / VEC;
        const u64 cbase = g * cpg;
        float* dxr = dx + row * len;
        for (u64 i = threadIdx.x; i < items; i += blockDim.x) {
            const float gc = gamma[cbase + (i * VEC) / spatial];
            const V xh = vmul(vsub_s(vload<VEC>(xr, i), m), vfill<VEC>(rs));
            const V dn = vmul(vload<VEC>(dyr, i), vfill<VEC>(gc));
            vstore<VEC>(dxr, i, dx_of(dn, xh, a, b, rs));
        }
    }
}

#define GROUPNORM_BACKWARD(NAME, VEC)                                                     \
    extern "C" __global__ void NAME(                                                      \
        const float* __restrict__ dy, const float* __restrict__ x,                        \
        const float* __restrict__ gamma, const float* __restrict__ mean,                  \
        const float* __restrict__ rstd, float* __restrict__ dx, float* __restrict__ part, \
        u64 rows, u64 spatial, u64 groups, u64 cpg, u32 channel_threads) {                \
        groupnorm_backward<VEC>(dy, x, gamma, mean, rstd, dx, part, rows, spatial, groups, \
                                cpg, channel_threads);                                    \
    }

GROUPNORM_BACKWARD(groupnorm_backward_f32, 1)
GROUPNORM_BACKWARD(groupnorm_backward_v4_f32, 4)

// ------------------------------------------------------------------ parameter gradients

// dγ[c] += Σ_r part[r, c], dβ[c] += Σ_r part[r, C + c] over part[R, 2·C]. Block (32, 16):
// threadIdx.x walks 32 consecutive columns of [0, 2·C) (coalesced), threadIdx.y the
// rows r ≡ y (mod 16) in runs of CASCADE; the 16 lane sums of a column are then added
// by a fixed tree in shared memory. grid.x = ⌈2·C / 32⌉.
extern "C" __global__ void norm_param_grad_f32(const float* __restrict__ part,
                                               float* __restrict__ dgamma,
                                               float* __restrict__ dbeta, u64 R, u64 C) {
    __shared__ float lanes[16][33];
    const u64 width = 2 * C;
    const u64 col = (u64)blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (col < width) {
        for (u64 r0 = threadIdx.y; r0 < R; r0 += 16 * CASCADE) {
            float c = 0.0f;
            for (u64 r = r0, k = 0; r < R && k < CASCADE; r += 16, ++k) c += part[r * width + col];
            acc += c;
        }
    }
    lanes[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    for (u32 s = 8; s > 0; s >>= 1) {
        if (threadIdx.y < s) lanes[threadIdx.y][threadIdx.x] += lanes[threadIdx.y + s][threadIdx.x];
        __syncthreads();
    }
    if (threadIdx.y == 0 && col < width) {
        const float total = lanes[0][threadIdx.x];
        if (col < C) {
            dgamma[col] += total;
        } else {
            dbeta[col - C] += total;
        }
    }
}
