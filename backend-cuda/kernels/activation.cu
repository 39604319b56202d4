// Activations, forward and backward, per element (src/ops/activation.rs). The formulas
// are brain-core's reference (brain-core/src/reference/activation.rs) in f32.
#include "common.cuh"

#define GELU_TANH_C 0.044715f

__device__ __forceinline__ float gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * BRAIN_FRAC_1_SQRT_2));
}
__device__ __forceinline__ float gelu_erf_grad(float x) {
    const float cdf = 0.5f * (1.0f + erff(x * BRAIN_FRAC_1_SQRT_2));
    const float pdf = BRAIN_INV_SQRT_2PI * expf(-0.5f * x * x);
    return cdf + x * pdf;
}
__device__ __forceinline__ float gelu_tanh(float x) {
    const float inner = BRAIN_SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
    const float k = BRAIN_SQRT_2_OVER_PI;
    const float t = tanhf(k * (x + GELU_TANH_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * GELU_TANH_C * x * x);
}
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu_grad(float x) {
    const float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
}

#define ACTIVATION_KERNELS(NAME, F, DF)                                                 \
    extern "C" __global__ void NAME##_forward_f32(const float* __restrict__ x,          \
                                                  float* __restrict__ y, u64 n) {       \
        GRID_STRIDE(i, n) y[i] = F(x[i]);                                               \
    }                                                                                   \
    extern "C" __global__ void NAME##_backward_f32(const float* __restrict__ x,         \
                                                   const float* __restrict__ dy,        \
                                                   float* __restrict__ dx, u64 n) {     \
        GRID_STRIDE(i, n) dx[i] = dy[i] * DF(x[i]);                                     \
    }

ACTIVATION_KERNELS(gelu_erf, gelu_erf, gelu_erf_grad)
ACTIVATION_KERNELS(gelu_tanh, gelu_tanh, gelu_tanh_grad)
ACTIVATION_KERNELS(silu, silu, silu_grad)
