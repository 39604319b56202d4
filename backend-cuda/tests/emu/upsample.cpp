// Emulated run of kernels/upsample.cu against brain-core's f32 reference formulas
// (compiled with -ffp-contract=off): every kernel variant must be bit-identical, NaN and
// ±∞ included, with no write past the output.
#include "cuda_shim.h"
#include "../../kernels/upsample.cu"

struct Src {
    size_t i0, i1;
    float l;
};

// brain_core::reference::upsample::bilinear_source::<f32>
static Src source(size_t dst, size_t k, size_t len) {
    const float scale = 1.0f / (float)k;
    float s = ((float)dst + 0.5f) * scale - 0.5f;
    if (s < 0.0f) s = 0.0f;
    size_t i0 = (size_t)std::floor(s);
    if (i0 > len - 1) i0 = len - 1;
    return {i0, i0 + 1 < len ? i0 + 1 : i0, s - (float)i0};
}

int main() {
    int cases = 0;
    for (size_t P : {1, 3})
        for (size_t h : {1, 2, 3, 5, 8})
            for (size_t w : {1, 2, 4, 7, 12})
                for (size_t k : {1, 2, 3, 4, 5, 6, 7, 8}) {
                    const size_t oh = h * k, ow = w * k, nin = P * h * w, nout = nin * k * k;
                    std::vector<float> x(nin), dy(nout);
                    for (float& v : x) v = (float)rnd();
                    for (float& v : dy) v = (float)rnd();
                    if (nin > 3 && cases % 3 == 0) {
                        x[1] = NAN;
                        x[nin - 1] = INFINITY;
                        dy[0] = INFINITY;
                        dy[nout / 2] = NAN;
                        dy[nout - 1] = -INFINITY;
                    }
                    ++cases;
                    // The reference, loop for loop.
                    std::vector<float> yn(nout), yb(nout), dxn(nin, 0.0f), dxb(nin, 0.0f);
                    const float one = 1.0f;
                    for (size_t p = 0; p < P; ++p)
                        for (size_t oy = 0; oy < oh; ++oy)
                            for (size_t ox = 0; ox < ow; ++ox) {
                                const size_t o = (p * oh + oy) * ow + ox, i = (p * h + oy / k) * w + ox / k;
                                yn[o] = x[i];
                                dxn[i] = dxn[i] + dy[o];
                                const Src ty = source(oy, k, h), tx = source(ox, k, w);
                                const float* xp = &x[p * h * w];
                                const float ly = ty.l, lx = tx.l;
                                yb[o] = (one - ly) * ((one - lx) * xp[ty.i0 * w + tx.i0] + lx * xp[ty.i0 * w + tx.i1]) +
                                        ly * ((one - lx) * xp[ty.i1 * w + tx.i0] + lx * xp[ty.i1 * w + tx.i1]);
                                const float g = dy[o];
                                float* d = &dxb[p * h * w];
                                d[ty.i0 * w + tx.i0] = d[ty.i0 * w + tx.i0] + (one - ly) * (one - lx) * g;
                                d[ty.i0 * w + tx.i1] = d[ty.i0 * w + tx.i1] + (one - ly) * lx * g;
                                d[ty.i1 * w + tx.i0] = d[ty.i1 * w + tx.i0] + ly * (one - lx) * g;
                                d[ty.i1 * w + tx.i1] = d[ty.i1 * w + tx.i1] + ly * lx * g;
                            }
                    const float inv_k = 1.0f / (float)k;
                    float* y = buffer(nout, 0);
                    float* dx = buffer(nin, 0);
                    typedef void (*Kernel)(const float*, float*, u64, u64, u64, u64, float);
                    struct Case {
                        const char* name;
                        Kernel f;
                        bool forward, bilinear;
                        size_t per_thread;
                    };
                    const Case kernels[] = {
                        {"nearest_forward", upsample_nearest_forward_f32, true, false, 1},
                        {"nearest_forward_v4", upsample_nearest_forward_v4_f32, true, false, 4},
                        {"nearest_forward_w", upsample_nearest_forward_w_f32, true, false, 1},
                        {"bilinear_forward", upsample_bilinear_forward_f32, true, true, 1},
                        {"bilinear_forward_v4", upsample_bilinear_forward_v4_f32, true, true, 4},
                        {"bilinear_forward_w", upsample_bilinear_forward_w_f32, true, true, 1},
                        {"nearest_backward", upsample_nearest_backward_f32, false, false, 1},
                        {"nearest_backward_w", upsample_nearest_backward_w_f32, false, false, 1},
                        {"bilinear_backward", upsample_bilinear_backward_f32, false, true, 1},
                        // k > 6 exercises the fallback for windows longer than 16
                        {"bilinear_backward_k6", upsample_bilinear_backward_k6_f32, false, true, 1},
                        {"bilinear_backward_w", upsample_bilinear_backward_w_f32, false, true, 1},
                    };
                    for (const Case& c : kernels) {
                        if (c.per_thread == 4 && ow % 4 != 0) continue;
                        const size_t n = c.forward ? nout : nin;
                        float* out = c.forward ? y : dx;
                        for (size_t i = 0; i < n + 16; ++i) out[i] = -9.0f;
                        const size_t threads = n / c.per_thread;
                        const unsigned grid = (unsigned)std::min<size_t>((threads + 63) / 64, 2);
                        launch({grid}, {64}, [&] { c.f(c.forward ? x.data() : dy.data(), out, P, h, w, k, inv_k); });
                        const std::vector<float>& want = c.forward ? (c.bilinear ? yb : yn) : (c.bilinear ? dxb : dxn);
                        for (size_t i = 0; i < n; ++i)
                            CHECK(same_bits(out[i], want[i]), "%s P%zu h%zu w%zu k%zu [%zu]: %.9g vs %.9g", c.name, P,
                                  h, w, k, i, out[i], want[i]);
                        CHECK(out[n] == -9.0f, "%s overrun", c.name);
                    }
                }
    printf("upsample: %d shapes, %d failures\n", cases, g_fails);
    return g_fails != 0;
}
