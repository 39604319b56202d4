// Integer-factor upsampling on NCHW, PyTorch rules (src/ops/upsample.rs):
// [N,C,H,W] → [N,C,H·k,W·k], nearest and bilinear (align_corners = false).
//
// Forward: one thread per V consecutive outputs of a row (V = 4 with float4 stores
// when the output row length is a multiple of 4 and y is 16-byte aligned, else 1).
// Backward: one thread per input element *gathers* every output that reads it, so
// there are no atomics and the result does not depend on scheduling; the terms are
// added in the reference's scatter order (output rows, then columns, then the taps
// y0x0, y0x1, y1x0, y1x1), each formed as the reference forms it, and the bilinear
// weights come from the reference's f32 formula with every operation rounded as
// written (__f*_rn: no FMA contraction). Both passes are therefore bit-identical to
// brain-core's f32 reference, and NaN/∞ land exactly where it puts them (a tap
// counts even when its weight is 0, so 0·∞ = NaN as there).
//
// Index arithmetic is done in I = u32 when every index fits (the host decides), u64
// otherwise: the divisions by the row lengths are the most expensive part of these
// kernels after the memory traffic.
#include "common.cuh"

// Bilinear source taps of output index o along an axis of input length len:
// s = (o + ½)·(1/k) − ½ clamped at 0, i0 = min(⌊s⌋, len − 1), i1 = min(i0 + 1, len − 1),
// λ = s − i0 (brain_core::reference::upsample::bilinear_source for f32).
template <typename I>
struct Taps {
    I i0, i1;
    float l;
};

template <typename I>
__device__ __forceinline__ Taps<I> bilinear_taps(I o, I len, float inv_k) {
    float s = __fsub_rn(__fmul_rn(__fadd_rn((float)o, 0.5f), inv_k), 0.5f);
    if (s < 0.0f) s = 0.0f;
    I i0 = (I)floorf(s);
    if (i0 > len - 1) i0 = len - 1;
    Taps<I> t;
    t.i0 = i0;
    t.i1 = i0 + 1 < len ? i0 + 1 : i0;
    t.l = __fsub_rn(s, (float)i0);
    return t;
}

// The grid-stride loop of these kernels, in the index type I.
#define GRID_STRIDE_I(I, i, n)                                                          \
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (I)blockDim.x * gridDim.x)

// ------------------------------------------------------------------ forward

// y[p, oy, ox] = x[p, oy/k, ox/k]; thread e covers outputs V·e .. V·e + V − 1 of a row.
template <typename I, int V>
__device__ __forceinline__ void nearest_forward(const float* __restrict__ x,
                                                float* __restrict__ y, I planes, I h, I w,
                                                I k) {
    const I ow = w * k, oh = h * k;
    const I owv = ow / V;
    const I groups = planes * oh * owv;
    GRID_STRIDE_I(I, e, groups) {
        const I row = e / owv; // p·OH + oy
        const I ox0 = (e - row * owv) * V;
        const I p = row / oh;
        const I oy = row - p * oh;
        const float* src = x + (p * h + oy / k) * w;
        I ix = ox0 / k, r = ox0 - ix * k;
        float v[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
            v[j] = src[ix];
            if (++r == k) {
                r = 0;
                ++ix;
            }
        }
        float* dst = y + row * ow + ox0;
        if (V == 4) {
            *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
        } else {
            dst[0] = v[0];
        }
    }
}

// y = (1−λy)·((1−λx)·x00 + λx·x01) + λy·((1−λx)·x10 + λx·x11), as the reference (a
// non-finite tap reaches the output even with a zero weight).
template <typename I, int V>
__device__ __forceinline__ void bilinear_forward(const float* __restrict__ x,
                                                 float* __restrict__ y, I planes, I h, I w,
                                                 I k, float inv_k) {
    const I ow = w * k, oh = h * k;
    const I owv = ow / V;
    const I groups = planes * oh * owv;
    GRID_STRIDE_I(I, e, groups) {
        const I row = e / owv;
        const I ox0 = (e - row * owv) * V;
        const I p = row / oh;
        const I oy = row - p * oh;
        const Taps<I> ty = bilinear_taps<I>(oy, h, inv_k);
        const float* r0 = x + (p * h + ty.i0) * w;
        const float* r1 = x + (p * h + ty.i1) * w;
        const float wy0 = __fsub_rn(1.0f, ty.l), wy1 = ty.l;
        float v[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
            const Taps<I> tx = bilinear_taps<I>(ox0 + j, w, inv_k);
            const float wx0 = __fsub_rn(1.0f, tx.l), wx1 = tx.l;
            const float top = __fadd_rn(__fmul_rn(wx0, r0[tx.i0]), __fmul_rn(wx1, r0[tx.i1]));
            const float bot = __fadd_rn(__fmul_rn(wx0, r1[tx.i0]), __fmul_rn(wx1, r1[tx.i1]));
            v[j] = __fadd_rn(__fmul_rn(wy0, top), __fmul_rn(wy1, bot));
        }
        float* dst = y + row * ow + ox0;
        if (V == 4) {
            *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
        } else {
            dst[0] = v[0];
        }
    }
}

