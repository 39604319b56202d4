// Linear CKA on n×n Gram matrices K, L (biased and unbiased HSIC), in four passes
// through one scratch buffer w, then (backward) one invocation per gradient entry.
//
// HSIC is summed over *centred* entries, not from the closed form's uncentred sums
// (whose terms cancel when the Grams have a large mean): with row sums r, column
// sums c and total s (of K̃, the zero-diagonal K, for the unbiased estimator),
//   biased:   Kc[i,j] = K[i,j] − r_i/n − c_j/n + s/n²  (HKH);
//             HSIC(K,L)·(n−1)² = Σ_ij Kc[i,j]·Lc[j,i] (= tr(KHLH), H idempotent);
//   unbiased: K̂[i,j] = K[i,j] − r̃_i/m − c̃_j/m + S̃/((n−1)(n−2)), m = n − 2 (U-centring);
//             HSIC(K,L)·n(n−3) = Σ_{i≠j} K̂[i,j]·L̂[j,i] + [(Σ δ_K·c̃_L − Σ c̃_K·ε_L)/m
//             + Σ δ_K·ε_L/m²], δ_K = r̃_K − c̃_K, ε_L = r̃_L − c̃_L: the bracket, zero for
//             symmetric Grams, makes it Song et al.'s estimator for any matrices.
//
// Layout of w (f32):
//   [0, 16)   res: 1 − CKA, HSIC(K,L), HSIC(K,K), HSIC(L,L), α, β, γ
//   [16, 32)  tot: g_K, g_L (s/n² or S̃/((n−1)(n−2))), then the five bracket sums
//   [32, 32 + 4n)       per i: r_K, c_K, r_L, c_L (cka_rows), then divided by n or m
//                       (cka_totals): the centring vectors ρ_K, κ_K, ρ_L, κ_L
//   [32 + 4n, 32 + 7n)  per i: Σ_j of the three centred products (cka_centred)
//
// Bindings: 0 params (uniform), 1 K (read), 2 L (read), 3 w (read_write, passes),
// 4 w (read, cka_grad), 5 d (read_write, cka_grad).

struct Params {
    n: u32,
    unbiased: u32,
    which: u32,   // cka_grad: 0 writes dk, 1 writes dl
    nn: u32,      // n² (the gradient's entries)
    d1: f32,      // divisor of the centring vectors: n, or m = n − 2
    d2: f32,      // divisor of the total: n², or (n−1)(n−2)
    norm: f32,    // (n−1)², or n(n−3)
    scale: f32,   // cka_grad: the loss scale
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> L: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<storage, read> ws: array<f32>;
@group(0) @binding(5) var<storage, read_write> d: array<f32>;

const TOT: u32 = 16u;
const ST: u32 = 32u;

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

// Whether x is ±Inf or NaN, from its bits (immune to any float folding).
fn nonfinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) >= 0x7f800000u;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Whether entry (i, j) takes part: all of them, or the off-diagonal ones (unbiased).
fn kept(i: u32, j: u32) -> bool {
    return p.unbiased == 0u || i != j;
}

// Row and column sums of K and L (of K̃, L̃ when unbiased), one workgroup per i.
@compute @workgroup_size(256)
fn cka_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg);
    if (i >= p.n) {
        return;
    }
    let n = p.n;
    var rk = 0.0;
    var ck = 0.0;
    var rl = 0.0;
    var cl = 0.0;
    for (var j = lid; j < n; j += WG) {
        if (kept(i, j)) {
            rk += K[i * n + j];
            ck += K[j * n + i];
            rl += L[i * n + j];
            cl += L[j * n + i];
        }
    }
    rk = wg_sum(lid, rk);
    ck = wg_sum(lid, ck);
    rl = wg_sum(lid, rl);
    cl = wg_sum(lid, cl);
    if (lid == 0u) {
        // K̃ = K·(1 − I) entry-wise: a non-finite diagonal entry makes NaN (Inf·0),
        // which the reference's sums then carry.
        if (p.unbiased != 0u && nonfinite(K[i * n + i])) {
            rk = nan();
            ck = nan();
        }
        if (p.unbiased != 0u && nonfinite(L[i * n + i])) {
            rl = nan();
            cl = nan();
        }
        w[ST + 4u * i] = rk;
        w[ST + 4u * i + 1u] = ck;
        w[ST + 4u * i + 2u] = rl;
        w[ST + 4u * i + 3u] = cl;
    }
}

