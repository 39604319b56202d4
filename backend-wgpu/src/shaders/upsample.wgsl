// Integer-factor upsampling on NCHW, PyTorch rules: [N,C,H,W] → [N,C,H·k,W·k].
//
// Forward: one invocation per output element. Backward: one invocation per input
// element, gathering every output that reads it (deterministic, no atomics).
//
// Bindings: 0 params, 1 src (read: x or dy), 3 dst (read_write: y or dx).

struct Params {
    n: u32,        // elements of dst
    height: u32,   // input H
    width: u32,    // input W
    factor: u32,   // k
    inv_k: f32,    // 1/k rounded to f32
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

// Bilinear source taps of output index `o` along an axis of input length `len`
// (align_corners = false): s = (o + ½)/k − ½ clamped at 0, i0 = ⌊s⌋ (≤ len − 1),
// i1 = min(i0 + 1, len − 1), λ = s − i0, as the reference's `bilinear_source`.
struct Taps {
    i0: u32,
    i1: u32,
    l: f32,
}

fn taps(o: u32, len: u32) -> Taps {
    var s = (f32(o) + 0.5) * p.inv_k - 0.5;
    if (s < 0.0) {
        s = 0.0;
    }
    let i0 = min(u32(floor(s)), len - 1u);
    var i1 = i0;
    if (i0 + 1u < len) {
        i1 = i0 + 1u;
    }
    return Taps(i0, i1, s - f32(i0));
}

// y[.., oy, ox] = x[.., oy/k, ox/k]
@compute @workgroup_size(256)
fn nearest_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.n) {
        return;
    }
    let ow = p.width * p.factor;
    let oh = p.height * p.factor;
    let row = e / ow;            // plane·oh + oy
    let ox = e - row * ow;
    let plane = row / oh;
    let oy = row - plane * oh;
    dst[e] = src[(plane * p.height + oy / p.factor) * p.width + ox / p.factor];
}

// y = (1−λy)((1−λx)x00 + λx·x01) + λy((1−λx)x10 + λx·x11), the reference's formula (a
// non-finite tap reaches the output even with a zero weight, as there).
@compute @workgroup_size(256)
fn bilinear_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.n) {
        return;
    }
    let ow = p.width * p.factor;
    let oh = p.height * p.factor;
    let row = e / ow;
    let ox = e - row * ow;
    let plane = row / oh;
    let oy = row - plane * oh;
    let ty = taps(oy, p.height);
    let tx = taps(ox, p.width);
    let base = plane * p.height * p.width;
    let r0 = base + ty.i0 * p.width;
    let r1 = base + ty.i1 * p.width;
    let ly = ty.l;
    let lx = tx.l;
    dst[e] = (1.0 - ly) * ((1.0 - lx) * src[r0 + tx.i0] + lx * src[r0 + tx.i1])
        + ly * ((1.0 - lx) * src[r1 + tx.i0] + lx * src[r1 + tx.i1]);
}

// dx[.., iy, ix] = Σ of the k×k block of dy above it.
@compute @workgroup_size(256)
fn nearest_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.n) {
        return;
    }
    let k = p.factor;
    let ow = p.width * k;
    let row = e / p.width;       // plane·H + iy
    let ix = e - row * p.width;
    var acc = 0.0;
    for (var a = 0u; a < k; a++) {
        let o = (row * k + a) * ow + ix * k;
        for (var b = 0u; b < k; b++) {
            acc += src[o + b];
        }
    }
    dst[e] = acc;
}

// Which of the taps `t` of one output along an axis are input index `i`: a tap that is
// counts even with a zero weight, and the two count separately when i0 = i1 (at the
// border), as in the reference's scatter, so a non-finite dy reaches exactly the inputs
// the reference sends it to (0·∞ = NaN).
fn hits(t: Taps, i: u32) -> vec2<bool> {
    return vec2<bool>(t.i0 == i, t.i1 == i);
}

// dx[.., iy, ix] = Σ over the outputs whose taps include (iy, ix) of weight·dy, each
// output's (y0, x0), (y0, x1), (y1, x0), (y1, x1) terms in the reference's order.
// An output oy reads row iy only when its source coordinate lies in [iy − 1, iy + 1)
// (or is clamped to 0), so oy ranges over [(iy − 1)·k, (iy + 2)·k) ∩ [0, H·k).
@compute @workgroup_size(256)
fn bilinear_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    if (e >= p.n) {
        return;
    }
    let k = p.factor;
    let oh = p.height * k;
    let ow = p.width * k;
    let row = e / p.width;
    let ix = e - row * p.width;
    let plane = row / p.height;
    let iy = row - plane * p.height;
    let y_lo = select(0u, (iy - 1u) * k, iy > 0u);
    let y_hi = min((iy + 2u) * k, oh);
    let x_lo = select(0u, (ix - 1u) * k, ix > 0u);
    let x_hi = min((ix + 2u) * k, ow);
    let base = plane * oh * ow;
    var acc = 0.0;
    for (var oy = y_lo; oy < y_hi; oy++) {
        let ty = taps(oy, p.height);
        let hy = hits(ty, iy);
        if (!any(hy)) {
            continue;
        }
        let wy = vec2<f32>(1.0 - ty.l, ty.l);
        let o = base + oy * ow;
        for (var ox = x_lo; ox < x_hi; ox++) {
            let tx = taps(ox, p.width);
            let hx = hits(tx, ix);
            if (!any(hx)) {
                continue;
            }
            let wx = vec2<f32>(1.0 - tx.l, tx.l);
            let g = src[o + ox];
            for (var a = 0u; a < 2u; a++) {
                for (var b = 0u; b < 2u; b++) {
                    if (hy[a] && hx[b]) {
                        acc += (wy[a] * wx[b]) * g;
                    }
                }
            }
        }
    }
    dst[e] = acc;
}
