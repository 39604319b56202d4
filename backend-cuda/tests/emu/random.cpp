// Emulated run of kernels/dropout_random.cu against an independent Philox4x32-10 (as
// brain-core/src/philox.rs): words bit for bit, uniforms and halves exactly, normals to
// the host's log/sin/cos, dropout masks and NaN/∞ propagation exactly; aligned (float4)
// and misaligned buffers, lengths around multiples of 4, grid-stride loops.
#include "cuda_shim.h"
#include "../../kernels/dropout_random.cu"

static void philox_ref(const uint32_t c_in[4], const uint32_t k_in[2], uint32_t out[4]) {
    uint32_t c[4] = {c_in[0], c_in[1], c_in[2], c_in[3]}, k[2] = {k_in[0], k_in[1]};
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            k[0] += 0x9E3779B9u;
            k[1] += 0xBB67AE85u;
        }
        const uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        const uint32_t n[4] = {(uint32_t)(p1 >> 32) ^ c[1] ^ k[0], (uint32_t)p1,
                               (uint32_t)(p0 >> 32) ^ c[3] ^ k[1], (uint32_t)p0};
        std::memcpy(c, n, 16);
    }
    std::memcpy(out, c, 16);
}

static uint32_t word_ref(uint64_t seed, uint64_t off, uint64_t i) {
    const uint64_t b = i / 4;
    const uint32_t c[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)off, (uint32_t)(off >> 32)};
    const uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t o[4];
    philox_ref(c, k, o);
    return o[i % 4];
}

int main() {
    {
        // Random123 known answers.
        const uint32_t c[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
        const uint32_t k[2] = {0xa4093822, 0x299f31d0};
        uint32_t o[4];
        philox_ref(c, k, o);
        CHECK(o[0] == 0xd16cfe09 && o[3] == 0x24126ea1, "philox_ref known answer");
    }
    const uint64_t seeds[] = {0, ~0ull, 0x123456789abcdefull};
    const uint64_t offs[] = {0, 1ull << 32, 0xfedcba9876543210ull};
    const size_t ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 33, 1001};
    for (uint64_t seed : seeds)
        for (uint64_t off : offs)
            for (size_t n : ns)
                for (int shift = 0; shift < 2; ++shift) {
                    const unsigned vec = shift == 0;
                    const unsigned grid = n % 2 ? 1 : 3;
                    float* out = buffer(n, shift);
                    launch({grid}, {64}, [&] { fill_uniform_f32(out, n, seed, off, vec); });
                    for (size_t i = 0; i < n; ++i)
                        CHECK(out[i] == (float)((word_ref(seed, off, i) >> 8) * (1.0 / 16777216.0)),
                              "fill_uniform n=%zu i=%zu", n, i);
                    CHECK(out[n] == -9.0f, "fill_uniform overrun n=%zu", n);

                    launch({grid}, {64}, [&] { fill_normal_f32(out, n, seed, off, 0.5f, 2.0f, vec); });
                    for (size_t i = 0; i < n; ++i) {
                        const size_t j = i / 2;
                        const double u1 = ((word_ref(seed, off, 2 * j) >> 8) + 1.0) / 16777216.0;
                        const double u2 = (word_ref(seed, off, 2 * j + 1) >> 8) / 16777216.0;
                        const double r = std::sqrt(-2 * std::log(u1)), th = 2 * M_PI * u2;
                        const double z = i % 2 == 0 ? r * std::cos(th) : r * std::sin(th);
                        CHECK(std::fabs(out[i] - (0.5 + 2 * z)) < 1e-5, "fill_normal n=%zu i=%zu: %g vs %g",
                              n, i, out[i], 0.5 + 2 * z);
                    }
                    CHECK(out[n] == -9.0f, "fill_normal overrun n=%zu", n);

                    const size_t m = 2 * n;
                    float* bits = buffer(m, shift);
                    launch({grid}, {64}, [&] { philox_bits_f32(bits, m, seed, off, vec); });
                    for (size_t i = 0; i < n; ++i) {
                        const uint32_t w = word_ref(seed, off, i);
                        CHECK(bits[2 * i] == (float)(w >> 16) && bits[2 * i + 1] == (float)(w & 0xffff),
                              "philox_bits n=%zu i=%zu", m, i);
                    }
                    CHECK(bits[m] == -9.0f, "philox_bits overrun n=%zu", m);

                    float* x = buffer(n, shift);
                    float* y = buffer(n, shift);
                    for (size_t i = 0; i < n; ++i) x[i] = 0.5f + i * 0.01f;
                    if (n > 3) {
                        x[1] = NAN;
                        x[2] = INFINITY;
                        x[3] = -INFINITY;
                    }
                    for (double p : {0.0, 0.1, 0.5, 0.999}) {
                        const uint32_t th = (uint32_t)std::llround(p * 16777216.0);
                        const float sc = (float)(1.0 / (1.0 - p));
                        launch({grid}, {64}, [&] { dropout_f32(x, y, n, seed, off, th, sc, vec); });
                        for (size_t i = 0; i < n; ++i) {
                            const bool keep = (word_ref(seed, off, i) >> 8) >= th;
                            CHECK(same_bits(y[i], x[i] * (keep ? sc : 0.0f)), "dropout n=%zu i=%zu p=%g", n, i, p);
                        }
                        CHECK(y[n] == -9.0f, "dropout overrun n=%zu", n);
                    }
                }
    printf("dropout_random: %d failures\n", g_fails);
    return g_fails != 0;
}