// One workgroup: the totals, the unbiased bracket's sums, and the centring vectors.
@compute @workgroup_size(256)
fn cka_totals(@builtin(local_invocation_index) lid: u32) {
    var sk = 0.0;
    var sl = 0.0;
    var x1 = 0.0;
    var x2 = 0.0;
    var x3 = 0.0;
    var x4 = 0.0;
    var x5 = 0.0;
    for (var k = lid; k < p.n; k += WG) {
        let o = ST + 4u * k;
        let rk = w[o];
        let ck = w[o + 1u];
        let rl = w[o + 2u];
        let cl = w[o + 3u];
        sk += rk;
        sl += rl;
        let dk = rk - ck;
        let el = rl - cl;
        x1 += dk * cl;
        x2 += ck * el;
        x3 += dk * el;
        x4 += dk * dk;
        x5 += el * el;
        w[o] = rk / p.d1;
        w[o + 1u] = ck / p.d1;
        w[o + 2u] = rl / p.d1;
        w[o + 3u] = cl / p.d1;
    }
    sk = wg_sum(lid, sk);
    sl = wg_sum(lid, sl);
    x1 = wg_sum(lid, x1);
    x2 = wg_sum(lid, x2);
    x3 = wg_sum(lid, x3);
    x4 = wg_sum(lid, x4);
    x5 = wg_sum(lid, x5);
    if (lid == 0u) {
        w[TOT] = sk / p.d2;
        w[TOT + 1u] = sl / p.d2;
        w[TOT + 2u] = x1;
        w[TOT + 3u] = x2;
        w[TOT + 4u] = x3;
        w[TOT + 5u] = x4;
        w[TOT + 6u] = x5;
    }
}

// Per row i: Σ_j Kc[i,j]·Lc[j,i], Σ_j Kc[i,j]·Kc[j,i], Σ_j Lc[i,j]·Lc[j,i] (j ≠ i when
// unbiased), one workgroup per i.
@compute @workgroup_size(256)
fn cka_centred(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg);
    if (i >= p.n) {
        return;
    }
    let n = p.n;
    let oi = ST + 4u * i;
    let rki = w[oi];
    let cki = w[oi + 1u];
    let rli = w[oi + 2u];
    let cli = w[oi + 3u];
    let gk = w[TOT];
    let gl = w[TOT + 1u];
    var kl = 0.0;
    var kk = 0.0;
    var ll = 0.0;
    for (var j = lid; j < n; j += WG) {
        if (kept(i, j)) {
            let oj = ST + 4u * j;
            let kij = K[i * n + j] - rki - w[oj + 1u] + gk;
            let kji = K[j * n + i] - w[oj] - cki + gk;
            let lij = L[i * n + j] - rli - w[oj + 3u] + gl;
            let lji = L[j * n + i] - w[oj + 2u] - cli + gl;
            kl += kij * lji;
            kk += kij * kji;
            ll += lij * lji;
        }
    }
    kl = wg_sum(lid, kl);
    kk = wg_sum(lid, kk);
    ll = wg_sum(lid, ll);
    if (lid == 0u) {
        let o = ST + 4u * n + 3u * i;
        w[o] = kl;
        w[o + 1u] = kk;
        w[o + 2u] = ll;
    }
}

