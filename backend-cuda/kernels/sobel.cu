// Sobel forward/backward and the fused Sobel loss (src/ops/sobel.rs).
//
// Kx = [[-1,0,1],[-2,0,2],[-1,0,1]], Ky = Kxᵀ (cross-correlation), zero padding 1, per
// plane of NCHW. With the 3×3 neighbourhood of a pixel, p1 = x[r+1,c+1] − x[r−1,c−1]
// and p2 = x[r−1,c+1] − x[r+1,c−1] give gx = (p1 + p2) + 2(x[r,c+1] − x[r,c−1]) and
// gy = (p1 − p2) + 2(x[r+1,c] − x[r−1,c]) (as backend-cpu): only each kernel's six
// non-zero taps enter, so a NaN reaches exactly the outputs whose non-zero taps touch
// it, as in the reference. The adjoint of a correlation with Kx, Ky is the correlation
// with −Kx, −Ky, so every backward is a gather dx = −(Sx(Dx) + Sy(Dy)) of effective
// gradients D: deterministic, no atomics.
//
// Layout: a block of 256 threads owns a tile of TH × TW = 32 × 32 output pixels of one
// plane at a time (grid-stride over the tiles of all planes); thread t handles column
// t mod 32 of rows t/32, t/32 + 8, t/32 + 16, t/32 + 24, so each warp reads and writes
// one 128-byte row segment. Inputs are staged in shared memory with a zero halo
// (positions outside the plane are 0, which is the zero padding):
// - forward and the loss terms: the input tile with halo 1;
// - backward: the input tile with halo 2, from which the effective gradients of the
//   tile with halo 1 are formed in shared memory (0 outside the plane: the padding of
//   the gathered field), then gathered. One pass: the inputs are read once (plus the
//   halos) and the output written once, no temporary in global memory.
// Loss forward: per-thread f32 sums of the terms of its pixels, a block tree sum, one
// partial per block (the tiles a block takes depend on the grid, which the host sizes
// from the shape alone: deterministic), and a one-block pass that sums the partials
// and divides by N into the 1-element loss. With one block the first pass writes the
// loss itself.
#include "common.cuh"

#define SOBEL_TW 32
#define SOBEL_TH 32
#define SOBEL_THREADS 256
#define SOBEL_ROWS (SOBEL_THREADS / SOBEL_TW)  // thread rows of a block
#define SOBEL_RPT (SOBEL_TH / SOBEL_ROWS)      // output rows per thread

#define FORM_MAGNITUDE 0
#define FORM_COMPONENTS 1

// Which loss gradients are wanted (bits of `want`).
#define WANT_PRED 1u
#define WANT_TARGET 2u

// Which Sobel-backward inputs are present (bits of `use`).
#define USE_DGX 1u
#define USE_DGY 2u

// The tile of output pixels a block works on.
struct SobelTile {
    u64 base;  // offset of the plane's first element
    int r0;    // first row
    int c0;    // first column
};

// Tile t: plane t / (tiles_x·tiles_y), then row-major over the plane's tiles. The host
// keeps h, w ≤ 2^31 − 64, so every row and column index below fits an int.
__device__ __forceinline__ SobelTile sobel_tile(u64 t, u32 tiles_x, u32 tiles_y, int h,
                                                int w) {
    const u64 per_plane = (u64)tiles_x * tiles_y;
    const u64 plane = t / per_plane;
    const u32 k = (u32)(t - plane * per_plane);
    const u32 ty = k / tiles_x, tx = k - ty * tiles_x;
    SobelTile s;
    s.base = plane * ((u64)h * (u64)w);
    s.r0 = (int)(ty * SOBEL_TH);
    s.c0 = (int)(tx * SOBEL_TW);
    return s;
}

__device__ __forceinline__ bool sobel_inside(int r, int c, int h, int w) {
    return (unsigned)r < (unsigned)h && (unsigned)c < (unsigned)w;
}

