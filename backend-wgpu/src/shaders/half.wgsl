// f16 storage kernels (the f16 backend; the host prepends `enable f16;`). An f16 tensor
// of n elements is ceil(n/2) 32-bit words, each a pair of f16 (first element in the
// low half; the high half of an odd tensor's last word is padding), so one invocation
// handles one word. Loads are widened to f32 (exact: `unpack2x16float`), arithmetic
// is f32, and each store rounds once to f16 with `f16_bits`: round to nearest, ties to
// even, on every adapter (WGSL lets an f32→f16 conversion return either neighbour).
//
// Bindings (the host binds only those an entry point uses):
//   0 params (uniform), 1 a (read, f16 pairs), 2 b (read, f16 pairs),
//   3 out (read_write, f16 pairs), 4 wide (read, f32 pairs), 5 wide_out (read_write,
//   f32 pairs).

struct Params {
    n: u32,      // words (element pairs)
    alpha: f32,  // scalar of scale/axpy
    bits: u32,   // fill: the f16 value's bits, twice
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read> wide: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> wide_out: array<vec2<f32>>;

// A word of two f16, widened (exact).
fn load(w: u32) -> vec2<f32> {
    return unpack2x16float(w);
}

// Two f32 rounded to a word of two f16.
fn store(v: vec2<f32>) -> u32 {
    return f16_bits(v.x) | (f16_bits(v.y) << 16u);
}

// wide_out = f32(a): exact.
@compute @workgroup_size(256)
fn widen(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        wide_out[i] = load(a[i]);
    }
}

// out = f16(wide): rounded once.
@compute @workgroup_size(256)
fn narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = store(wide[i]);
    }
}

// out = bits: fill with an f16 value rounded on the host (exact, NaN included).
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = p.bits;
    }
}

// out = a + b
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = store(load(a[i]) + load(b[i]));
    }
}

// out *= alpha
@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = store(load(out[i]) * p.alpha);
    }
}

// out += alpha·a
@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = store(load(out[i]) + p.alpha * load(a[i]));
    }
}
