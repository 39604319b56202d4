// Bias over the channel dim of [outer, channels, inner]: add, and the gradient sum.
//
// Bindings: 0 params (uniform), 1 src (read: bias or dy), 3 dst (read_write: y or dbias).

// A tensor larger than one storage binding is processed in chunks (the host binds
// a range of y or dy per dispatch): `n` and `outer` are the chunk's, `offset` the
// index in y of the chunk's first element (bias_add only).
struct Params {
    n: u32,        // outer·channels·inner
    channels: u32,
    inner: u32,
    outer: u32,
    offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;



// y[o,c,i] += bias[c], one invocation per element of y.
@compute @workgroup_size(256)
fn bias_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = group_index(wid, nwg) * WG + lid;
    if (e < p.n) {
        let c = ((p.offset + e) / p.inner) % p.channels;
        dst[e] = dst[e] + src[c];
    }
}

var<workgroup> partial: array<f32, 256>;

// dbias[c] += Σ_{o,i} dy[o,c,i], one workgroup per channel: each invocation sums a
// strided share, then a tree in workgroup memory (error ~(count/256 + 8)·u, not count·u).
@compute @workgroup_size(256)
fn bias_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let c = group_index(wid, nwg);
    if (c >= p.channels) {
        return;
    }
    let count = p.outer * p.inner;
    var acc = 0.0;
    for (var j = lid; j < count; j += WG) {
        let o = j / p.inner;
        let i = j - o * p.inner;
        acc += src[(o * p.channels + c) * p.inner + i];
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        dst[c] = dst[c] + partial[0];
    }
}
