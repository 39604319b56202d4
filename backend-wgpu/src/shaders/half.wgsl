// f16 storage kernels (the f16 backend, `enable f16;` prepended by the host). f16
// tensors are bound as pairs (`vec2<f16>`, one 32-bit word each: a tensor of n
// elements occupies ceil(n/2) words, the last half of an odd tensor is padding), so
// one invocation handles one word. Loads are widened to f32, arithmetic is f32, and
// each store rounds once to f16.
//
// Bindings (the host binds only those an entry point uses):
//   0 params (uniform), 1 a (read, f16 pairs), 2 b (read, f16 pairs),
//   3 out (read_write, f16 pairs), 4 wide (read, f32 pairs), 5 wide_out (read_write,
//   f32 pairs), 6 words (read_write, raw words).

struct Params {
    n: u32,      // words (element pairs)
    alpha: f32,  // scalar of scale/axpy
    bits: u32,   // fill: the f16 value's bits, twice
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec2<f16>>;
@group(0) @binding(2) var<storage, read> b: array<vec2<f16>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f16>>;
@group(0) @binding(4) var<storage, read> wide: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> wide_out: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> words: array<u32>;

// wide_out = f32(a): exact.
@compute @workgroup_size(256)
fn widen(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        wide_out[i] = vec2<f32>(a[i]);
    }
}

// out = f16(wide): rounded once.
@compute @workgroup_size(256)
fn narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = vec2<f16>(wide[i]);
    }
}

// words = bits: fill with an f16 value rounded on the host (exact, NaN included).
@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        words[i] = p.bits;
    }
}

// out = a + b
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = vec2<f16>(vec2<f32>(a[i]) + vec2<f32>(b[i]));
    }
}

// out *= alpha
@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = vec2<f16>(vec2<f32>(out[i]) * p.alpha);
    }
}

// out += alpha·a
@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i < p.n) {
        out[i] = vec2<f16>(vec2<f32>(out[i]) + p.alpha * vec2<f32>(a[i]));
    }
}
