// Row L2 normalisation, SoftCLIP / InfoNCE on n×n logits, and the n×n coefficient
// kernels of the composite contrastive loss (the [n, d] passes are GEMMs on the host
// side plus `row_dot_*` and `diag_axpy` here).
//
// Reductions are 256-wide trees in workgroup memory after a strided per-lane share
// (error ~(len/256 + 8)·u, not len·u); long rows are cut into chunks of CHUNK values,
// one workgroup each, whose partial sums a second tree combines.
//
// Softmax statistics are max-subtracted: (m, log Σ exp(v − m)) per row or column, so
// that at τ = 0.005 (logits up to ±200) every −log-softmax is a sum of non-negative
// brackets and nothing cancels. NaN reaches the log-sum through exp(NaN − m), whatever
// `max` does with it.
//
// Bindings (the host binds only those an entry point uses):
//   0 params (uniform), 1..5 in0..in4 (read), 6 out0 (read_write).

struct Params {
    count: u32,    // elements of the element-wise kernels
    rows: u32,     // rows; n for the n×n kernels
    cols: u32,     // columns; d for diag_axpy
    chunks: u32,   // chunks per row (row_dot_*)
    flags: u32,    // FLAG_TT, FLAG_SQRT
    scale: f32,    // contrastive_grad_*: the loss scale
    inv_tau: f32,  // 1/τ
    offset: u32,   // gram_reduce: first row of the stacked Gram to store
    kc: u32,       // gram_partial: depth per chunk (a multiple of GBK)
}

// The target-target logits (and their gradients) are present.
const FLAG_TT: u32 = 1u;
// row_dot_*: store the square root of the sum (a norm).
const FLAG_SQRT: u32 = 2u;
// Values per chunk of a row sum: 16 per invocation.
const CHUNK: u32 = 4096u;
// F.normalize's clamp of the norm.
const EPS: f32 = 1e-12;
// Stride of the per-index statistics of contrastive_stats.
const STATS: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read> in3: array<f32>;
@group(0) @binding(5) var<storage, read> in4: array<f32>;
@group(0) @binding(6) var<storage, read_write> out0: array<f32>;

var<workgroup> red: array<f32, 256>;

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

// Σ of every invocation's `v`, returned to all (a tree: pairwise order).
fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// max of every invocation's `v`, returned to all.
fn wg_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// 1/max(√sq, 1e-12) (NaN stays NaN: the comparison is false).
fn inv_norm(sq: f32) -> f32 {
    let norm = sqrt(sq);
    if (norm < EPS) {
        return 1.0 / EPS;
    }
    return 1.0 / norm;
}

// Whether the norm √sq is above the clamp (NaN counts as above, so it propagates).
fn unclamped(sq: f32) -> bool {
    return !(sqrt(sq) < EPS);
}

// ------------------------------------------------------------------ row sums

// One workgroup per (row, chunk): Σ in0·in1 over the chunk of a row of `cols` values.
// A row of one chunk stores its (square-rooted when FLAG_SQRT) sum in out0[row];
// otherwise out0[row·chunks + chunk] holds the partial for row_dot_finish.
@compute @workgroup_size(256)
fn row_dot_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    if (g >= p.rows * p.chunks) {
        return;
    }
    let row = g / p.chunks;
    let start = (g - row * p.chunks) * CHUNK;
    let end = min(start + CHUNK, p.cols);
    let base = row * p.cols;
    var acc = 0.0;
    for (var k = start + lid; k < end; k += WG) {
        acc += in0[base + k] * in1[base + k];
    }
    var s = wg_sum(lid, acc);
    if (lid == 0u) {
        if (p.chunks == 1u && (p.flags & FLAG_SQRT) != 0u) {
            s = sqrt(s);
        }
        out0[g] = s;
    }
}

// One workgroup per row: out0[row] = Σ_chunks in0[row·chunks + c] (square-rooted when
// FLAG_SQRT).
@compute @workgroup_size(256)
fn row_dot_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    var acc = 0.0;
    for (var c = lid; c < p.chunks; c += WG) {
        acc += in0[row * p.chunks + c];
    }
    var s = wg_sum(lid, acc);
    if (lid == 0u) {
        if ((p.flags & FLAG_SQRT) != 0u) {
            s = sqrt(s);
        }
        out0[row] = s;
    }
}

// ------------------------------------------------------------------ L2 normalisation

// y = x / max(‖x‖, 1e-12): in0 x, in1 norms, out0 y; one invocation per element.
@compute @workgroup_size(256)
fn l2_forward_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e < p.count) {
        let norm = in1[e / p.cols];
        // A NaN norm fails the comparison and stays the divisor.
        let denom = select(norm, EPS, norm < EPS);
        out0[e] = in0[e] / denom;
    }
}

