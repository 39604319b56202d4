// Bias over [outer, channels, inner] (src/ops/bias.rs): add, and the accumulated
// gradient dbias[c] += Σ_{o,i} dy[o,c,i].
#include "common.cuh"

// y[o,c,i] += bias[c]
extern "C" __global__ void bias_add_f32(float* __restrict__ y, const float* __restrict__ bias,
                                        u64 n, u64 channels, u64 inner) {
    GRID_STRIDE(i, n) y[i] += bias[(i / inner) % channels];
}

// inner = 1 (rows × channels, the Linear case). Block (32, 8): threadIdx.x walks 32
// consecutive channels (coalesced), threadIdx.y strides over rows; the 8 partial sums
// of a channel are added in shared memory. grid.x = ⌈channels / 32⌉.
extern "C" __global__ void bias_backward_rows_f32(const float* __restrict__ dy,
                                                  float* __restrict__ dbias, u64 rows,
                                                  u64 channels) {
    __shared__ float part[8][33];
    const u64 c = (u64)blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < channels) {
        for (u64 r = threadIdx.y; r < rows; r += 8) acc += dy[r * channels + c];
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j) s += part[j][threadIdx.x];
        dbias[c] += s;
    }
}

// inner > 1 (NCHW planes). One block per channel (grid-stride over channels), threads
// over the outer·inner values of the channel, inner-contiguous.
extern "C" __global__ void bias_backward_planes_f32(const float* __restrict__ dy,
                                                    float* __restrict__ dbias, u64 outer,
                                                    u64 channels, u64 inner) {
    const u64 per_channel = outer * inner;
    for (u64 c = blockIdx.x; c < channels; c += gridDim.x) {
        float acc = 0.0f;
        for (u64 j = threadIdx.x; j < per_channel; j += blockDim.x) {
            const u64 o = j / inner, i = j % inner;
            acc += dy[(o * channels + c) * inner + i];
        }
        const float s = block_sum(acc);
        if (threadIdx.x == 0) dbias[c] += s;
    }
}
