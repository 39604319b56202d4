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
// reference's scatter, gathered.
template <typename I>
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
        float acc = 0.0f;
        for (I oy = y_lo; oy < y_hi; ++oy) {
            const Taps<I> ty = bilinear_taps<I>(oy, h, inv_k);
            const bool hy0 = ty.i0 == iy, hy1 = ty.i1 == iy;
            if (!hy0 && !hy1) continue;
            const float wy0 = __fsub_rn(1.0f, ty.l), wy1 = ty.l;
            const float* src = plane + oy * ow;
            for (I ox = x_lo; ox < x_hi; ++ox) {
                const Taps<I> tx = bilinear_taps<I>(ox, w, inv_k);
                const bool hx0 = tx.i0 == ix, hx1 = tx.i1 == ix;
                if (!hx0 && !hx1) continue;
                const float wx0 = __fsub_rn(1.0f, tx.l), wx1 = tx.l;
                const float g = src[ox];
                if (hy0 && hx0) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy0, wx0), g));
                if (hy0 && hx1) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy0, wx1), g));
                if (hy1 && hx0) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy1, wx0), g));
                if (hy1 && hx1) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(wy1, wx1), g));
            }
        }
        dx[e] = acc;
    }
}

// ------------------------------------------------------------------ entry points
//
// Suffixes: _v4 (float4 stores), _w (64-bit indices). Sizes arrive as u64 and are
// narrowed to u32 only by the kernels the host picks for shapes that fit.

#define UPSAMPLE_FORWARD(NAME, BODY, I, V, ...)                                         \
    extern "C" __global__ void NAME(const float* __restrict__ x, float* __restrict__ y, \
                                    u64 planes, u64 h, u64 w, u64 k, float inv_k) {     \
        (void)inv_k;                                                                    \
        BODY<I, V>(x, y, (I)planes, (I)h, (I)w, (I)k __VA_ARGS__);                      \
    }

UPSAMPLE_FORWARD(upsample_nearest_forward_f32, nearest_forward, u32, 1)
UPSAMPLE_FORWARD(upsample_nearest_forward_v4_f32, nearest_forward, u32, 4)
UPSAMPLE_FORWARD(upsample_nearest_forward_w_f32, nearest_forward, u64, 1)
UPSAMPLE_FORWARD(upsample_bilinear_forward_f32, bilinear_forward, u32, 1, , inv_k)
UPSAMPLE_FORWARD(upsample_bilinear_forward_v4_f32, bilinear_forward, u32, 4, , inv_k)
UPSAMPLE_FORWARD(upsample_bilinear_forward_w_f32, bilinear_forward, u64, 1, , inv_k)

#define UPSAMPLE_BACKWARD(NAME, BODY, I, ...)                                              \
    extern "C" __global__ void NAME(const float* __restrict__ dy, float* __restrict__ dx, \
                                    u64 planes, u64 h, u64 w, u64 k, float inv_k) {       \
        (void)inv_k;                                                                      \
        BODY<I>(dy, dx, (I)planes, (I)h, (I)w, (I)k __VA_ARGS__);                         \
    }

UPSAMPLE_BACKWARD(upsample_nearest_backward_f32, nearest_backward, u32)
UPSAMPLE_BACKWARD(upsample_nearest_backward_w_f32, nearest_backward, u64)
UPSAMPLE_BACKWARD(upsample_bilinear_backward_f32, bilinear_backward, u32, , inv_k)
UPSAMPLE_BACKWARD(upsample_bilinear_backward_w_f32, bilinear_backward, u64, , inv_k)