// dx = (dy − x·(x·dy)/‖x‖²)/‖x‖, or dy/1e-12 where the clamp is active: in0 dy, in1 x,
// in2 norms, in3 x·dy per row, out0 dx (overwritten).
@compute @workgroup_size(256)
fn l2_backward_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e < p.count) {
        let row = e / p.cols;
        let norm = in2[row];
        if (norm < EPS) {
            out0[e] = in0[e] / EPS;
        } else {
            let k = in3[row] / (norm * norm);
            out0[e] = (in0[e] - in1[e] * k) / norm;
        }
    }
}

// ------------------------------------------------------------------ n×n logits

// C_pt (in0) or C_tt (in1) at `idx`.
fn logit(tt: bool, idx: u32) -> f32 {
    if (tt) {
        return in1[idx];
    }
    return in0[idx];
}

// (max, log Σ exp(v − max)) over the n values at base + k·stride of C_pt or C_tt.
fn max_logsum(tt: bool, base: u32, stride: u32, lid: u32) -> vec2<f32> {
    let n = p.rows;
    var m = neg_inf();
    for (var k = lid; k < n; k += WG) {
        m = max(m, logit(tt, base + k * stride));
    }
    m = wg_max(lid, m);
    var s = 0.0;
    for (var k = lid; k < n; k += WG) {
        s += exp(logit(tt, base + k * stride) - m);
    }
    s = wg_sum(lid, s);
    return vec2<f32>(m, log(s));
}

// One workgroup per index i: Σ_j Q_ij·[(lse_row_i − C_ij) + (lse_col_i − C_ji)] with
// Q = softmax_row(C_tt) (FLAG_TT) or I, each bracket max-subtracted and non-negative.
// in0 C_pt, in1 C_tt, out0[i] the row's share of 2n·loss.
@compute @workgroup_size(256)
fn contrastive_loss_rows(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg);
    let n = p.rows;
    if (i >= n) {
        return;
    }
    let rs = max_logsum(false, i * n, 1u, lid);
    let cs = max_logsum(false, i, n, lid);
    var acc = 0.0;
    if ((p.flags & FLAG_TT) != 0u) {
        let ts = max_logsum(true, i * n, 1u, lid);
        for (var j = lid; j < n; j += WG) {
            let q = exp((in1[i * n + j] - ts.x) - ts.y);
            let g = ((rs.x - in0[i * n + j]) + rs.y) + ((cs.x - in0[j * n + i]) + cs.y);
            acc += q * g;
        }
    } else if (lid == 0u) {
        let c = in0[i * n + i];
        acc = ((rs.x - c) + rs.y) + ((cs.x - c) + cs.y);
    }
    let total = wg_sum(lid, acc);
    if (lid == 0u) {
        out0[i] = total;
    }
}

// One workgroup: out0[0] = Σ_i in0[i] / (2n).
@compute @workgroup_size(256)
fn contrastive_loss_final(@builtin(local_invocation_index) lid: u32) {
    let n = p.rows;
    var acc = 0.0;
    for (var i = lid; i < n; i += WG) {
        acc += in0[i];
    }
    let total = wg_sum(lid, acc);
    if (lid == 0u) {
        out0[0] = total / f32(2u * n);
    }
}

// One workgroup per index i: out0[i·STATS + ..] = row (max, log-sum) of C_pt, column
// (max, log-sum) of C_pt, and with FLAG_TT the row (max, log-sum) of C_tt and
// h_i = Σ_k Q_ik·(C_pt[i,k] + C_pt[k,i]). in0 C_pt, in1 C_tt.
@compute @workgroup_size(256)
fn contrastive_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg);
    let n = p.rows;
    if (i >= n) {
        return;
    }
    let rs = max_logsum(false, i * n, 1u, lid);
    let cs = max_logsum(false, i, n, lid);
    var ts = vec2<f32>(0.0, 0.0);
    var h = 0.0;
    if ((p.flags & FLAG_TT) != 0u) {
        ts = max_logsum(true, i * n, 1u, lid);
        var acc = 0.0;
        for (var k = lid; k < n; k += WG) {
            let q = exp((in1[i * n + k] - ts.x) - ts.y);
            acc += q * (in0[i * n + k] + in0[k * n + i]);
        }
        h = wg_sum(lid, acc);
    }
    if (lid == 0u) {
        let o = i * STATS;
        out0[o] = rs.x;
        out0[o + 1u] = rs.y;
        out0[o + 2u] = cs.x;
        out0[o + 3u] = cs.y;
        out0[o + 4u] = ts.x;
        out0[o + 5u] = ts.y;
        out0[o + 6u] = h;
        out0[o + 7u] = 0.0;
    }
}

