// Emulated run of kernels/norm.cu with the launch logic of src/ops/norm.rs, against an
// f64 LayerNorm/GroupNorm (the oracle's formulas) within the conformance suite's
// tolerances: registers-cached and streamed rows, float4 and scalar paths, rows offset
// by 100, bands of several rows, accumulation into dγ/dβ, and NaN/∞ placement.
#include "cuda_shim.h"
#include "../../kernels/norm.cu"

static const double U = 1.0 / 16777216.0;

// src/ops/norm.rs: segment_threads, row_block, vec4_ok, TARGET_THREADS.
static unsigned segment_threads(size_t items, size_t per) {
    const size_t t = std::clamp<size_t>((items + per - 1) / per, 1, 1024);
    size_t p = 1;
    while (p < t) p <<= 1;
    return (unsigned)p;
}
static bool vec4_ok(size_t len, std::initializer_list<const float*> ptrs) {
    if (len % 4) return false;
    for (const float* p : ptrs)
        if ((uintptr_t)p % 16) return false;
    return true;
}

static void close(const std::string& what, const float* got, const std::vector<double>& want, double atol,
                  double rtol) {
    for (size_t i = 0; i < want.size(); ++i) {
        const double g = got[i], w = want[i];
        if (!std::isfinite(w) || !std::isfinite(g)) {
            CHECK((std::isnan(w) && std::isnan(g)) || g == w, "%s[%zu] = %g but %g", what.c_str(), i, g, w);
            continue;
        }
        CHECK(std::fabs(g - w) <= atol + rtol * std::fabs(w), "%s[%zu] = %.9g but %.9g (tolerance %.3g)",
              what.c_str(), i, g, w, atol + rtol * std::fabs(w));
    }
}

// One LayerNorm (groups 1, spatial 1) or GroupNorm forward + backward.
static void run(bool ln, size_t N, size_t C, size_t S, size_t G, double shift, int mis, size_t target_threads,
                bool poison) {
    const size_t cpg = C / G, L = cpg * S, R = N * G, n = R * L;
    std::vector<float> x(n), gm(C), bt(C), dy(n), dg0(C), db0(C);
    for (float& v : x) v = (float)(shift + rnd());
    for (float& v : gm) v = (float)rnd();
    for (float& v : bt) v = (float)rnd();
    for (float& v : dy) v = (float)rnd();
    for (float& v : dg0) v = (float)rnd();
    for (float& v : db0) v = (float)rnd();
    if (poison && n > 40) {
        x[1] = NAN;
        x[n / 2] = INFINITY;
        x[n - 1] = -INFINITY;
    }
    float *xb = buffer(n, mis), *yb = buffer(n, mis), *gb = buffer(C, 0), *bb = buffer(C, 0), *mb = buffer(R, 0),
          *rb = buffer(R, 0), *dyb = buffer(n, mis), *dxb = buffer(n, mis), *dgb = buffer(C, 0), *dbb = buffer(C, 0);
    std::memcpy(xb, x.data(), n * 4);
    std::memcpy(gb, gm.data(), C * 4);
    std::memcpy(bb, bt.data(), C * 4);
    std::memcpy(dyb, dy.data(), n * 4);
    std::memcpy(dgb, dg0.data(), C * 4);
    std::memcpy(dbb, db0.data(), C * 4);
    const float eps = 1e-5f;

    // Forward, launched as norm.rs launches it (but on at most 3 blocks: grid stride).
    const bool v4 = vec4_ok(L, {xb, gb, bb, yb}) && (S == 1 || S % 4 == 0);
    const unsigned T = segment_threads(v4 ? L / 4 : L, 4), block = std::max(T, 256u), spb = block / T;
    const unsigned grid = (unsigned)std::min<size_t>((R + spb - 1) / spb, 3);
    launch({grid}, {block}, [&] {
        if (v4)
            norm_forward_v4_f32(xb, gb, bb, yb, mb, rb, R, L, S, G, cpg, T, eps);
        else
            norm_forward_f32(xb, gb, bb, yb, mb, rb, R, L, S, G, cpg, T, eps);
    });

    // f64 oracle: forward from x, backward from the kernel's saved statistics.
    std::vector<double> y(n), mean(R), rstd(R), dx(n), dg(dg0.begin(), dg0.end()), db(db0.begin(), db0.end());
    for (size_t r = 0; r < R; ++r) {
        const float* xr = &x[r * L];
        double s = 0, v = 0;
        for (size_t j = 0; j < L; ++j) s += xr[j];
        const double m = s / L;
        for (size_t j = 0; j < L; ++j) v += (xr[j] - m) * (xr[j] - m);
        const double rs = 1 / std::sqrt(v / L + (double)eps);
        mean[r] = m;
        rstd[r] = rs;
        const size_t cb = (r % G) * cpg;
        for (size_t j = 0; j < L; ++j) y[r * L + j] = (xr[j] - m) * rs * gm[cb + j / S] + bt[cb + j / S];
        const double mm = mb[r], rr = rb[r];
        double a = 0, b = 0;
        for (size_t j = 0; j < L; ++j) {
            const size_t c = cb + j / S;
            const double xh = (xr[j] - mm) * rr, dn = dy[r * L + j] * (double)gm[c];
            a += dn;
            b += dn * xh;
            dg[c] += dy[r * L + j] * xh;
            db[c] += dy[r * L + j];
        }
        a /= L;
        b /= L;
        for (size_t j = 0; j < L; ++j) {
            const double xh = (xr[j] - mm) * rr;
            dx[r * L + j] = (dy[r * L + j] * (double)gm[cb + j / S] - a - xh * b) * rr;
        }
    }
    double rmax = 0;
    for (double r : rstd)
        if (std::isfinite(r)) rmax = std::max(rmax, r);
    // conformance/src/kernels/layernorm.rs: norm_scale and the tolerances built on it.
    const double sc = 16 * U * std::sqrt(L + 1.0) * (1 + shift * rmax) * std::max(rmax, 1.0);
    char tag[160];
    snprintf(tag, sizeof tag, "%s N%zu C%zu S%zu G%zu shift%g mis%d T%u%s", ln ? "layernorm" : "groupnorm", N, C, S,
             G, shift, mis, T, v4 ? " v4" : "");
    const std::string t(tag);
    close(t + " y", yb, y, sc, 16 * U);
    close(t + " mean", mb, mean, sc * (1 + shift) / std::max(rmax, 1.0), 16 * U);
    close(t + " rstd", rb, rstd, 0, sc);
    CHECK(yb[n] == -9.0f && mb[R] == -9.0f && rb[R] == -9.0f, "%s forward overrun", tag);

    // Backward, launched as norm.rs launches it.
    std::vector<float> part;
    size_t part_rows;
    if (ln) {
        const bool v4b = vec4_ok(L, {dyb, xb, gb, dxb});
        const unsigned Tb = segment_threads(v4b ? L / 4 : L, 2), blk = std::max(Tb, 256u), sp = blk / Tb;
        const size_t max_bands = std::max<size_t>(target_threads / Tb, 1), rpb = (R + max_bands - 1) / max_bands;
        part_rows = (R + rpb - 1) / rpb;
        part.assign(part_rows * 2 * L, NAN); // the kernel must write every partial it reads
        launch({(unsigned)((part_rows + sp - 1) / sp)}, {blk}, [&] {
            if (v4b)
                layernorm_backward_v4_f32(dyb, xb, gb, mb, rb, dxb, part.data(), R, L, Tb, rpb);
            else
                layernorm_backward_f32(dyb, xb, gb, mb, rb, dxb, part.data(), R, L, Tb, rpb);
        });
    } else {
        const bool v4b = vec4_ok(S, {dyb, xb, dxb});
        const size_t items = v4b ? S / 4 : S;
        size_t cs = 1;
        while (cs < items) cs <<= 1;
        cs = std::min<size_t>(cs, 256);
        part_rows = N;
        part.assign(N * 2 * C, NAN);
        launch({(unsigned)std::min<size_t>(R, 2)}, {256}, [&] {
            if (v4b)
                groupnorm_backward_v4_f32(dyb, xb, gb, mb, rb, dxb, part.data(), R, S, G, cpg, (unsigned)cs);
            else
                groupnorm_backward_f32(dyb, xb, gb, mb, rb, dxb, part.data(), R, S, G, cpg, (unsigned)cs);
        });
    }
    launch({(unsigned)((2 * C + 31) / 32)}, {32, 16}, [&] { norm_param_grad_f32(part.data(), dgb, dbb, part_rows, C); });
    close(t + " dx", dxb, dx, sc * std::max(rmax, 1.0), 16 * U);
    const double sr = sc * std::sqrt((ln ? R : N * S) + 1.0);
    close(t + " dgamma", dgb, dg, sr, 16 * U);
    close(t + " dbeta", dbb, db, sr, 16 * U);
    CHECK(dxb[n] == -9.0f && dgb[C] == -9.0f && dbb[C] == -9.0f, "%s backward overrun", tag);
}