// Rows r0 − HALO .. r0 + TH + HALO − 1 and the same columns around c0 of the plane
// into `s` (row stride TW + 2·HALO), 0 outside the plane. Every thread of the block
// calls it; the caller synchronises.
template <int HALO>
__device__ __forceinline__ void sobel_load(float* __restrict__ s, const float* __restrict__ src,
                                           const SobelTile& t, int h, int w) {
    constexpr int TC = SOBEL_TW + 2 * HALO, TR = SOBEL_TH + 2 * HALO;
    for (int k = threadIdx.x; k < TR * TC; k += SOBEL_THREADS) {
        const int i = k / TC, j = k - i * TC;
        const int r = t.r0 - HALO + i, c = t.c0 - HALO + j;
        float v = 0.0f;
        if (sobel_inside(r, c, h, w)) v = src[t.base + (u64)r * (u64)w + (u64)c];
        s[k] = v;
    }
}

// (corr(s, Kx), corr(s, Ky)) at index k of a shared tile with row stride ts.
__device__ __forceinline__ float2 sobel_at(const float* s, int ts, int k) {
    const float p1 = s[k + ts + 1] - s[k - ts - 1];
    const float p2 = s[k - ts + 1] - s[k + ts - 1];
    const float e = s[k + 1] - s[k - 1];
    const float f = s[k + ts] - s[k - ts];
    return make_float2((p1 + p2) + 2.0f * e, (p1 - p2) + 2.0f * f);
}

// corr(s, Kx) at k.
__device__ __forceinline__ float sobel_x_at(const float* s, int ts, int k) {
    const float p1 = s[k + ts + 1] - s[k - ts - 1];
    const float p2 = s[k - ts + 1] - s[k + ts - 1];
    return (p1 + p2) + 2.0f * (s[k + 1] - s[k - 1]);
}

// corr(s, Ky) at k.
__device__ __forceinline__ float sobel_y_at(const float* s, int ts, int k) {
    const float p1 = s[k + ts + 1] - s[k - ts - 1];
    const float p2 = s[k - ts + 1] - s[k + ts - 1];
    return (p1 - p2) + 2.0f * (s[k + ts] - s[k - ts]);
}

// √(gx² + gy² + ε).
__device__ __forceinline__ float sobel_magnitude(float2 g, float eps) {
    return sqrtf(g.x * g.x + g.y * g.y + eps);
}

#define SOBEL_TILE_PARAMS u64 tiles, u32 tiles_x, u32 tiles_y, int h, int w

// ------------------------------------------------------------------ forward

// gx, gy, magnitude of x.
extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_forward_f32(const float* __restrict__ x, float* __restrict__ gx,
                      float* __restrict__ gy, float* __restrict__ mag, SOBEL_TILE_PARAMS,
                      float eps) {
    constexpr int TS = SOBEL_TW + 2;
    __shared__ float s[(SOBEL_TH + 2) * TS];
    const int col = threadIdx.x % SOBEL_TW, row = threadIdx.x / SOBEL_TW;
    for (u64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const SobelTile tl = sobel_tile(t, tiles_x, tiles_y, h, w);
        __syncthreads();  // the previous tile's readers are done
        sobel_load<1>(s, x, tl, h, w);
        __syncthreads();
        const int c = tl.c0 + col;
#pragma unroll
        for (int k = 0; k < SOBEL_RPT; ++k) {
            const int rr = row + k * SOBEL_ROWS, r = tl.r0 + rr;
            if (r < h && c < w) {
                const float2 g = sobel_at(s, TS, (rr + 1) * TS + col + 1);
                const u64 o = tl.base + (u64)r * (u64)w + (u64)c;
                gx[o] = g.x;
                gy[o] = g.y;
                mag[o] = sobel_magnitude(g, eps);
            }
        }
    }
}

// ------------------------------------------------------------------ backward