// Q_ab = softmax_row(C_tt)[a, b] from the statistics in in2.
fn soft_label(a: u32, b: u32) -> f32 {
    return exp((in1[a * p.rows + b] - in2[a * STATS + 4u]) - in2[a * STATS + 5u]);
}

// dC_pt[a,b] = scale/(2n)·((P_ab − Q_ab) + (R_ab − Q_ba)): in0 C_pt, in1 C_tt,
// in2 the statistics, out0 dC_pt (overwritten); one invocation per element.
@compute @workgroup_size(256)
fn contrastive_grad_pt(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.count) {
        return;
    }
    let n = p.rows;
    let a = e / n;
    let b = e - a * n;
    let x = in0[e];
    let pr = exp((x - in2[a * STATS]) - in2[a * STATS + 1u]);
    let r = exp((x - in2[b * STATS + 2u]) - in2[b * STATS + 3u]);
    var qab = 0.0;
    var qba = 0.0;
    if ((p.flags & FLAG_TT) != 0u) {
        qab = soft_label(a, b);
        qba = soft_label(b, a);
    } else if (a == b) {
        qab = 1.0;
        qba = 1.0;
    }
    let c = p.scale / f32(2u * n);
    out0[e] = c * ((pr - qab) + (r - qba));
}

// dC_tt[i,j] = scale/(2n)·Q_ij·(h_i − S_ij), S = C_pt + C_ptᵀ (the softmax backward
// with the log-sum-exp terms cancelled exactly): in0 C_pt, in1 C_tt, in2 the
// statistics, out0 dC_tt (overwritten); one invocation per element.
@compute @workgroup_size(256)
fn contrastive_grad_tt(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.count) {
        return;
    }
    let n = p.rows;
    let i = e / n;
    let j = e - i * n;
    let q = soft_label(i, j);
    let s = in0[e] + in0[j * n + i];
    let c = p.scale / f32(2u * n);
    out0[e] = c * q * (in2[i * STATS + 6u] - s);
}

// ------------------------------------------------------------------ logits from Grams

// out0[i,j] = in0[i,j]·(r_i·s_j)/τ with r = 1/max(√in1, 1e-12), s = 1/max(√in2, 1e-12):
// the logits from a Gram matrix, and w_pt from dC_pt. One invocation per element.
@compute @workgroup_size(256)
fn clip_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.count) {
        return;
    }
    let n = p.rows;
    let i = e / n;
    let j = e - i * n;
    out0[e] = in0[e] * (inv_norm(in1[i]) * inv_norm(in2[j])) * p.inv_tau;
}

// One workgroup per row i of d_p (overwritten, diagonal): d_p[i,i] = −r_i²·Σ_j dC_ij·C_ij,
// 0 where the norm is clamped, zeros elsewhere. in0 C_pt, in1 dC_pt, in2 p_sq.
@compute @workgroup_size(256)
fn clip_dp_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg);
    let n = p.rows;
    if (i >= n) {
        return;
    }
    var acc = 0.0;
    for (var j = lid; j < n; j += WG) {
        acc += in1[i * n + j] * in0[i * n + j];
    }
    let total = wg_sum(lid, acc);
    var v = 0.0;
    if (unclamped(in2[i])) {
        let r = inv_norm(in2[i]);
        v = -(r * r) * total;
    }
    for (var j = lid; j < n; j += WG) {
        out0[i * n + j] = select(0.0, v, j == i);
    }
}

// One workgroup per row m of w_tt (overwritten):
// w_tt[m,l] = (E_ml + E_lm)·s_m·s_l/τ (FLAG_TT, else 0) + δ_ml·β_m,
// β_m = −s_m²·(Σ_i dC_im·C_im + Σ_l E_ml·Ctt_ml + Σ_k E_km·Ctt_km) (0 where clamped).
// in0 C_pt, in1 dC_pt, in2 C_tt, in3 E = dC_tt, in4 t_sq.
@compute @workgroup_size(256)
fn clip_wtt_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let m = group_index(wid, nwg);
    let n = p.rows;
    if (m >= n) {
        return;
    }
    let tt = (p.flags & FLAG_TT) != 0u;
    var acc = 0.0;
    for (var k = lid; k < n; k += WG) {
        acc += in1[k * n + m] * in0[k * n + m];
        if (tt) {
            acc += in3[m * n + k] * in2[m * n + k] + in3[k * n + m] * in2[k * n + m];
        }
    }
    let total = wg_sum(lid, acc);
    let sm = inv_norm(in4[m]);
    let diag = unclamped(in4[m]);
    for (var l = lid; l < n; l += WG) {
        var v = 0.0;
        if (tt) {
            v = (in3[m * n + l] + in3[l * n + m]) * (sm * inv_norm(in4[l])) * p.inv_tau;
        }
        if (l == m && diag) {
            v = v - (sm * sm) * total;
        }
        out0[m * n + l] = v;
    }
}