// ------------------------------------------------------------------ backward

// dx[p, iy, ix] = Σ of the k×k block of dy above it, rows then columns (the
// reference's order of additions into dx[p, iy, ix]).
template <typename I>
__device__ __forceinline__ void nearest_backward(const float* __restrict__ dy,
                                                 float* __restrict__ dx, I planes, I h, I w,
                                                 I k) {
    const I ow = w * k;
    const I n = planes * h * w;
    GRID_STRIDE_I(I, e, n) {
        const I row = e / w; // p·H + iy
        const I ix = e - row * w;
        const float* src = dy + row * k * ow + ix * k;
        float acc = 0.0f;
        for (I a = 0; a < k; ++a) {
            for (I b = 0; b < k; ++b) acc = __fadd_rn(acc, src[b]);
            src += ow;
        }
        dx[e] = acc;
    }
}

// The outputs along an axis whose taps can include input index i: s = (o + ½)/k − ½
// ∈ [i − 1, i + 1) gives o ∈ [k·i − ⌈k/2⌉… , k·i + ⌊3k/2⌋), widened by one on each side
// for the rounding of s; outputs clamped to s = 0 reach inputs 0 and 1, so those
// windows start at 0. The taps of every output in the window are then checked exactly,
// so the window only needs to contain the hits (checked exhaustively for k ≤ 12 and
// lengths ≤ 44, and for long axes, against the f32 formula).
template <typename I>
__device__ __forceinline__ void tap_window(I i, I k, I out_len, I& lo, I& hi) {
    const I back = (k + 1) / 2 + 1;
    lo = (i <= 1 || k * i < back) ? 0 : k * i - back;
    hi = k * i + (3 * k) / 2 + 1;
    if (hi > out_len) hi = out_len;
}

// dx[p, iy, ix] = Σ over the outputs whose taps include (iy, ix) of weight·dy: the
// reference's scatter, gathered. With WMAX > 0 (factors whose tap windows have at most
// WMAX columns, k ≤ 6 for 16) the column taps of the window are computed once into
// registers (hit masks and weights) instead of once per output row; WMAX = 0 recomputes
// them (any k). Both add the same terms in the same order.
template <typename I, int WMAX>
__device__ __forceinline__ void bilinear_backward(const float* __restrict__ dy,
                                                  float* __restrict__ dx, I planes, I h, I w,
                                                  I k, float inv_k) {
    const I ow = w * k, oh = h * k;
    const I n = planes * h * w;
    GRID_STRIDE_I(I, e, n) {
        const I row = e / w;
        const I ix = e - row * w;
        const I p = row / h;
        const I iy = row - p * h;
        I y_lo, y_hi, x_lo, x_hi;
        tap_window<I>(iy, k, oh, y_lo, y_hi);
        tap_window<I>(ix, k, ow, x_lo, x_hi);
        const float* plane = dy + p * oh * ow;
        // Column taps of the window: bit t of hit0/hit1 = whether output x_lo + t has
        // tap 0 / tap 1 at ix; wx0/wx1 its weights.
        float wx0[WMAX > 0 ? WMAX : 1], wx1[WMAX > 0 ? WMAX : 1];
        u32 hit0 = 0, hit1 = 0;
        // (The host picks WMAX > 0 only for factors whose windows fit; a longer window
        // still takes the general loop rather than losing terms.)
        const bool cached = WMAX > 0 && x_hi - x_lo <= (I)WMAX;
        if (cached) {
#pragma unroll
            for (int t = 0; t < WMAX; ++t) {
                wx0[t] = 0.0f;
                wx1[t] = 0.0f;
                if (x_lo + t < x_hi) {
                    const Taps<I> tx = bilinear_taps<I>(x_lo + t, w, inv_k);
                    if (tx.i0 == ix) hit0 |= 1u << t;
                    if (tx.i1 == ix) hit1 |= 1u << t;
                    wx0[t] = __fsub_rn(1.0f, tx.l);
                    wx1[t] = tx.l;
                }
            }
        }
        float acc = 0.0f;
        for (I oy = y_lo; oy < y_hi; ++oy) {
            const Taps<I> ty = bilinear_taps<I>(oy, h, inv_k);
            const bool hy0 = ty.i0 == iy, hy1 = ty.i1 == iy;
            if (!hy0 && !hy1) continue;
            const float wy0 = __fsub_rn(1.0f, ty.l), wy1 = ty.l;
            const float* src = plane + oy * ow;
            if (cached) {
#pragma unroll
                for (int t = 0; t < WMAX; ++t) {
                    const bool hx0 = (hit0 >> t) & 1u, hx1 = (hit1 >> t) & 1u;
                    if (!hx0 && !hx1) continue;
                    const float g = src[x_lo + t];
                    if (hy0 && hx0) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy0, wx0[t]), g));
                    if (hy0 && hx1) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy0, wx1[t]), g));
                    if (hy1 && hx0) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy1, wx0[t]), g));
                    if (hy1 && hx1) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy1, wx1[t]), g));
                }
            } else {
                for (I ox = x_lo; ox < x_hi; ++ox) {
                    const Taps<I> tx = bilinear_taps<I>(ox, w, inv_k);
                    const bool hx0 = tx.i0 == ix, hx1 = tx.i1 == ix;
                    if (!hx0 && !hx1) continue;
                    const float wx0s = __fsub_rn(1.0f, tx.l), wx1s = tx.l;
                    const float g = src[ox];
                    if (hy0 && hx0) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy0, wx0s), g));
                    if (hy0 && hx1) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy0, wx1s), g));
                    if (hy1 && hx0) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy1, wx0s), g));
                    if (hy1 && hx1) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy1, wx1s), g));
                }
            }
        }
        dx[e] = acc;
    }
}