// dx = −(Sx(Dx) + Sy(Dy)) with Dx = dgx + (dm/|g|)·gx, Dy = dgy + (dm/|g|)·gy (absent
// inputs are 0; DM: dmagnitude present, g the Sobel of x).
template <bool DM>
__device__ __forceinline__ void sobel_backward_impl(
    const float* __restrict__ x, const float* __restrict__ dgx, const float* __restrict__ dgy,
    const float* __restrict__ dm, float* __restrict__ dx, SOBEL_TILE_PARAMS, float eps,
    u32 use) {
    constexpr int XS = SOBEL_TW + 4, ES = SOBEL_TW + 2;
    __shared__ float xs[DM ? (SOBEL_TH + 4) * XS : 1];
    __shared__ float ex[(SOBEL_TH + 2) * ES];
    __shared__ float ey[(SOBEL_TH + 2) * ES];
    const int col = threadIdx.x % SOBEL_TW, row = threadIdx.x / SOBEL_TW;
    for (u64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const SobelTile tl = sobel_tile(t, tiles_x, tiles_y, h, w);
        __syncthreads();
        if (DM) {
            sobel_load<2>(xs, x, tl, h, w);
            __syncthreads();
        }
        // effective gradients of the tile and its 1-pixel ring
        for (int k = threadIdx.x; k < (SOBEL_TH + 2) * ES; k += SOBEL_THREADS) {
            const int i = k / ES, j = k - i * ES;
            const int r = tl.r0 - 1 + i, c = tl.c0 - 1 + j;
            float a = 0.0f, b = 0.0f;
            if (sobel_inside(r, c, h, w)) {
                const u64 o = tl.base + (u64)r * (u64)w + (u64)c;
                if (use & USE_DGX) a = dgx[o];
                if (use & USE_DGY) b = dgy[o];
                if (DM) {
                    const float2 g = sobel_at(xs, XS, (i + 1) * XS + j + 1);
                    const float q = dm[o] / sobel_magnitude(g, eps);
                    a += q * g.x;
                    b += q * g.y;
                }
            }
            ex[k] = a;
            ey[k] = b;
        }
        __syncthreads();
        const int c = tl.c0 + col;
#pragma unroll
        for (int k = 0; k < SOBEL_RPT; ++k) {
            const int rr = row + k * SOBEL_ROWS, r = tl.r0 + rr;
            if (r < h && c < w) {
                const int e = (rr + 1) * ES + col + 1;
                const float g = sobel_x_at(ex, ES, e) + sobel_y_at(ey, ES, e);
                dx[tl.base + (u64)r * (u64)w + (u64)c] = -g;
            }
        }
    }
}

#define SOBEL_BACKWARD_PARAMS                                                          \
    const float *__restrict__ x, const float *__restrict__ dgx,                        \
        const float *__restrict__ dgy, const float *__restrict__ dm,                   \
        float *__restrict__ dx, SOBEL_TILE_PARAMS, float eps, u32 use

// Without dmagnitude: x is not read (D = dgx, dgy).
extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_backward_f32(SOBEL_BACKWARD_PARAMS) {
    sobel_backward_impl<false>(x, dgx, dgy, dm, dx, tiles, tiles_x, tiles_y, h, w, eps, use);
}

// With dmagnitude.
extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_backward_dm_f32(SOBEL_BACKWARD_PARAMS) {
    sobel_backward_impl<true>(x, dgx, dgy, dm, dx, tiles, tiles_x, tiles_y, h, w, eps, use);
}

// ------------------------------------------------------------------ loss forward