// ------------------------------------------------------------------ raw inputs

// The Gram pass, split over the depth d so that a batch of n ≤ 64 rows still fills the
// device: workgroup (row tile, column tile, chunk) computes a 64×64 tile of A·Tᵀ over
// d-range [chunk·kc, (chunk + 1)·kc), A = [P; T] stacked (count = n or 2n rows), into
// out0[(chunk·count + i)·n + j]; gram_reduce sums the chunks. The tile walk is the
// GEMM's (16×16 invocations, 4×4 outputs each strided by 16, depth 16 per step).
const GBM: u32 = 64u;
const GBK: u32 = 16u;
const GPITCH: u32 = 65u;

var<workgroup> ga: array<f32, 1040>;
var<workgroup> gb: array<f32, 1040>;

// Row i of [P; T] (in0, in1) at depth l; zero past the rows (the depth is bounded by
// the caller).
fn gram_a(i: u32, l: u32) -> f32 {
    let n = p.rows;
    if (i < n) {
        return in0[i * p.cols + l];
    }
    if (i < p.count) {
        return in1[(i - n) * p.cols + l];
    }
    return 0.0;
}

@compute @workgroup_size(16, 16)
fn gram_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let n = p.rows;
    let ma = p.count;
    let tiles_n = (n + GBM - 1u) / GBM;
    let tiles_m = (ma + GBM - 1u) / GBM;
    let g = group_index(wid, nwg);
    if (g >= tiles_n * tiles_m * p.chunks) {
        return;
    }
    let tn = g % tiles_n;
    let rest = g / tiles_n;
    let tm = rest % tiles_m;
    let chunk = rest / tiles_m;
    let row0 = tm * GBM;
    let col0 = tn * GBM;
    let k_start = chunk * p.kc;
    let k_end = min(k_start + p.kc, p.cols);

    var acc: array<f32, 16>;
    for (var k0 = k_start; k0 < k_end; k0 += GBK) {
        // 1024 values of each tile, 4 per invocation, consecutive in depth.
        for (var r = 0u; r < 4u; r++) {
            let e = li + 256u * r;
            let i = e / GBK;
            let l = e % GBK;
            var av = 0.0;
            var bv = 0.0;
            if (k0 + l < k_end) {
                av = gram_a(row0 + i, k0 + l);
                if (col0 + i < n) {
                    bv = in1[(col0 + i) * p.cols + k0 + l];
                }
            }
            ga[l * GPITCH + i] = av;
            gb[l * GPITCH + i] = bv;
        }
        workgroupBarrier();
        for (var l = 0u; l < GBK; l++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                av[r] = ga[l * GPITCH + lid.y + 16u * r];
                bv[r] = gb[l * GPITCH + lid.x + 16u * r];
            }
            for (var r = 0u; r < 4u; r++) {
                for (var s = 0u; s < 4u; s++) {
                    acc[r * 4u + s] += av[r] * bv[s];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let i = row0 + lid.y + 16u * r;
        for (var s = 0u; s < 4u; s++) {
            let j = col0 + lid.x + 16u * s;
            if (i < ma && j < n) {
                out0[(chunk * ma + i) * n + j] = acc[r * 4u + s];
            }
        }
    }
}

// out0[e] = Σ_chunks in0[chunk·cols·rows + offset·rows + e] over count = n·n elements:
// the n×n block of the stacked Gram starting at row `offset` (cols = rows of the stack).
@compute @workgroup_size(256)
fn gram_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.count) {
        return;
    }
    let stride = p.cols * p.rows;
    let at = p.offset * p.rows + e;
    var s = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        s += in0[c * stride + at];
    }
    out0[e] = s;
}

// out0[i,k] += in0[i,i]·in1[i,k] over [rows, cols] (in0 is rows×rows: d_p, or
// InfoNCE's diagonal w_tt); one invocation per element.
@compute @workgroup_size(256)
fn diag_axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e < p.count) {
        let i = e / p.cols;
        out0[e] = out0[e] + in0[i * p.rows + i] * in1[e];
    }
}
