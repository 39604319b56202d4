// LayerNorm and GroupNorm, forward and backward.
//
// A "row" is the run of values that share statistics: a LayerNorm row (len = cols), or
// the (C/G)·S contiguous values of one (n, g) of a GroupNorm. Each row gets a segment
// of p.seg invocations (the power of 2 ≥ len, at most 256), so a workgroup serves
// 256/seg rows: one row when rows are long, many when they are short. Each invocation
// folds a strided share in chunks of CASCADE values (each chunk summed apart, then
// added to the running total), and a tree in workgroup memory combines the segment's
// partials: error ~(CASCADE + len/(seg·CASCADE) + log2 seg)·u, not len·u. Rows are
// read again from storage for each pass (they can be far longer than workgroup memory).
//
// Parameter gradients are column sums over rows: partial sums over blocks of RB rows
// into a [blocks, 2·C] scratch (dγ terms in columns [0, C), dβ terms in [C, 2·C)), then
// `col_sum` until one block is left, and `col_sum_final` adds it into dγ and dβ. Every
// order is fixed: the results do not depend on scheduling.
//
// Bindings (one number per role across the file):
//   0 params (uniform)
//   1 x, 2 gamma, 3 beta, 4 dy, 5 mean (saved), 6 rstd (saved)   read
//   7 y or dx, 8 mean (out), 9 rstd (out), 10 partial sums        read_write
//   11 partial sums (read), 12 dgamma, 13 dbeta (read_write)

struct Params {
    rows: u32,     // rows (LayerNorm) or N·G (GroupNorm); col_sum: rows of its input
    len: u32,      // values per row; col_sum: width of its input (2·C)
    spatial: u32,  // GroupNorm: S, values per channel within a row; LayerNorm: 1
    groups: u32,   // GroupNorm: G; LayerNorm: 1
    cpg: u32,      // GroupNorm: C/G; LayerNorm: cols
    channels: u32, // C (LayerNorm: cols): γ's length
    seg: u32,      // invocations per segment (power of 2 ≤ 256): per row, or per
                   // channel in groupnorm_backward
    eps: f32,
    total: u32,    // values in x: passed so that the host refuses what u32 cannot index
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read> mean_in: array<f32>;
@group(0) @binding(6) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;
@group(0) @binding(8) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(9) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(10) var<storage, read_write> part_out: array<f32>;
@group(0) @binding(11) var<storage, read> part_in: array<f32>;
@group(0) @binding(12) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(13) var<storage, read_write> dbeta: array<f32>;

// Values per chunk of an invocation's strided share.
const CASCADE: u32 = 32u;

// Column tile of the parameter-gradient kernels: TC columns × LANES row lanes; a block
// is RB = LANES·PER_LANE rows (the host's `RB`).
const TC: u32 = 64u;
const LANES: u32 = 4u;
const PER_LANE: u32 = 32u;
const RB: u32 = 128u;

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

var<workgroup> sa: array<f32, 256>;
var<workgroup> sb: array<f32, 256>;

// Σ of (a, b) over the segment of `seg` invocations holding `lid`; every invocation
// gets its segment's totals. Called in uniform control flow (barriers inside).
fn seg_sum2(lid: u32, seg: u32, a: f32, b: f32) -> vec2<f32> {
    sa[lid] = a;
    sb[lid] = b;
    workgroupBarrier();
    let lane = lid % seg;
    for (var s = seg / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            sa[lid] += sa[lid + s];
            sb[lid] += sb[lid + s];
        }
        workgroupBarrier();
    }
    let head = lid - lane;
    let total = vec2<f32>(sa[head], sb[head]);
    workgroupBarrier(); // before the next use of sa, sb
    return total;
}

// γ's index of value j of row `row`: its channel.
fn channel(row: u32, j: u32) -> u32 {
    return (row % p.groups) * p.cpg + j / p.spatial;
}

// The row of invocation `lid` in workgroup `g` (256/seg rows per workgroup).
fn row_of(g: u32, lid: u32) -> u32 {
    return g * (WG / p.seg) + lid / p.seg;
}

