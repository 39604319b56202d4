// Element-wise kernels: residual add, scale, axpy, and the β·C pass of a GEMM with
// k = 0 (src/ops/elementwise.rs, src/ops/gemm.rs). Fill and copy need no kernel
// (cuMemsetD32Async, cuMemcpyDtoDAsync in src/device.rs).
#include "common.cuh"

// out[i] = a[i] + b[i]   (a and b may be the same buffer)
extern "C" __global__ void add_f32(const float* a, const float* b, float* __restrict__ out,
                                   u64 n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

// x[i] = alpha·x[i]
extern "C" __global__ void scale_f32(float* __restrict__ x, float alpha, u64 n) {
    GRID_STRIDE(i, n) x[i] = alpha * x[i];
}

// y[i] = alpha·x[i] + y[i]
extern "C" __global__ void axpy_f32(float alpha, const float* __restrict__ x,
                                    float* __restrict__ y, u64 n) {
    GRID_STRIDE(i, n) y[i] = alpha * x[i] + y[i];
}

// C_b[j] = beta·C_b[j] for j < mn in each of `batch` matrices `stride` apart; beta = 0
// writes zeros (NaN in C included), as BLAS does.
extern "C" __global__ void gemm_scale_c_f32(float* __restrict__ c, float beta, u64 mn,
                                            u64 stride, u64 batch) {
    GRID_STRIDE(i, mn * batch) {
        float* p = c + (i / mn) * stride + (i % mn);
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}