// Σ of the loss terms of the block's pixels: (M_p − M_t)² (magnitude form) or
// (gx_p − gx_t)² + (gy_p − gy_t)² (components). Into partials[blockIdx.x], or, with a
// single block, the mean (Σ / n) into loss[0].
template <int FORM>
__device__ __forceinline__ void sobel_loss_terms_impl(
    const float* __restrict__ pred, const float* __restrict__ target,
    float* __restrict__ partials, float* __restrict__ loss, SOBEL_TILE_PARAMS, float eps,
    float n) {
    constexpr int TS = SOBEL_TW + 2;
    __shared__ float ps[(SOBEL_TH + 2) * TS];
    __shared__ float ts[(SOBEL_TH + 2) * TS];
    const int col = threadIdx.x % SOBEL_TW, row = threadIdx.x / SOBEL_TW;
    float acc = 0.0f;
    for (u64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const SobelTile tl = sobel_tile(t, tiles_x, tiles_y, h, w);
        __syncthreads();
        sobel_load<1>(ps, pred, tl, h, w);
        sobel_load<1>(ts, target, tl, h, w);
        __syncthreads();
        const int c = tl.c0 + col;
#pragma unroll
        for (int k = 0; k < SOBEL_RPT; ++k) {
            const int rr = row + k * SOBEL_ROWS, r = tl.r0 + rr;
            if (r < h && c < w) {
                const int e = (rr + 1) * TS + col + 1;
                const float2 gp = sobel_at(ps, TS, e), gt = sobel_at(ts, TS, e);
                if (FORM == FORM_MAGNITUDE) {
                    const float d = sobel_magnitude(gp, eps) - sobel_magnitude(gt, eps);
                    acc += d * d;
                } else {
                    const float u = gp.x - gt.x, v = gp.y - gt.y;
                    acc += u * u + v * v;
                }
            }
        }
    }
    const float s = block_sum(acc);
    if (threadIdx.x == 0) {
        if (gridDim.x == 1) {
            loss[0] = s / n;
        } else {
            partials[blockIdx.x] = s;
        }
    }
}

#define SOBEL_LOSS_TERMS_PARAMS                                                        \
    const float *__restrict__ pred, const float *__restrict__ target,                  \
        float *__restrict__ partials, float *__restrict__ loss, SOBEL_TILE_PARAMS,      \
        float eps, float n

extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_loss_terms_magnitude_f32(SOBEL_LOSS_TERMS_PARAMS) {
    sobel_loss_terms_impl<FORM_MAGNITUDE>(pred, target, partials, loss, tiles, tiles_x,
                                          tiles_y, h, w, eps, n);
}

extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_loss_terms_components_f32(SOBEL_LOSS_TERMS_PARAMS) {
    sobel_loss_terms_impl<FORM_COMPONENTS>(pred, target, partials, loss, tiles, tiles_x,
                                           tiles_y, h, w, eps, n);
}

