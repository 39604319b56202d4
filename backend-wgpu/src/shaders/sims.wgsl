// The Sims token loss on a, b [batch, tokens, dim]: s_X[b, j] = cos(X[b,0], X[b,j]),
// j ≥ 1, norms clamped at EPS; loss = mean((s_A − s_B)²).
//
// sims_rows: one workgroup per token row r = (b, t): st[4r..4r+4] = [A₀·Aₜ, Aₜ·Aₜ,
//   B₀·Bₜ, Bₜ·Bₜ] (strided shares, then trees in workgroup memory).
// sims_pairs: (s_A − s_B)² per pair, one partial sum per workgroup (the host's
//   mean_of_partials finishes the mean).
// sims_grad: one invocation per element of x (A or B), accumulating into dx.
//
// Bindings (each entry point binds only those it uses):
//   0 params (uniform), 1 a / x (read), 2 b / st (read), 3 out / dx (read_write),
//   4 st (read_write, sims_rows).

struct Params {
    n: u32,       // elements per tensor (sims_grad) or pairs (sims_pairs)
    batch: u32,
    tokens: u32,
    dim: u32,
    side: u32,    // sims_grad: 0 for A, 1 for B
    coef: f32,    // sims_grad: ±2·scale/(batch·(tokens − 1))
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_out: array<f32>;

const EPS: f32 = 1e-8;
// Pairs each invocation of sims_pairs sums before the tree (the host's ITEMS).
const ITEMS: u32 = 16u;

var<workgroup> red: array<f32, 256>;

// Σ v over the workgroup (every invocation gets it). Call in uniform control flow.
fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// max(‖x‖, EPS) of a squared norm, as the reference's max (a NaN norm gives EPS; the
// NaN still reaches the cosine through the dot product).
fn clamp_norm(nrm: f32) -> f32 {
    return select(EPS, nrm, nrm > EPS);
}

@compute @workgroup_size(256)
fn sims_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wid, nwg);
    if (r >= p.batch * p.tokens) {
        return;
    }
    let o0 = (r / p.tokens) * p.tokens * p.dim;
    let ot = r * p.dim;
    var da = 0.0;
    var sa = 0.0;
    var db = 0.0;
    var sb = 0.0;
    for (var c = lid; c < p.dim; c += WG) {
        let at = a[ot + c];
        let bt = b[ot + c];
        da += a[o0 + c] * at;
        sa += at * at;
        db += b[o0 + c] * bt;
        sb += bt * bt;
    }
    let v0 = wg_sum(lid, da);
    let v1 = wg_sum(lid, sa);
    let v2 = wg_sum(lid, db);
    let v3 = wg_sum(lid, sb);
    if (lid == 0u) {
        st_out[4u * r] = v0;
        st_out[4u * r + 1u] = v1;
        st_out[4u * r + 2u] = v2;
        st_out[4u * r + 3u] = v3;
    }
}

// s of pair (batch row bi, token j ≥ 1) on side `side` (0: A, 1: B) from st (bound as b).
fn cosine(bi: u32, j: u32, side: u32) -> f32 {
    let r0 = bi * p.tokens;
    let m0 = clamp_norm(sqrt(b[4u * r0 + 2u * side + 1u]));
    let mj = clamp_norm(sqrt(b[4u * (r0 + j) + 2u * side + 1u]));
    return b[4u * (r0 + j) + 2u * side] / (m0 * mj);
}

// out[group] = Σ (s_A − s_B)² over the group's pairs (st bound as b).
@compute @workgroup_size(256)
fn sims_pairs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let group = group_index(wid, nwg);
    let base = group * (WG * ITEMS) + lid;
    let per = p.tokens - 1u;
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let q = base + k * WG;
        if (q < p.n) {
            let bi = q / per;
            let j = q - bi * per + 1u;
            let d = cosine(bi, j, 0u) - cosine(bi, j, 1u);
            acc += d * d;
        }
    }
    let total = wg_sum(lid, acc);
    if (lid == 0u) {
        out[group] = total;
    }
}

// dx += ∂(scale·loss)/∂x for x = A (side 0) or B (side 1), x bound as a, st as b.
// With g = coef·(s_A − s_B) and m = max(‖·‖, EPS):
//   token j ≥ 1: g·(x₀/(m₀mⱼ) − s·xⱼ/mⱼ²)   (second term only when ‖xⱼ‖ > EPS),
//   token 0:     Σⱼ g·(xⱼ/(m₀mⱼ) − s·x₀/m₀²) (second term only when ‖x₀‖ > EPS).
@compute @workgroup_size(256)
fn sims_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.n) {
        return;
    }
    let row = e / p.dim;
    let c = e - row * p.dim;
    let bi = row / p.tokens;
    let t = row - bi * p.tokens;
    let r0 = bi * p.tokens;
    let o0 = r0 * p.dim + c;
    let side = p.side;
    let n0 = sqrt(b[4u * r0 + 2u * side + 1u]);
    let m0 = clamp_norm(n0);
    if (t > 0u) {
        let nj = sqrt(b[4u * row + 2u * side + 1u]);
        let mj = clamp_norm(nj);
        let g = p.coef * (cosine(bi, t, 0u) - cosine(bi, t, 1u));
        let s = b[4u * row + 2u * side] / (m0 * mj);
        var term = a[o0] / (m0 * mj);
        if (nj > EPS) {
            term -= s * a[e] / (mj * mj);
        }
        out[e] = out[e] + g * term;
    } else {
        let x0 = a[o0];
        let live0 = n0 > EPS;
        var acc = 0.0;
        for (var j = 1u; j < p.tokens; j++) {
            let nj = sqrt(b[4u * (r0 + j) + 2u * side + 1u]);
            let mj = clamp_norm(nj);
            let g = p.coef * (cosine(bi, j, 0u) - cosine(bi, j, 1u));
            let s = b[4u * (r0 + j) + 2u * side] / (m0 * mj);
            var term = a[o0 + j * p.dim] / (m0 * mj);
            if (live0) {
                term -= s * x0 / (m0 * m0);
            }
            acc += g * term;
        }
        out[e] = out[e] + acc;
    }
}
