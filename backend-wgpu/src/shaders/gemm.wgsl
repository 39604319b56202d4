// C = alpha·op(A)·op(B) + beta·C, row-major, strided-batched (see brain_core::Gemm).
//
// One workgroup of 16×16 invocations computes a 64×64 tile of C; each invocation owns
// a 4×4 block strided by 16 (rows ty + 16r, columns tx + 16s), so that neighbouring
// invocations read neighbouring workgroup-memory words and write neighbouring words
// of C. The k dimension advances 16 at a time through workgroup memory.
//
// Bindings: 0 params (uniform), 1 a (read), 2 b (read), 3 c (read_write).
//
// The matrices may be blocks of larger ones (leading dimensions lda, ldb, ldc) starting
// at element offsets off_a, off_b, off_c of the bound ranges: the host splits products
// whose operands exceed one storage binding into such blocks (see ops/gemm.rs).

// Which operands are stored transposed: pipeline constants, so each of the four
// variants is compiled without a branch in its loads.
override TRANS_A: bool = false;
override TRANS_B: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    tiles_m: u32,
    groups: u32,     // tiles_m·tiles_n·batch
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    use_beta: u32,   // 0: C is overwritten, never read (NaN in C does not leak through)
    alpha: f32,
    beta: f32,
    lda: u32,        // row pitch of A as stored (m if TRANS_A, else k for a whole matrix)
    ldb: u32,        // row pitch of B as stored (k if TRANS_B, else n)
    ldc: u32,
    off_a: u32,      // element of the binding where the first matrix of the batch starts
    off_b: u32,
    off_c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
// Row pitch of the tiles: 65, not 64, so that stores of a column (the transposed
// loads) fall in different banks.
const PITCH: u32 = 65u;

// a_tile[kk·PITCH + i] = op(A)[row0 + i, k0 + kk]; b_tile[kk·PITCH + j] = op(B)[k0 + kk, col0 + j].
var<workgroup> a_tile: array<f32, 1040>;
var<workgroup> b_tile: array<f32, 1040>;

// op(A)[i, l], zero outside the matrix so that edge tiles need no other test.
fn load_a(base: u32, i: u32, l: u32) -> f32 {
    if (i >= p.m || l >= p.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return a[base + l * p.lda + i];
    }
    return a[base + i * p.lda + l];
}

// op(B)[l, j], zero outside the matrix.
fn load_b(base: u32, l: u32, j: u32) -> f32 {
    if (l >= p.k || j >= p.n) {
        return 0.0;
    }
    if (TRANS_B) {
        return b[base + j * p.ldb + l];
    }
    return b[base + l * p.ldb + j];
}

@compute @workgroup_size(16, 16)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    // Linear tile index (the host splits long dispatches over x, y and z).
    let tile = group_index(wid, nwg);
    if (tile >= p.groups) {
        return;
    }
    let tn = tile % p.tiles_n;
    let rest = tile / p.tiles_n;
    let tm = rest % p.tiles_m;
    let batch = rest / p.tiles_m;
    let row0 = tm * BM;
    let col0 = tn * BN;
    let a_base = p.off_a + batch * p.stride_a;
    let b_base = p.off_b + batch * p.stride_b;
    let c_base = p.off_c + batch * p.stride_c;
    let tx = lid.x;
    let ty = lid.y;

    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // 1024 elements per tile, 4 per invocation; consecutive invocations read
        // consecutive addresses of the stored matrix in either layout.
        for (var r = 0u; r < 4u; r++) {
            let e = li + 256u * r;
            var i: u32;
            var la: u32;
            if (TRANS_A) {
                la = e / BM;
                i = e % BM;
            } else {
                i = e / BK;
                la = e % BK;
            }
            a_tile[la * PITCH + i] = load_a(a_base, row0 + i, k0 + la);
            var j: u32;
            var lb: u32;
            if (TRANS_B) {
                j = e / BK;
                lb = e % BK;
            } else {
                lb = e / BN;
                j = e % BN;
            }
            b_tile[lb * PITCH + j] = load_b(b_base, k0 + lb, col0 + j);
        }
        workgroupBarrier();
        for (var l = 0u; l < BK; l++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                av[r] = a_tile[l * PITCH + ty + 16u * r];
                bv[r] = b_tile[l * PITCH + tx + 16u * r];
            }
            for (var r = 0u; r < 4u; r++) {
                for (var s = 0u; s < 4u; s++) {
                    acc[r * 4u + s] += av[r] * bv[s];
                }
            }
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < 4u; r++) {
        let i = row0 + ty + 16u * r;
        for (var s = 0u; s < 4u; s++) {
            let j = col0 + tx + 16u * s;
            if (i < p.m && j < p.n) {
                let idx = c_base + i * p.ldc + j;
                var v = p.alpha * acc[r * 4u + s];
                if (p.use_beta != 0u) {
                    v += p.beta * c[idx];
                }
                c[idx] = v;
            }
        }
    }
}
