// Shared by every kernel family: prepended to each family's file when its module is
// built (see gpu::Shader), so the helpers are written once.

// Invocations per workgroup of the one-element-per-invocation kernels (the host's
// `WG`).
const WG: u32 = 256u;

// Linear workgroup index, undoing the host's x/y/z split of long dispatches (no
// dimension may exceed the adapter's max_compute_workgroups_per_dimension).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}

// Linear element index of a WG-wide invocation.
fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return group_index(wid, nwg) * WG + lid;
}
