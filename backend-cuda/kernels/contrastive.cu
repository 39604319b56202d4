// Row L2 normalisation, SoftCLIP / InfoNCE on n×n logits, and the n×n coefficient and
// [n, d] passes of the composite contrastive loss (src/ops/contrastive.rs; the Gram
// matrices and the input-gradient products are cuBLAS GEMMs launched from there).
//
// - Row sums (norms, x·dy, squared row norms) are cut into chunks of a row, one block
//   per (row, chunk): four accumulators per thread (float4 lanes), then a fixed block
//   tree; a second pass adds a row's chunk partials (one warp per row). The chunking is
//   a function of (rows, cols) alone, so results are the same bits on every run.
// - The n×n loss kernels work per index i in one block (max-subtracted log-sum-exps of
//   row i and column i of C_pt, row i of C_tt), then per element. At τ = 0.005 every
//   −log-softmax is a sum of non-negative brackets (m − C) + log Σ exp(C − m), so
//   nothing cancels; NaN reaches every statistic it touches (NaN-propagating max, and
//   exp(NaN − m) in the sum). The C_tt gradient uses the lse-free form
//   Q_ij·(h_i − S_ij)/(2n), S = C_pt + C_ptᵀ, h_i = Σ_k Q_ik·S_ik (exact when Σ_k Q_ik = 1).
// - Element-wise kernels use a 2-D grid: grid.x over columns (float4 units where the
//   host says the rows are 16-byte aligned), grid.y strided over rows (no division).
#include "common.cuh"

// F.normalize's clamp of the norm.
#define CT_EPS 1e-12f
// Words per index of the statistics of contrastive_stats (src/ops/contrastive.rs).
#define CT_STATS 8

__device__ __forceinline__ bool ct_aligned16(const void* p) { return (((u64)p) & 15u) == 0; }

// 1/max(√sq, 1e-12) (a NaN norm fails the comparison and stays NaN).
__device__ __forceinline__ float ct_inv_norm(float sq) {
    const float norm = sqrtf(sq);
    const float eps = CT_EPS;
    return norm < eps ? 1.0f / eps : 1.0f / norm;
}

// Whether the norm √sq is above the clamp (NaN counts as above, so it propagates).
__device__ __forceinline__ bool ct_unclamped(float sq) { return !(sqrtf(sq) < CT_EPS); }

// ------------------------------------------------------------------ row sums

// One block per (row, chunk) g (grid-stride over rows·chunks): Σ a·b over the chunk
// [chunk·chunk_len, min(+chunk_len, cols)) of the row (a·a when SQUARE: b unused).
// chunks == 1: out[row] = the sum (its square root when do_sqrt); else out[g].
template <bool SQUARE>
__device__ __forceinline__ void ct_row_dot_partial(const float* __restrict__ a,
                                                   const float* __restrict__ b,
                                                   float* __restrict__ out, u64 rows, u64 cols,
                                                   u64 chunks, u64 chunk_len, u32 do_sqrt) {
    const bool vec = ((cols | chunk_len) & 3) == 0 && ct_aligned16(a) &&
                     (SQUARE || ct_aligned16(b));
    const u64 groups = rows * chunks;
    for (u64 g = blockIdx.x; g < groups; g += gridDim.x) {
        const u64 row = g / chunks, chunk = g - row * chunks;
        const u64 start = chunk * chunk_len;
        const u64 end = start + chunk_len < cols ? start + chunk_len : cols;
        const float* ar = a + row * cols;
        const float* br = SQUARE ? ar : b + row * cols;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        if (vec) {
            const float4* a4 = reinterpret_cast<const float4*>(ar);
            const float4* b4 = reinterpret_cast<const float4*>(br);
            for (u64 k = (start >> 2) + threadIdx.x; k < (end >> 2); k += blockDim.x) {
                const float4 x = a4[k];
                const float4 y = SQUARE ? x : b4[k];
                s0 += x.x * y.x;
                s1 += x.y * y.y;
                s2 += x.z * y.z;
                s3 += x.w * y.w;
            }
        } else {
            for (u64 k = start + threadIdx.x; k < end; k += blockDim.x) {
                const float x = ar[k];
                s0 += x * (SQUARE ? x : br[k]);
            }
        }
        const float s = block_sum((s0 + s1) + (s2 + s3));
        if (threadIdx.x == 0) {
            if (chunks == 1)
                out[row] = do_sqrt ? sqrtf(s) : s;
            else
                out[g] = s;
        }
    }
}

extern "C" __global__ void row_sumsq_partial_f32(const float* __restrict__ a,
                                                 float* __restrict__ out, u64 rows, u64 cols,
                                                 u64 chunks, u64 chunk_len, u32 do_sqrt) {
    ct_row_dot_partial<true>(a, nullptr, out, rows, cols, chunks, chunk_len, do_sqrt);
}