// loss[0] = (Σ partials[0..count)) / n: one block, strided per-thread sums then a tree.
extern "C" __global__ void sobel_loss_finish_f32(const float* __restrict__ partials,
                                                 float* __restrict__ loss, u32 count,
                                                 float n) {
    float acc = 0.0f;
    for (u32 i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
    const float s = block_sum(acc);
    if (threadIdx.x == 0) loss[0] = s / n;
}

// ------------------------------------------------------------------ loss backward

// dpred −= Sx(Dx_p) + Sy(Dy_p) and dtarget −= Sx(Dx_t) + Sy(Dy_t) (the adjoint of
// dx = −(…), accumulated), with c = 2·scale/N and
//   components: Dx_p = c(gx_p − gx_t), Dy_p = c(gy_p − gy_t), D_t = −D_p (so dtarget
//     += Sx(Dx_p) + Sy(Dy_p));
//   magnitude: d = c(M_p − M_t), Dx_p = (d/M_p)·gx_p, …, Dx_t = −(d/M_t)·gx_t, ….
template <int FORM>
__device__ __forceinline__ void sobel_loss_backward_impl(
    const float* __restrict__ pred, const float* __restrict__ target,
    float* __restrict__ dpred, float* __restrict__ dtarget, SOBEL_TILE_PARAMS, float eps,
    float c, u32 want) {
    constexpr int XS = SOBEL_TW + 4, ES = SOBEL_TW + 2;
    constexpr int TARGET_FIELDS = FORM == FORM_MAGNITUDE ? (SOBEL_TH + 2) * ES : 1;
    __shared__ float ps[(SOBEL_TH + 4) * XS];
    __shared__ float ts[(SOBEL_TH + 4) * XS];
    __shared__ float e0[(SOBEL_TH + 2) * ES];  // Dx_p
    __shared__ float e1[(SOBEL_TH + 2) * ES];  // Dy_p
    __shared__ float e2[TARGET_FIELDS];        // Dx_t (magnitude form)
    __shared__ float e3[TARGET_FIELDS];        // Dy_t
    const bool want_p = want & WANT_PRED, want_t = want & WANT_TARGET;
    // the components form gathers the pred's fields for both outputs
    const bool pred_fields = FORM == FORM_COMPONENTS || want_p;
    const int col = threadIdx.x % SOBEL_TW, row = threadIdx.x / SOBEL_TW;
    for (u64 t = blockIdx.x; t < tiles; t += gridDim.x) {
        const SobelTile tl = sobel_tile(t, tiles_x, tiles_y, h, w);
        __syncthreads();
        sobel_load<2>(ps, pred, tl, h, w);
        sobel_load<2>(ts, target, tl, h, w);
        __syncthreads();
        for (int k = threadIdx.x; k < (SOBEL_TH + 2) * ES; k += SOBEL_THREADS) {
            const int i = k / ES, j = k - i * ES;
            const int r = tl.r0 - 1 + i, cc = tl.c0 - 1 + j;
            float v0 = 0.0f, v1 = 0.0f, v2 = 0.0f, v3 = 0.0f;
            if (sobel_inside(r, cc, h, w)) {
                const int e = (i + 1) * XS + j + 1;
                const float2 gp = sobel_at(ps, XS, e), gt = sobel_at(ts, XS, e);
                if (FORM == FORM_COMPONENTS) {
                    v0 = c * (gp.x - gt.x);
                    v1 = c * (gp.y - gt.y);
                } else {
                    const float mp = sobel_magnitude(gp, eps), mt = sobel_magnitude(gt, eps);
                    const float d = c * (mp - mt);
                    if (want_p) {
                        const float kp = d / mp;
                        v0 = kp * gp.x;
                        v1 = kp * gp.y;
                    }
                    if (want_t) {
                        const float kt = d / mt;
                        v2 = -(kt * gt.x);
                        v3 = -(kt * gt.y);
                    }
                }
            }
            if (pred_fields) {
                e0[k] = v0;
                e1[k] = v1;
            }
            if (FORM == FORM_MAGNITUDE && want_t) {
                e2[k] = v2;
                e3[k] = v3;
            }
        }
        __syncthreads();
        const int cc = tl.c0 + col;
#pragma unroll
        for (int k = 0; k < SOBEL_RPT; ++k) {
            const int rr = row + k * SOBEL_ROWS, r = tl.r0 + rr;
            if (r < h && cc < w) {
                const int e = (rr + 1) * ES + col + 1;
                const u64 o = tl.base + (u64)r * (u64)w + (u64)cc;
                const float gp = pred_fields ? sobel_x_at(e0, ES, e) + sobel_y_at(e1, ES, e)
                                             : 0.0f;
                if (want_p) dpred[o] = dpred[o] - gp;
                if (want_t) {
                    if (FORM == FORM_COMPONENTS) {
                        dtarget[o] = dtarget[o] + gp;
                    } else {
                        dtarget[o] = dtarget[o] - (sobel_x_at(e2, ES, e) + sobel_y_at(e3, ES, e));
                    }
                }
            }
        }
    }
}

#define SOBEL_LOSS_BACKWARD_PARAMS                                                     \
    const float *__restrict__ pred, const float *__restrict__ target,                  \
        float *__restrict__ dpred, float *__restrict__ dtarget, SOBEL_TILE_PARAMS,      \
        float eps, float c, u32 want

extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_loss_backward_magnitude_f32(SOBEL_LOSS_BACKWARD_PARAMS) {
    sobel_loss_backward_impl<FORM_MAGNITUDE>(pred, target, dpred, dtarget, tiles, tiles_x,
                                             tiles_y, h, w, eps, c, want);
}

extern "C" __global__ void __launch_bounds__(SOBEL_THREADS)
    sobel_loss_backward_components_f32(SOBEL_LOSS_BACKWARD_PARAMS) {
    sobel_loss_backward_impl<FORM_COMPONENTS>(pred, target, dpred, dtarget, tiles, tiles_x,
                                              tiles_y, h, w, eps, c, want);
}