// Forward: mean m0 = Σx/n, then a second pass over d = x − m0 gives the corrected
// mean m0 + Σd/n and var = (Σd² − (Σd)²/n)/n (two-pass: rows offset far from 0 keep
// their digits); y = (x − mean)·rstd·γ + β.
@compute @workgroup_size(256)
fn norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    if (row_of(g, 0u) >= p.rows) {
        return;
    }
    let seg = p.seg;
    let lane = lid % seg;
    let row = row_of(g, lid);
    let valid = row < p.rows;
    let n = p.len;
    if (n == 0u) {
        // No values: the statistics are 0/0, as in the reference.
        if (lane == 0u && valid) {
            mean_out[row] = nan();
            rstd_out[row] = nan();
        }
        return;
    }
    // Invocations past the last row run the loops over nothing (they still meet the
    // barriers).
    let lim = select(0u, n, valid);
    let base = row * n;
    let chunk = seg * CASCADE;
    let nf = f32(n);
    var acc = 0.0;
    for (var j0 = lane; j0 < lim; j0 += chunk) {
        let end = min(j0 + chunk, lim);
        var c = 0.0;
        for (var j = j0; j < end; j += seg) {
            c += x[base + j];
        }
        acc += c;
    }
    let m0 = seg_sum2(lid, seg, acc, 0.0).x / nf;
    var s1 = 0.0;
    var s2 = 0.0;
    for (var j0 = lane; j0 < lim; j0 += chunk) {
        let end = min(j0 + chunk, lim);
        var c1 = 0.0;
        var c2 = 0.0;
        for (var j = j0; j < end; j += seg) {
            let d = x[base + j] - m0;
            c1 += d;
            c2 += d * d;
        }
        s1 += c1;
        s2 += c2;
    }
    let s = seg_sum2(lid, seg, s1, s2);
    let dm = s.x / nf;
    var variance = s.y / nf - dm * dm;
    // Cancellation can leave a tiny negative for constant rows (NaN stays NaN).
    variance = select(variance, 0.0, variance < 0.0);
    // A non-finite m0 stays the mean (inf + NaN would turn +∞ into NaN).
    let mean = select(m0, m0 + dm, finite(m0));
    let rstd = 1.0 / sqrt(variance + p.eps);
    for (var j = lane; j < lim; j += seg) {
        let c = channel(row, j);
        y[base + j] = (x[base + j] - mean) * rstd * gamma[c] + beta[c];
    }
    if (lane == 0u && valid) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

// LayerNorm input gradient, rows as in norm_forward:
// dx = rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)), dŷ = dy·γ, x̂ = (x − mean)·rstd.
@compute @workgroup_size(256)
fn layernorm_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    if (row_of(g, 0u) >= p.rows) {
        return;
    }
    let seg = p.seg;
    let lane = lid % seg;
    let row = row_of(g, lid);
    let valid = row < p.rows;
    let n = p.len;
    let lim = select(0u, n, valid);
    let base = row * n;
    let chunk = seg * CASCADE;
    var m = 0.0;
    var rs = 0.0;
    if (valid) {
        m = mean_in[row];
        rs = rstd_in[row];
    }
    var s1 = 0.0;
    var s2 = 0.0;
    for (var j0 = lane; j0 < lim; j0 += chunk) {
        let end = min(j0 + chunk, lim);
        var c1 = 0.0;
        var c2 = 0.0;
        for (var j = j0; j < end; j += seg) {
            let xhat = (x[base + j] - m) * rs;
            let dn = dy[base + j] * gamma[j];
            c1 += dn;
            c2 += dn * xhat;
        }
        s1 += c1;
        s2 += c2;
    }
    let s = seg_sum2(lid, seg, s1, s2);
    let a = s.x / f32(n);
    let b = s.y / f32(n);
    for (var j = lane; j < lim; j += seg) {
        let xhat = (x[base + j] - m) * rs;
        y[base + j] = (dy[base + j] * gamma[j] - a - xhat * b) * rs;
    }
}

// LayerNorm parameter-gradient partials: workgroup (column tile, block of RB rows);
// part_out[block, c] = Σ dy·x̂ and part_out[block, C + c] = Σ dy over the block's rows.
// Invocation (lane, col) folds rows lane, lane + LANES, … of the block; a tree over
// the lanes combines them.
@compute @workgroup_size(256)
fn layernorm_param_partials(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let cols = p.len;
    let tiles = (cols + TC - 1u) / TC;
    let g = group_index(wid, nwg);
    let block = g / tiles;
    if (block * RB >= p.rows) {
        return;
    }
    let c = (g % tiles) * TC + lid % TC;
    let lane = lid / TC;
    var sg = 0.0;
    var sd = 0.0;
    if (c < cols) {
        for (var k = 0u; k < PER_LANE; k++) {
            let r = block * RB + lane + k * LANES;
            if (r >= p.rows) {
                break;
            }
            let i = r * cols + c;
            let xhat = (x[i] - mean_in[r]) * rstd_in[r];
            sg += dy[i] * xhat;
            sd += dy[i];
        }
    }
    lanes_to_partials(lid, c, cols, block, sg, sd);
}