int main() {
    int cases = 0;
    const size_t T17 = 1 << 17; // norm.rs's TARGET_THREADS
    // LayerNorm: short rows (a warp per row, 8 rows per block), rows in registers, and
    // rows longer than the registers hold (4099: scalar; 20000: float4 streamed).
    for (size_t rows : {1, 3, 37})
        for (size_t cols : {1, 3, 4, 8, 100, 513, 2048, 4099, 20000})
            for (double shift : {0.0, 100.0})
                for (int mis : {0, 1}) {
                    if ((cols >= 2048 && rows > 3) || (cols == 20000 && rows > 1)) continue;
                    run(true, rows, cols, 1, 1, shift, mis, T17, false);
                    ++cases;
                }
    // Bands of several rows (a small thread target forces rows_per_band > 1).
    for (size_t rows : {50, 333})
        for (size_t cols : {8, 100, 4099}) {
            run(true, rows, cols, 1, 1, 0.0, 0, 1024, false);
            run(true, rows, cols, 1, 1, 100.0, 1, 2048, false);
            cases += 2;
        }
    // GroupNorm: channel segments of 1 to 256 threads.
    for (size_t N : {1, 3})
        for (size_t G : {1, 2, 4})
            for (size_t cpg : {1, 3})
                for (size_t S : {1, 3, 4, 8, 64, 300, 1024}) {
                    if (S == 1024 && N * G > 4) continue;
                    run(false, N, G * cpg, S, G, (N + S) % 2 ? 100.0 : 0.0, (int)((G + S) % 2), T17, false);
                    ++cases;
                }
    // Non-finite inputs: NaN/∞ reach exactly the rows the oracle's do.
    run(true, 6, 37, 1, 1, 0.0, 0, T17, true);
    run(true, 6, 36, 1, 1, 0.0, 0, T17, true);
    run(false, 2, 8, 12, 4, 0.0, 0, T17, true);
    cases += 3;
    printf("norm: %d cases, %d failures\n", cases, g_fails);
    return g_fails != 0;
}
