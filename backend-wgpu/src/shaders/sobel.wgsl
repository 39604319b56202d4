// Sobel gradients on NCHW (per channel, zero padding 1) and the fused Sobel loss.
//
// Kx = [[-1,0,1],[-2,0,2],[-1,0,1]], Ky = Kxᵀ (cross-correlation). With the 3×3
// neighbourhood of a pixel, p1 = x[r+1,c+1] − x[r−1,c−1] and p2 = x[r−1,c+1] − x[r+1,c−1]
// give gx = (p1 + p2) + 2(x[r,c+1] − x[r,c−1]) and gy = (p1 − p2) + 2(x[r+1,c] − x[r−1,c]):
// only each kernel's six non-zero taps enter, so a NaN reaches exactly the outputs whose
// non-zero taps touch it (as in the reference). The adjoint of a correlation with Kx, Ky
// is the correlation with −Kx, −Ky: dx = −(Sx(Dx) + Sy(Dy)) of the effective gradients.
//
// Bindings (each entry point uses a subset; the host binds those):
//   0 params, 1 a (read: x, pred, a gradient field or partials), 2 b (read: target or a
//   gradient field), 4 c (read: dgy), 5 dm (read: dmagnitude),
//   10 gx, 11 gy, 12 mag (read_write: forward outputs), 13 eff (read_write: effective
//   gradients), 14 out (read_write: dx, dpred, dtarget), 15 partials (read_write).