// Tree over the LANES lanes of a column tile; lane 0 writes the block's two sums.
fn lanes_to_partials(lid: u32, c: u32, cols: u32, block: u32, sg: f32, sd: f32) {
    sa[lid] = sg;
    sb[lid] = sd;
    workgroupBarrier();
    for (var s = WG / 2u; s >= TC; s >>= 1u) {
        if (lid < s) {
            sa[lid] += sa[lid + s];
            sb[lid] += sb[lid + s];
        }
        workgroupBarrier();
    }
    if (lid < TC && c < cols) {
        part_out[block * 2u * cols + c] = sa[lid];
        part_out[block * 2u * cols + cols + c] = sb[lid];
    }
}

// Folds the column sums of part_in[rows, len] over the RB rows of a block, in a
// tile of TC columns; lanes as in layernorm_param_partials. Returns the tile's sums
// in sa[0..TC) (after a barrier).
fn fold_block(lid: u32, block: u32, c: u32) {
    var acc = 0.0;
    if (c < p.len) {
        for (var k = 0u; k < PER_LANE; k++) {
            let r = block * RB + (lid / TC) + k * LANES;
            if (r >= p.rows) {
                break;
            }
            acc += part_in[r * p.len + c];
        }
    }
    sa[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s >= TC; s >>= 1u) {
        if (lid < s) {
            sa[lid] += sa[lid + s];
        }
        workgroupBarrier();
    }
}

// part_out[block, c] = Σ_{r in block} part_in[r, c]: one level of the column sums.
@compute @workgroup_size(256)
fn col_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let tiles = (p.len + TC - 1u) / TC;
    let g = group_index(wid, nwg);
    let block = g / tiles;
    if (block * RB >= p.rows) {
        return;
    }
    let c = (g % tiles) * TC + lid % TC;
    fold_block(lid, block, c);
    if (lid < TC && c < p.len) {
        part_out[block * p.len + c] = sa[lid];
    }
}

// The last level (rows ≤ RB): dγ[c] += Σ_r part_in[r, c], dβ[c] += Σ_r part_in[r, C + c].
@compute @workgroup_size(256)
fn col_sum_final(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let tiles = (p.len + TC - 1u) / TC;
    let g = group_index(wid, nwg);
    if (g >= tiles) {
        return;
    }
    let c = g * TC + lid % TC;
    fold_block(lid, 0u, c);
    if (lid < TC && c < p.len) {
        let ch = p.channels;
        if (c < ch) {
            dgamma[c] = dgamma[c] + sa[lid];
        } else {
            dbeta[c - ch] = dbeta[c - ch] + sa[lid];
        }
    }
}

// GroupNorm backward, one workgroup per (n, g). The workgroup is cut into segments of
// p.seg invocations (the power of 2 ≥ S, at most 256), one channel per segment at a
// time: a segmented tree gives each channel's Σ dy·x̂ and Σ dy, written to
// part_out[n, c] and part_out[n, C + c] (reduced over n afterwards) and folded into
// a = Σ_c γ_c·Σ dy and b = Σ_c γ_c·Σ dy·x̂; then
// dx = rstd·(dy·γ_c − a/L − x̂·b/L) over the row.
@compute @workgroup_size(256)
fn groupnorm_backward(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let n = p.len;
    let base = row * n;
    let batch = row / p.groups;
    let g = row % p.groups;
    let m = mean_in[row];
    let rs = rstd_in[row];
    let seg = p.seg;
    let per = WG / seg;
    let lane = lid % seg;
    let cl0 = lid / seg;
    let ch = p.channels;
    var ga = 0.0;
    var gb = 0.0;
    for (var c0 = 0u; c0 < p.cpg; c0 += per) {
        let cl = c0 + cl0;
        var sg = 0.0;
        var sd = 0.0;
        if (cl < p.cpg) {
            let start = base + cl * p.spatial;
            for (var q0 = lane; q0 < p.spatial; q0 += seg * CASCADE) {
                let end = min(q0 + seg * CASCADE, p.spatial);
                var cg = 0.0;
                var cd = 0.0;
                for (var q = q0; q < end; q += seg) {
                    let xhat = (x[start + q] - m) * rs;
                    cg += dy[start + q] * xhat;
                    cd += dy[start + q];
                }
                sg += cg;
                sd += cd;
            }
        }
        let t = seg_sum2(lid, seg, sg, sd);
        if (lane == 0u && cl < p.cpg) {
            let c = g * p.cpg + cl;
            part_out[batch * 2u * ch + c] = t.x;
            part_out[batch * 2u * ch + ch + c] = t.y;
            ga += gamma[c] * t.y;
            gb += gamma[c] * t.x;
        }
    }
    let s = seg_sum2(lid, WG, ga, gb);
    let a = s.x / f32(n);
    let b = s.y / f32(n);
    for (var j = lid; j < n; j += WG) {
        let c = channel(row, j);
        let xhat = (x[base + j] - m) * rs;
        y[base + j] = (dy[base + j] * gamma[c] - a - xhat * b) * rs;
    }
}