// One workgroup: the three HSICs, 1 − CKA and the backward's coefficients.
@compute @workgroup_size(256)
fn cka_finish(@builtin(local_invocation_index) lid: u32) {
    var kl = 0.0;
    var kk = 0.0;
    var ll = 0.0;
    let base = ST + 4u * p.n;
    for (var i = lid; i < p.n; i += WG) {
        kl += w[base + 3u * i];
        kk += w[base + 3u * i + 1u];
        ll += w[base + 3u * i + 2u];
    }
    kl = wg_sum(lid, kl);
    kk = wg_sum(lid, kk);
    ll = wg_sum(lid, ll);
    if (lid == 0u) {
        if (p.unbiased != 0u) {
            let m = p.d1;
            kl += (w[TOT + 2u] - w[TOT + 3u]) / m + w[TOT + 4u] / (m * m);
            kk += w[TOT + 5u] / (m * m);
            ll += w[TOT + 6u] / (m * m);
        }
        let hab = kl / p.norm;
        let haa = kk / p.norm;
        let hbb = ll / p.norm;
        let alpha = 1.0 / sqrt(haa * hbb);
        let cka = hab * alpha;
        w[0] = 1.0 - cka;
        w[1] = hab;
        w[2] = haa;
        w[3] = hbb;
        w[4] = alpha;
        w[5] = 0.5 * cka / haa;
        w[6] = 0.5 * cka / hbb;
    }
}

// Xc[i,j] + Xc[j,i] of X (0: K, 1: L) centred by u on the row index and v on the
// column index (offsets 0..3 into the per-i centring vectors ρ_K, κ_K, ρ_L, κ_L).
fn sym(x: u32, i: u32, j: u32, u: u32, v: u32) -> f32 {
    let n = p.n;
    let g = ws[TOT + x];
    let oi = ST + 4u * i;
    let oj = ST + 4u * j;
    var xij: f32;
    var xji: f32;
    if (x == 0u) {
        xij = K[i * n + j];
        xji = K[j * n + i];
    } else {
        xij = L[i * n + j];
        xji = L[j * n + i];
    }
    return (xij - ws[oi + u] - ws[oj + v] + g) + (xji - ws[oj + u] - ws[oi + v] + g);
}

// dk (which 0) or dl (which 1), overwritten, = G + Gᵀ of G = ∂(scale·(1 − CKA)):
//   dk = αf·Lsym − 2βf·Ksym,  dl = αf·Ksym′ − 2γf·Lsym′,  f = −scale/norm,
// with Xsym the symmetrised centred X (the HSIC(X,X) terms); the cross term
// centres L by rows only (dk) or K by columns only (dl) when unbiased, as the
// derivative of the estimator's (2/m)·1ᵀK̃L̃1 term says. Zero diagonal when unbiased
// (NaN where the entry is not finite, as the reference's ·0).
@compute @workgroup_size(256)
fn cka_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = element(wid, nwg, lid);
    let n = p.n;
    if (e >= p.nn) {
        return;
    }
    let i = e / n;
    let j = e - i * n;
    let f = -p.scale / p.norm;
    let alpha = ws[4];
    var v: f32;
    if (p.which == 0u) {
        var xt: f32;
        if (p.unbiased != 0u) {
            xt = sym(1u, i, j, 2u, 2u);
        } else {
            xt = sym(1u, i, j, 2u, 3u);
        }
        v = alpha * f * xt - 2.0 * ws[5] * f * sym(0u, i, j, 0u, 1u);
    } else {
        var xt: f32;
        if (p.unbiased != 0u) {
            xt = sym(0u, i, j, 1u, 1u);
        } else {
            xt = sym(0u, i, j, 0u, 1u);
        }
        v = alpha * f * xt - 2.0 * ws[6] * f * sym(1u, i, j, 2u, 3u);
    }
    if (p.unbiased != 0u && i == j) {
        v = select(0.0, nan(), nonfinite(v));
    }
    d[e] = v;
}
