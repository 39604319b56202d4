// Fused AdamW with global-norm clipping, all on the device:
//   1. sum_squares (one dispatch per tensor): partial Σg² of each CHUNK of the gradient
//      into partials[offset + chunk];
//   2. sum_partials (as many levels as needed) then finish (one workgroup): the global
//      norm √Σ and the clip coefficient into stat = [norm, clip];
//   3. update (one dispatch per tensor): p, m, v with the gradient times stat[1].
// Every sum is a 16-term strided run per invocation then a 256-wide tree, so the
// error grows like log n, not n.
//
// Bindings: 0 params (uniform); reductions: 1 src (read), 3 dst (read_write);
// update: 1 grad (read), 2 stat (read), 3 param, 4 exp_avg, 5 exp_avg_sq (read_write).

struct Params {
    n: u32,             // elements (of the tensor, or of the partials summed)
    offset: u32,        // sum_squares: first partial slot of this tensor
    square: u32,        // sum_squares: 1, sum_partials: 0
    clip_on: u32,       // finish: whether max_grad_norm is set
    max_norm: f32,      // finish: max_grad_norm
    clip_eps: f32,      // finish: CLIP_NORM_EPS
    decay: f32,         // update: 1 − lr·wd
    step_size: f32,     // update: lr/(1 − β1^t)
    inv_sqrt_bc2: f32,  // update: 1/√(1 − β2^t)
    eps: f32,
    beta1: f32,
    beta2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> stat: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<f32>;

// Elements one workgroup reduces (the host's CHUNK): 16 per invocation.
const CHUNK: u32 = 4096u;

var<workgroup> partial: array<f32, 256>;

// Tree over partial[0 .. 256]; the sum ends in partial[0].
fn tree(lid: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
}

// dst[offset + g] = Σ src[j]² (or Σ src[j]) over chunk g of src[0 .. n].
@compute @workgroup_size(256)
fn sum_squares(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    // The host's x/y/z split may launch a few workgroups past ⌈n/CHUNK⌉.
    if (g >= (p.n / CHUNK) + select(0u, 1u, p.n % CHUNK != 0u)) {
        return;
    }
    let start = g * CHUNK;
    let count = min(p.n - start, CHUNK);
    var acc = 0.0;
    for (var j = lid; j < count; j += WG) {
        let v = src[start + j];
        if (p.square != 0u) {
            acc += v * v;
        } else {
            acc += v;
        }
    }
    partial[lid] = acc;
    tree(lid);
    if (lid == 0u) {
        dst[p.offset + g] = partial[0];
    }
}

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// One workgroup: norm = √Σ src[0 .. n], clip = min(1, max_norm/(norm + 1e-6)) with a
// NaN kept (as torch.clamp); dst = [norm, clip].
@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var j = lid; j < p.n; j += WG) {
        acc += src[j];
    }
    partial[lid] = acc;
    tree(lid);
    if (lid == 0u) {
        let norm = sqrt(partial[0]);
        var clip = 1.0;
        if (p.clip_on != 0u) {
            let c = p.max_norm / (norm + p.clip_eps);
            if (is_nan(c) || c < 1.0) {
                clip = c;
            }
        }
        dst[0] = norm;
        dst[1] = clip;
    }
}

// One element of one tensor, brain_core::reference::adamw::adamw_element operation for
// operation on the gradient times the clip coefficient.
@compute @workgroup_size(256)
fn update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let g = src[i] * stat[1];
    let param = dst[i] * p.decay;
    let m = p.beta1 * exp_avg[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * exp_avg_sq[i] + (1.0 - p.beta2) * g * g;
    let denom = sqrt(v) * p.inv_sqrt_bc2 + p.eps;
    dst[i] = param - p.step_size * m / denom;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
}