extern "C" __global__ void row_dot_partial_f32(const float* __restrict__ a,
                                               const float* __restrict__ b,
                                               float* __restrict__ out, u64 rows, u64 cols,
                                               u64 chunks, u64 chunk_len, u32 do_sqrt) {
    ct_row_dot_partial<false>(a, b, out, rows, cols, chunks, chunk_len, do_sqrt);
}

// out[row] = Σ_c part[row·chunks + c] (its square root when do_sqrt): one warp per row
// (grid-stride over rows), lane-strided shares then the warp butterfly.
extern "C" __global__ void row_dot_finish_f32(const float* __restrict__ part,
                                              float* __restrict__ out, u64 rows, u64 chunks,
                                              u32 do_sqrt) {
    const u32 lane = threadIdx.x & 31u;
    const u64 warps = (u64)gridDim.x * (blockDim.x >> 5);
    for (u64 row = (u64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows;
         row += warps) {
        float s = 0.0f;
        for (u64 c = lane; c < chunks; c += 32) s += part[row * chunks + c];
        s = warp_sum(s);
        if (lane == 0) out[row] = do_sqrt ? sqrtf(s) : s;
    }
}

// ------------------------------------------------------------------ L2 normalisation

// y = x / max(‖x‖, 1e-12) over [rows, cols] (norms precomputed); vec: float4 units.
extern "C" __global__ void l2_forward_apply_f32(const float* __restrict__ x,
                                                const float* __restrict__ norms,
                                                float* __restrict__ y, u64 rows, u64 cols,
                                                u32 vec) {
    const u64 u = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    for (u64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const float norm = norms[r];
        // A NaN norm fails the comparison and stays the divisor.
        const float denom = norm < CT_EPS ? CT_EPS : norm;
        if (vec) {
            if (u < (cols >> 2)) {
                const float4 v = reinterpret_cast<const float4*>(x + r * cols)[u];
                reinterpret_cast<float4*>(y + r * cols)[u] =
                    make_float4(v.x / denom, v.y / denom, v.z / denom, v.w / denom);
            }
        } else if (u < cols) {
            y[r * cols + u] = x[r * cols + u] / denom;
        }
    }
}

// dx = (dy − x·k)/‖x‖ with k = (x·dy)/‖x‖², or dy/1e-12 where the clamp is active;
// dx overwritten; vec: float4 units.
extern "C" __global__ void l2_backward_apply_f32(const float* __restrict__ dy,
                                                 const float* __restrict__ x,
                                                 const float* __restrict__ norms,
                                                 const float* __restrict__ xdy,
                                                 float* __restrict__ dx, u64 rows, u64 cols,
                                                 u32 vec) {
    const u64 u = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    for (u64 r = blockIdx.y; r < rows; r += gridDim.y) {
        const float norm = norms[r];
        const bool clamped = norm < CT_EPS;
        const float k = xdy[r] / (norm * norm);
        if (vec) {
            if (u < (cols >> 2)) {
                const float4 g = reinterpret_cast<const float4*>(dy + r * cols)[u];
                float4 o;
                if (clamped) {
                    o = make_float4(g.x / CT_EPS, g.y / CT_EPS, g.z / CT_EPS, g.w / CT_EPS);
                } else {
                    const float4 v = reinterpret_cast<const float4*>(x + r * cols)[u];
                    o = make_float4((g.x - v.x * k) / norm, (g.y - v.y * k) / norm,
                                    (g.z - v.z * k) / norm, (g.w - v.w * k) / norm);
                }
                reinterpret_cast<float4*>(dx + r * cols)[u] = o;
            }
        } else if (u < cols) {
            const u64 e = r * cols + u;
            dx[e] = clamped ? dy[e] / CT_EPS : (dy[e] - x[e] * k) / norm;
        }
    }
}

// ------------------------------------------------------------------ n×n logits

// (max, log Σ exp(v − max)) over v_k = base[k·stride], k < n, for the whole block (every
// thread gets it). NaN propagates (through the max, and through exp in the sum).
__device__ __forceinline__ float2 ct_max_logsum(const float* __restrict__ base, u64 stride,
                                                u64 n) {
    float m = -__int_as_float(0x7f800000);
    for (u64 k = threadIdx.x; k < n; k += blockDim.x) m = MaxNanOp()(m, base[k * stride]);
    m = block_max_nan(m);
    float s = 0.0f;
    for (u64 k = threadIdx.x; k < n; k += blockDim.x) s += expf(base[k * stride] - m);
    s = block_sum(s);
    return make_float2(m, logf(s));
}

// One block per index i (grid-stride): part[i] = Σ_j Q_ij·[(lse_row_i − C_ij) +
// (lse_col_i − C_ji)] with Q = softmax_row(C_tt) (soft) or I (InfoNCE: the diagonal
// term only), each bracket max-subtracted and non-negative: row i's share of 2n·loss.
extern "C" __global__ void contrastive_loss_rows_f32(const float* __restrict__ pt,
                                                     const float* __restrict__ tt,
                                                     float* __restrict__ part, u64 n,
                                                     u32 soft) {
    for (u64 i = blockIdx.x; i < n; i += gridDim.x) {
        const float2 rs = ct_max_logsum(pt + i * n, 1, n);
        const float2 cs = ct_max_logsum(pt + i, n, n);
        if (soft) {
            const float2 ts = ct_max_logsum(tt + i * n, 1, n);
            float acc = 0.0f;
            for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
                const float q = expf((tt[i * n + j] - ts.x) - ts.y);
                const float g =
                    ((rs.x - pt[i * n + j]) + rs.y) + ((cs.x - pt[j * n + i]) + cs.y);
                acc += q * g;
            }
            acc = block_sum(acc);
            if (threadIdx.x == 0) part[i] = acc;
        } else if (threadIdx.x == 0) {
            const float c = pt[i * n + i];
            part[i] = ((rs.x - c) + rs.y) + ((cs.x - c) + cs.y);
        }
    }
}