struct Params {
    n: u32,        // N·C·H·W (pixels), or the number of partials for `reduce`
    height: u32,
    width: u32,
    mode: u32,     // kernel specific (see each entry point)
    off_x: u32,    // gather: offset of the Dx field in `a`
    off_y: u32,    // gather: offset of the Dy field in `b`
    use_x: u32,    // a Dx field / dgx is present
    use_y: u32,    // a Dy field / dgy is present
    c: f32,        // loss: 2·scale/N; reduce: the divisor of the final sum
    eps: f32,      // ε of the magnitude
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> cgy: array<f32>;
@group(0) @binding(5) var<storage, read> dm: array<f32>;
@group(0) @binding(10) var<storage, read_write> gx_out: array<f32>;
@group(0) @binding(11) var<storage, read_write> gy_out: array<f32>;
@group(0) @binding(12) var<storage, read_write> mag_out: array<f32>;
@group(0) @binding(13) var<storage, read_write> eff: array<f32>;
@group(0) @binding(14) var<storage, read_write> out: array<f32>;
@group(0) @binding(15) var<storage, read_write> partials: array<f32>;

// Pixels (or partials) per invocation of the loss and reduce passes; a workgroup
// covers WG·PER of them.
const PER: u32 = 4u;

// A pixel: the start of its plane and its row and column.
struct Pixel {
    base: u32,
    r: i32,
    c: i32,
}

fn pixel(i: u32) -> Pixel {
    let hw = p.height * p.width;
    let plane = i / hw;
    let k = i - plane * hw;
    let r = k / p.width;
    return Pixel(plane * hw, i32(r), i32(k - r * p.width));
}

fn inside(r: i32, c: i32) -> bool {
    return r >= 0 && c >= 0 && r < i32(p.height) && c < i32(p.width);
}

// x[r, c] of the plane at `base` of `a` (`b`), zero outside the plane.
fn tap_a(base: u32, r: i32, c: i32) -> f32 {
    if (!inside(r, c)) {
        return 0.0;
    }
    return a[base + u32(r) * p.width + u32(c)];
}

fn tap_b(base: u32, r: i32, c: i32) -> f32 {
    if (!inside(r, c)) {
        return 0.0;
    }
    return b[base + u32(r) * p.width + u32(c)];
}

// (corr(a, Kx), corr(a, Ky)) at pixel q of the plane at `base` (+ the pixel's own base).
fn sobel_a(base: u32, q: Pixel) -> vec2<f32> {
    let o = base + q.base;
    let p1 = tap_a(o, q.r + 1, q.c + 1) - tap_a(o, q.r - 1, q.c - 1);
    let p2 = tap_a(o, q.r - 1, q.c + 1) - tap_a(o, q.r + 1, q.c - 1);
    let e = tap_a(o, q.r, q.c + 1) - tap_a(o, q.r, q.c - 1);
    let f = tap_a(o, q.r + 1, q.c) - tap_a(o, q.r - 1, q.c);
    return vec2<f32>((p1 + p2) + 2.0 * e, (p1 - p2) + 2.0 * f);
}

fn sobel_b(base: u32, q: Pixel) -> vec2<f32> {
    let o = base + q.base;
    let p1 = tap_b(o, q.r + 1, q.c + 1) - tap_b(o, q.r - 1, q.c - 1);
    let p2 = tap_b(o, q.r - 1, q.c + 1) - tap_b(o, q.r + 1, q.c - 1);
    let e = tap_b(o, q.r, q.c + 1) - tap_b(o, q.r, q.c - 1);
    let f = tap_b(o, q.r + 1, q.c) - tap_b(o, q.r - 1, q.c);
    return vec2<f32>((p1 + p2) + 2.0 * e, (p1 - p2) + 2.0 * f);
}

// corr(a, Kx) at q of the field at offset `base` of `a`.
fn sx_a(base: u32, q: Pixel) -> f32 {
    let o = base + q.base;
    let p1 = tap_a(o, q.r + 1, q.c + 1) - tap_a(o, q.r - 1, q.c - 1);
    let p2 = tap_a(o, q.r - 1, q.c + 1) - tap_a(o, q.r + 1, q.c - 1);
    return (p1 + p2) + 2.0 * (tap_a(o, q.r, q.c + 1) - tap_a(o, q.r, q.c - 1));
}

// corr(b, Ky) at q of the field at offset `base` of `b`.
fn sy_b(base: u32, q: Pixel) -> f32 {
    let o = base + q.base;
    let p1 = tap_b(o, q.r + 1, q.c + 1) - tap_b(o, q.r - 1, q.c - 1);
    let p2 = tap_b(o, q.r - 1, q.c + 1) - tap_b(o, q.r + 1, q.c - 1);
    return (p1 - p2) + 2.0 * (tap_b(o, q.r + 1, q.c) - tap_b(o, q.r - 1, q.c));
}

// √(gx² + gy² + ε).
fn magnitude(g: vec2<f32>) -> f32 {
    return sqrt(g.x * g.x + g.y * g.y + p.eps);
}

// gx, gy, magnitude of x (`a`), one invocation per pixel.
@compute @workgroup_size(256)
fn sobel_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let g = sobel_a(0u, pixel(i));
    gx_out[i] = g.x;
    gy_out[i] = g.y;
    mag_out[i] = magnitude(g);
}

// Sobel backward's effective gradients into eff[0, n) (Dx) and eff[n, 2n) (Dy):
// D = dg + (dmag/|g|)·g with g the Sobel of x (`a`); dgx from `b` when use_x, dgy from
// `cgy` when use_y.
@compute @workgroup_size(256)
fn sobel_eff(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let g = sobel_a(0u, pixel(i));
    let q = dm[i] / magnitude(g);
    var ex = 0.0;
    var ey = 0.0;
    if (p.use_x != 0u) {
        ex = b[i];
    }
    if (p.use_y != 0u) {
        ey = cgy[i];
    }
    eff[i] = ex + q * g.x;
    eff[p.n + i] = ey + q * g.y;
}

