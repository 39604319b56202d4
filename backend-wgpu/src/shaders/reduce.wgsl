// Reductions along the last dim of x[rows, cols]. Each row gets a segment of p.seg
// invocations (the power of 2 ≥ cols, at most 256), so a workgroup serves 256/seg rows:
// one when rows are long, many when they are short. Each invocation folds a strided
// share of its row in chunks of CASCADE values (each chunk summed apart, then added to
// the running total), and a tree in workgroup memory combines the segment's partials:
// sums err by ~(CASCADE + cols/(seg·CASCADE) + log2 seg)·u instead of cols·u.
//
// Bindings: 0 params (uniform), 1 x (read), 3 out (read_write).

struct Params {
    rows: u32,
    cols: u32,
    op: u32,   // 0 sum, 1 mean, 2 max, 3 logsumexp, 4 sum of squares
    seg: u32,  // invocations per row (power of 2 ≤ 256)
    n: u32,    // rows·cols: passed so that the host refuses what u32 cannot index
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const OP_MEAN: u32 = 1u;
const OP_MAX: u32 = 2u;
const OP_LOGSUMEXP: u32 = 3u;
const OP_SUM_SQUARES: u32 = 4u;

// Values per chunk of an invocation's strided share.
const CASCADE: u32 = 32u;

// By the bits: comparisons may be compiled as ordered ones that never see a NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

var<workgroup> part: array<f32, 256>;
var<workgroup> flag: array<u32, 256>;

// Σ of `v` over the segment holding `lid`; every invocation gets its segment's total.
// Called in uniform control flow (barriers inside).
fn seg_sum(lid: u32, v: f32) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    let lane = lid % p.seg;
    for (var s = p.seg / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    let total = part[lid - lane];
    workgroupBarrier(); // before the next use of part
    return total;
}

// Max over the row of `lid`'s segment (`lim` values from `base`), NaN if any is NaN.
fn row_max(lid: u32, base: u32, lim: u32) -> f32 {
    let seg = p.seg;
    let lane = lid % seg;
    var m = neg_inf();
    var nan_seen = 0u;
    for (var j = lane; j < lim; j += seg) {
        let v = x[base + j];
        if (is_nan(v)) {
            nan_seen = 1u;
        } else if (v > m) {
            m = v;
        }
    }
    part[lid] = m;
    flag[lid] = nan_seen;
    workgroupBarrier();
    for (var s = seg / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            let o = part[lid + s];
            if (o > part[lid]) {
                part[lid] = o;
            }
            flag[lid] |= flag[lid + s];
        }
        workgroupBarrier();
    }
    let top = part[lid - lane];
    let any_nan = flag[lid - lane];
    workgroupBarrier();
    return select(top, nan(), any_nan != 0u);
}

// Σ f(x) over the row, f by p.op: x, x², or exp(x − m).
fn row_sum(lid: u32, base: u32, lim: u32, m: f32) -> f32 {
    let seg = p.seg;
    let chunk = seg * CASCADE;
    var acc = 0.0;
    for (var j0 = lid % seg; j0 < lim; j0 += chunk) {
        let end = min(j0 + chunk, lim);
        var c = 0.0;
        for (var j = j0; j < end; j += seg) {
            let v = x[base + j];
            switch p.op {
                case OP_SUM_SQUARES: {
                    c += v * v;
                }
                case OP_LOGSUMEXP: {
                    c += exp(v - m);
                }
                default: {
                    c += v;
                }
            }
        }
        acc += c;
    }
    return seg_sum(lid, acc);
}

@compute @workgroup_size(256)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let per = WG / p.seg;
    let first = group_index(wid, nwg) * per;
    if (first >= p.rows) {
        return;
    }
    let row = first + lid / p.seg;
    let valid = row < p.rows;
    // Invocations past the last row reduce nothing (they still meet the barriers).
    let lim = select(0u, p.cols, valid);
    let base = row * p.cols;
    var result: f32;
    switch p.op {
        case OP_MAX: {
            result = row_max(lid, base, lim);
        }
        case OP_LOGSUMEXP: {
            let m = row_max(lid, base, lim);
            // NaN propagates; all −∞ gives −∞, any +∞ gives +∞ (exp would make
            // ∞ − ∞ = NaN): those rows sum nothing and keep m.
            let ok = finite(m);
            let s = row_sum(lid, base, select(0u, lim, ok), m);
            result = select(m, m + log(s), ok);
        }
        default: {
            result = row_sum(lid, base, lim, 0.0);
            if (p.op == OP_MEAN) {
                result = result / f32(p.cols);
            }
        }
    }
    if (lid % p.seg == 0u && valid) {
        out[row] = result;
    }
}