// One block per index i (grid-stride): stats[i·8 ..] = row (max, log-sum) of C_pt,
// column (max, log-sum) of C_pt, and when soft the row (max, log-sum) of C_tt and
// h_i = Σ_k Q_ik·(C_pt[i,k] + C_pt[k,i]).
extern "C" __global__ void contrastive_stats_f32(const float* __restrict__ pt,
                                                 const float* __restrict__ tt,
                                                 float* __restrict__ stats, u64 n, u32 soft) {
    for (u64 i = blockIdx.x; i < n; i += gridDim.x) {
        const float2 rs = ct_max_logsum(pt + i * n, 1, n);
        const float2 cs = ct_max_logsum(pt + i, n, n);
        float2 ts = make_float2(0.0f, 0.0f);
        float h = 0.0f;
        if (soft) {
            ts = ct_max_logsum(tt + i * n, 1, n);
            float acc = 0.0f;
            for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
                const float q = expf((tt[i * n + k] - ts.x) - ts.y);
                acc += q * (pt[i * n + k] + pt[k * n + i]);
            }
            h = block_sum(acc);
        }
        if (threadIdx.x == 0) {
            float* o = stats + i * CT_STATS;
            o[0] = rs.x;
            o[1] = rs.y;
            o[2] = cs.x;
            o[3] = cs.y;
            o[4] = ts.x;
            o[5] = ts.y;
            o[6] = h;
            o[7] = 0.0f;
        }
    }
}

// Q_ab = softmax_row(C_tt)[a, b] from the statistics.
__device__ __forceinline__ float ct_soft_label(const float* __restrict__ tt,
                                               const float* __restrict__ stats, u64 n, u64 a,
                                               u64 b) {
    return expf((tt[a * n + b] - stats[a * CT_STATS + 4]) - stats[a * CT_STATS + 5]);
}

// dC_pt[a,b] = c·((P_ab − Q_ab) + (R_ab − Q_ba)), c = scale/(2n) (host f64), overwritten.
// 2-D grid: b over grid.x, a strided over grid.y.
extern "C" __global__ void contrastive_grad_pt_f32(const float* __restrict__ pt,
                                                   const float* __restrict__ tt,
                                                   const float* __restrict__ stats,
                                                   float* __restrict__ dpt, u64 n, u32 soft,
                                                   float c) {
    const u64 b = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= n) return;
    const float cm = stats[b * CT_STATS + 2], cl = stats[b * CT_STATS + 3];
    for (u64 a = blockIdx.y; a < n; a += gridDim.y) {
        const float x = pt[a * n + b];
        const float p = expf((x - stats[a * CT_STATS]) - stats[a * CT_STATS + 1]);
        const float r = expf((x - cm) - cl);
        float qab, qba;
        if (soft) {
            qab = ct_soft_label(tt, stats, n, a, b);
            qba = ct_soft_label(tt, stats, n, b, a);
        } else {
            qab = qba = a == b ? 1.0f : 0.0f;
        }
        dpt[a * n + b] = c * ((p - qab) + (r - qba));
    }
}

// dC_tt[i,j] = c·Q_ij·(h_i − S_ij), S = C_pt + C_ptᵀ, c = scale/(2n) (SoftCLIP only),
// overwritten. 2-D grid: j over grid.x, i strided over grid.y.
extern "C" __global__ void contrastive_grad_tt_f32(const float* __restrict__ pt,
                                                   const float* __restrict__ tt,
                                                   const float* __restrict__ stats,
                                                   float* __restrict__ dtt, u64 n, float c) {
    const u64 j = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    for (u64 i = blockIdx.y; i < n; i += gridDim.y) {
        const float q = ct_soft_label(tt, stats, n, i, j);
        const float s = pt[i * n + j] + pt[j * n + i];
        dtt[i * n + j] = c * q * (stats[i * CT_STATS + 6] - s);
    }
}