// out updated with g = Sx(Dx) + Sy(Dy), Dx the field at off_x of `a` (zero unless use_x),
// Dy the field at off_y of `b` (zero unless use_y): mode 0 out = −g, 1 out −= g,
// 2 out += g. One invocation per pixel.
@compute @workgroup_size(256)
fn sobel_gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let q = pixel(i);
    var sx = 0.0;
    var sy = 0.0;
    if (p.use_x != 0u) {
        sx = sx_a(p.off_x, q);
    }
    if (p.use_y != 0u) {
        sy = sy_b(p.off_y, q);
    }
    let g = sx + sy;
    if (p.mode == 0u) {
        out[i] = -g;
    } else if (p.mode == 1u) {
        out[i] = out[i] - g;
    } else {
        out[i] = out[i] + g;
    }
}

// The loss term of pixel i between pred (`a`) and target (`b`): mode 0 magnitude
// (M_p − M_t)², mode 1 components (gx_p − gx_t)² + (gy_p − gy_t)².
fn loss_term(i: u32) -> f32 {
    let q = pixel(i);
    let gp = sobel_a(0u, q);
    let gt = sobel_b(0u, q);
    if (p.mode == 0u) {
        let d = magnitude(gp) - magnitude(gt);
        return d * d;
    }
    let u = gp.x - gt.x;
    let v = gp.y - gt.y;
    return u * u + v * v;
}

var<workgroup> part: array<f32, 256>;

// Tree sum of part[0..WG) into part[0] (every invocation of the group calls it).
fn tree(lid: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
}

// partials[g] = Σ of the loss terms of the g-th run of WG·PER pixels: PER terms per
// invocation (strided by WG), then a tree in workgroup memory.
@compute @workgroup_size(256)
fn sobel_loss_terms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let start = g * WG * PER;
    var acc = 0.0;
    for (var k = 0u; k < PER; k++) {
        let i = start + k * WG + lid;
        if (i < p.n) {
            acc += loss_term(i);
        }
    }
    part[lid] = acc;
    tree(lid);
    if (lid == 0u) {
        partials[g] = part[0];
    }
}

// partials[g] = (Σ of a[g·WG·PER ..][..WG·PER]) / c, over the n partials of `a`: one
// level of the reduction (c = 1), or the last one (one group, c = N: the mean).
@compute @workgroup_size(256)
fn sobel_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    let start = g * WG * PER;
    var acc = 0.0;
    for (var k = 0u; k < PER; k++) {
        let i = start + k * WG + lid;
        if (i < p.n) {
            acc += a[i];
        }
    }
    part[lid] = acc;
    tree(lid);
    if (lid == 0u) {
        partials[g] = part[0] / p.c;
    }
}

// The loss's effective gradients between pred (`a`) and target (`b`), c = 2·scale/N:
//   mode 0 (components): eff[0,n) = c(gx_p − gx_t), eff[n,2n) = c(gy_p − gy_t) (pred's;
//     target's is their negation);
//   mode 1 (magnitude, pred): with k_p = c(M_p − M_t)/M_p, eff = (k_p·gx_p, k_p·gy_p);
//   mode 2 (magnitude, both): also eff[2n,3n) = −k_t·gx_t, eff[3n,4n) = −k_t·gy_t with
//     k_t = c(M_p − M_t)/M_t.
@compute @workgroup_size(256)
fn sobel_loss_eff(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) {
        return;
    }
    let q = pixel(i);
    let gp = sobel_a(0u, q);
    let gt = sobel_b(0u, q);
    if (p.mode == 0u) {
        eff[i] = p.c * (gp.x - gt.x);
        eff[p.n + i] = p.c * (gp.y - gt.y);
        return;
    }
    let mp = magnitude(gp);
    let mt = magnitude(gt);
    let d = p.c * (mp - mt);
    let kp = d / mp;
    eff[i] = kp * gp.x;
    eff[p.n + i] = kp * gp.y;
    if (p.mode == 2u) {
        let kt = d / mt;
        eff[2u * p.n + i] = -(kt * gt.x);
        eff[3u * p.n + i] = -(kt * gt.y);
    }
}
