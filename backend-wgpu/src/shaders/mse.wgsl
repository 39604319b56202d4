// Mean squared error, and the sum reduction every loss of this backend finishes with.
//
// Sums run in two levels per workgroup: each invocation adds ITEMS elements strided by
// WG (coalesced), then a tree over the WG invocations in workgroup memory; one
// partial per workgroup. The host repeats `reduce_sum` over the partials until one
// workgroup is left, whose pass writes the mean. Error ~(ITEMS + log2 WG) per level,
// not N·u.
//
// Bindings (each entry point binds only those it uses):
//   0 params (uniform), 1 a / src (read), 2 b (read), 3 out / da (read_write),
//   4 db (read_write).

struct Params {
    n: u32,       // elements (of a and b, or of src)
    finish: u32,  // 1: one workgroup, write out[0] = sum / div; 0: out[group] = sum
    div: f32,     // the mean's divisor (finish only)
    coef: f32,    // the gradient's 2·scale/N (mse_grad*)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> out2: array<f32>;

// Elements each invocation adds before the tree (the host's `ITEMS`).
const ITEMS: u32 = 16u;

var<workgroup> red: array<f32, 256>;

// Tree sum of `v` over the workgroup; invocation 0 writes it where `finish` says.
fn tree_store(lid: u32, group: u32, v: f32) {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        if (p.finish != 0u) {
            out[0] = red[0] / p.div;
        } else {
            out[group] = red[0];
        }
    }
}

// out[group] = Σ (a − b)² over the group's WG·ITEMS elements.
@compute @workgroup_size(256)
fn mse_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let group = group_index(wid, nwg);
    let base = group * (WG * ITEMS) + lid;
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = base + k * WG;
        if (i < p.n) {
            let d = a[i] - b[i];
            acc += d * d;
        }
    }
    tree_store(lid, group, acc);
}

// out[group] = Σ src over the group's WG·ITEMS elements (src bound as `a`).
@compute @workgroup_size(256)
fn reduce_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let group = group_index(wid, nwg);
    let base = group * (WG * ITEMS) + lid;
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = base + k * WG;
        if (i < p.n) {
            acc += a[i];
        }
    }
    tree_store(lid, group, acc);
}

// out[i] += coef·(a[i] − b[i]): da with coef, or db with −coef (the negation is exact).
@compute @workgroup_size(256)
fn mse_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = out[i] + p.coef * (a[i] - b[i]);
    }
}

// da[i] += g, db[i] −= g with g = coef·(a[i] − b[i]).
@compute @workgroup_size(256)
fn mse_grad2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        let g = p.coef * (a[i] - b[i]);
        out[i] = out[i] + g;
        out2[i] = out2[i] - g;
    }
}