// ------------------------------------------------------------------ logits from Grams

// out[i,j] = g[i,j]·(r_i·s_j)/τ with r = 1/max(√sq_row, 1e-12), s = 1/max(√sq_col, 1e-12):
// the logits from a Gram matrix, and w_pt from dC_pt. Overwritten. 2-D grid.
extern "C" __global__ void clip_logits_f32(const float* __restrict__ g,
                                           const float* __restrict__ sq_row,
                                           const float* __restrict__ sq_col,
                                           float* __restrict__ out, u64 n, float tau) {
    const u64 j = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    const float sj = ct_inv_norm(sq_col[j]);
    for (u64 i = blockIdx.y; i < n; i += gridDim.y)
        out[i * n + j] = g[i * n + j] * (ct_inv_norm(sq_row[i]) * sj) / tau;
}

// One block per row i (grid-stride) of d_p (overwritten, diagonal):
// d_p[i,i] = −r_i²·Σ_j dC_ij·C_ij (0 where the norm is clamped), zeros elsewhere.
extern "C" __global__ void clip_dp_rows_f32(const float* __restrict__ c,
                                            const float* __restrict__ dc,
                                            const float* __restrict__ p_sq,
                                            float* __restrict__ d_p, u64 n) {
    for (u64 i = blockIdx.x; i < n; i += gridDim.x) {
        float acc = 0.0f;
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) acc += dc[i * n + j] * c[i * n + j];
        const float total = block_sum(acc);
        float v = 0.0f;
        if (ct_unclamped(p_sq[i])) {
            const float r = ct_inv_norm(p_sq[i]);
            v = -(r * r) * total;
        }
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) d_p[i * n + j] = j == i ? v : 0.0f;
    }
}

// One block per row m (grid-stride) of w_tt (overwritten):
// w_tt[m,l] = (E_ml + E_lm)·s_m·s_l/τ (when tt, else 0) + δ_ml·β_m,
// β_m = −s_m²·(Σ_i dC_im·C_im + Σ_l E_ml·Ctt_ml + Σ_k E_km·Ctt_km) (0 where clamped; the
// E terms only when tt). ctt and e may be null when tt == 0.
extern "C" __global__ void clip_wtt_rows_f32(const float* __restrict__ c,
                                             const float* __restrict__ dc,
                                             const float* __restrict__ ctt,
                                             const float* __restrict__ e,
                                             const float* __restrict__ t_sq,
                                             float* __restrict__ w_tt, u64 n, float tau,
                                             u32 tt) {
    for (u64 m = blockIdx.x; m < n; m += gridDim.x) {
        float acc = 0.0f;
        for (u64 k = threadIdx.x; k < n; k += blockDim.x) {
            acc += dc[k * n + m] * c[k * n + m];
            if (tt) acc += e[m * n + k] * ctt[m * n + k] + e[k * n + m] * ctt[k * n + m];
        }
        const float total = block_sum(acc);
        const float sm = ct_inv_norm(t_sq[m]);
        const bool diag = ct_unclamped(t_sq[m]);
        for (u64 l = threadIdx.x; l < n; l += blockDim.x) {
            float v = 0.0f;
            if (tt) v = (e[m * n + l] + e[l * n + m]) * (sm * ct_inv_norm(t_sq[l])) / tau;
            if (l == m && diag) v = v - (sm * sm) * total;
            w_tt[m * n + l] = v;
        }
    }
}

// ------------------------------------------------------------------ raw inputs

// out[i,k] += dmat[i,i]·x[i,k] over [n, d] (dmat n×n: d_p, or InfoNCE's diagonal w_tt);
// vec: float4 units. 2-D grid: columns over grid.x, rows strided over grid.y.
extern "C" __global__ void diag_axpy_f32(const float* __restrict__ dmat,
                                         const float* __restrict__ x, float* __restrict__ out,
                                         u64 n, u64 d, u32 vec) {
    const u64 u = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    for (u64 i = blockIdx.y; i < n; i += gridDim.y) {
        const float a = dmat[i * n + i];
        if (vec) {
            if (u < (d >> 2)) {
                const float4 v = reinterpret_cast<const float4*>(x + i * d)[u];
                float4* o = reinterpret_cast<float4*>(out + i * d) + u;
                float4 w = *o;
                w.x += a * v.x;
                w.y += a * v.y;
                w.z += a * v.z;
                w.w += a * v.w;
                *o = w;
            }
        } else if (u < d) {
            out[i * d + u] += a * x[i * d + u];
        }
    }
}
