// Emulated run of kernels/adamw.cu with the launch logic of src/ops/adamw.rs: tables of
// up to 48 tensors (two launches when there are more), empty and misaligned tensors,
// lengths around the 4096-element chunks; the norm against an f64 sum, the clip
// coefficient and every updated element bit for bit against brain-core's f32 formulas,
// NaN/∞ gradients included; gradients left untouched.
#include "cuda_shim.h"
#include "../../kernels/adamw.cu"

struct Tensor {
    std::vector<float> p, g, m, v;
    float *dp, *dg, *dm, *dv;
};

int main() {
    const size_t CHUNK = ADAMW_CHUNK;
    for (int trial = 0; trial < 12; ++trial) {
        const size_t nt = trial < 6 ? 1 + trial * 13 : 60 + trial;
        std::vector<Tensor> ts(nt);
        for (size_t i = 0; i < nt; ++i) {
            size_t len = (i * 7919 + trial * 31) % 9000;
            if (i % 5 == 0) len = i % 7;
            if (i == 1 && trial % 2) len = 0;
            const int mis = (i + trial) % 4 == 3;
            Tensor& t = ts[i];
            t.p.resize(len);
            t.g.resize(len);
            t.m.resize(len);
            t.v.resize(len);
            for (size_t j = 0; j < len; ++j) {
                t.p[j] = (float)rnd();
                t.g[j] = (float)rnd() * (trial == 3 ? 100.0f : 1.0f);
                t.m[j] = (float)rnd() * 1e-2f;
                t.v[j] = std::fabs((float)rnd()) * 1e-3f;
            }
            if (trial == 4 && len > 2) t.g[len / 2] = NAN;
            if (trial == 5 && len > 2) t.g[len / 2] = INFINITY;
            t.dp = buffer(len, mis);
            t.dg = buffer(len, mis);
            t.dm = buffer(len, mis);
            t.dv = buffer(len, mis);
            std::memcpy(t.dp, t.p.data(), len * 4);
            std::memcpy(t.dg, t.g.data(), len * 4);
            std::memcpy(t.dm, t.m.data(), len * 4);
            std::memcpy(t.dv, t.v.data(), len * 4);
        }
        const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05;
        const int step = 1 + trial % 3;
        const bool clip_on = trial % 3 != 1;
        const double max_norm = trial % 3 == 2 ? 1e3 : 0.5;
        // AdamWScalars::<f32>::new
        const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
        const float decay = (float)(1 - lr * wd), step_size = (float)(lr / bc1), isb = (float)(1 / std::sqrt(bc2));
        const float epsf = (float)eps, b1f = (float)b1, b2f = (float)b2;
        const float omb1 = __fsub_rn(1.0f, b1f), omb2 = __fsub_rn(1.0f, b2f);
        // backend-cpu: norm = √(Σ g² in f64) rounded to f32; clip_coefficient in f32.
        double ss = 0;
        for (const Tensor& t : ts)
            for (float g : t.g) ss += (double)g * g;
        const float norm = (float)std::sqrt(ss);
        float clip = 1.0f;
        if (clip_on) {
            const float c = __fdiv_rn((float)max_norm, __fadd_rn(norm, (float)1e-6));
            if (std::isnan(c) || c < 1.0f) clip = c;
        }
        // Tables as adamw.rs packs them: non-empty tensors, 48 per launch.
        std::vector<AdamwTable> tables;
        std::vector<unsigned> blocks;
        AdamwTable tb{};
        unsigned cnt = 0, bl = 0;
        auto flush = [&] {
            tb.chunk_start[cnt] = bl;
            tb.count = cnt;
            tables.push_back(tb);
            blocks.push_back(bl);
            tb = AdamwTable{};
            cnt = 0;
            bl = 0;
        };
        for (const Tensor& t : ts) {
            if (t.p.empty()) continue;
            if (cnt == ADAMW_TENSORS) flush();
            tb.param[cnt] = (u64)t.dp;
            tb.grad[cnt] = (u64)t.dg;
            tb.exp_avg[cnt] = (u64)t.dm;
            tb.exp_avg_sq[cnt] = (u64)t.dv;
            tb.len[cnt] = t.p.size();
            tb.chunk_start[cnt] = bl;
            bl += (unsigned)((t.p.size() + CHUNK - 1) / CHUNK);
            ++cnt;
        }
        if (cnt) flush();
        size_t total = 0;
        for (unsigned b : blocks) total += b;
        std::vector<double> partials(std::max<size_t>(total, 1), NAN);
        float stat[2] = {NAN, NAN}, grad_norm = NAN;
        u64 base = 0;
        for (size_t l = 0; l < tables.size(); ++l) {
            const AdamwTable t = tables[l];
            launch({blocks[l]}, {ADAMW_THREADS}, [&] { adamw_sumsq_f32(t, partials.data(), base); });
            base += blocks[l];
        }
        launch({1}, {1024}, [&] {
            adamw_finish_f32(partials.data(), total, stat, &grad_norm, clip_on, (float)max_norm, (float)1e-6);
        });
        CHECK(same_bits(grad_norm, norm) || std::fabs(grad_norm - norm) <= 2e-7 * norm, "trial %d norm %.9g vs %.9g",
              trial, grad_norm, norm);
        CHECK(same_bits(stat[1], clip), "trial %d clip %.9g vs %.9g", trial, stat[1], clip);
        for (size_t l = 0; l < tables.size(); ++l) {
            const AdamwTable t = tables[l];
            const float* sp = clip_on ? stat : nullptr;
            launch({blocks[l]}, {ADAMW_THREADS},
                   [&] { adamw_update_f32(t, sp, decay, step_size, isb, epsf, b1f, b2f, omb1, omb2); });
        }
        // brain_core::reference::adamw::adamw_element, each operation rounded.
        for (const Tensor& t : ts)
            for (size_t j = 0; j < t.p.size(); ++j) {
                const float g = __fmul_rn(t.g[j], clip);
                const float p = __fmul_rn(t.p[j], decay);
                const float m = __fadd_rn(__fmul_rn(b1f, t.m[j]), __fmul_rn(omb1, g));
                const float v = __fadd_rn(__fmul_rn(b2f, t.v[j]), __fmul_rn(__fmul_rn(omb2, g), g));
                const float den = __fadd_rn(__fmul_rn(std::sqrt(v), isb), epsf);
                const float pn = __fsub_rn(p, __fdiv_rn(__fmul_rn(step_size, m), den));
                CHECK(same_bits(t.dp[j], pn) && same_bits(t.dm[j], m) && same_bits(t.dv[j], v),
                      "trial %d len %zu [%zu]: p %.9g/%.9g m %.9g/%.9g v %.9g/%.9g", trial, t.p.size(), j, t.dp[j], pn,
                      t.dm[j], m, t.dv[j], v);
            }
        for (const Tensor& t : ts) {
            const size_t len = t.p.size();
            CHECK(std::memcmp(t.dg, t.g.data(), len * 4) == 0, "trial %d: gradient modified", trial);
            CHECK(t.dp[len] == -9.0f && t.dm[len] == -9.0f && t.dv[len] == -9.0f, "trial %d: overrun", trial);
        }
    }
    printf("adamw: %d failures\n", g_fails);
    return g_fails != 0;
}