// ------------------------------------------------------------------ entry points
//
// Every kernel: (src, dst, planes = N·C, H, W, k, 1/k rounded to f32). Suffixes: _v4
// (float4 stores), _k6 (column taps cached, k ≤ 6), _w (64-bit indices); the others
// narrow the sizes to u32, for shapes the host has checked fit.

#define UPSAMPLE_KERNEL(NAME, ...)                                                      \
    extern "C" __global__ void NAME(const float* __restrict__ src, float* __restrict__ dst, \
                                    u64 planes, u64 h, u64 w, u64 k, float inv_k) {     \
        (void)inv_k;                                                                    \
        __VA_ARGS__;                                                                    \
    }
#define ARGS32 src, dst, (u32)planes, (u32)h, (u32)w, (u32)k
#define ARGS64 src, dst, planes, h, w, k

UPSAMPLE_KERNEL(upsample_nearest_forward_f32, nearest_forward<u32, 1>(ARGS32))
UPSAMPLE_KERNEL(upsample_nearest_forward_v4_f32, nearest_forward<u32, 4>(ARGS32))
UPSAMPLE_KERNEL(upsample_nearest_forward_w_f32, nearest_forward<u64, 1>(ARGS64))
UPSAMPLE_KERNEL(upsample_bilinear_forward_f32, bilinear_forward<u32, 1>(ARGS32, inv_k))
UPSAMPLE_KERNEL(upsample_bilinear_forward_v4_f32, bilinear_forward<u32, 4>(ARGS32, inv_k))
UPSAMPLE_KERNEL(upsample_bilinear_forward_w_f32, bilinear_forward<u64, 1>(ARGS64, inv_k))
UPSAMPLE_KERNEL(upsample_nearest_backward_f32, nearest_backward<u32>(ARGS32))
UPSAMPLE_KERNEL(upsample_nearest_backward_w_f32, nearest_backward<u64>(ARGS64))
// Tap windows of at most 16 columns ⇔ k ≤ 6 (the longest is input 1's, [0, k + ⌊3k/2⌋ + 1)).
UPSAMPLE_KERNEL(upsample_bilinear_backward_f32, bilinear_backward<u32, 0>(ARGS32, inv_k))
UPSAMPLE_KERNEL(upsample_bilinear_backward_k6_f32, bilinear_backward<u32, 16>(ARGS32, inv_k))
UPSAMPLE_KERNEL(upsample_bilinear_backward_w_f32, bilinear_backward<u64, 0>(ARGS64, inv_k))
