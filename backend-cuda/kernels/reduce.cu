// Row reductions over x[rows, cols] (src/ops/reduce.rs): one block per row
// (grid-stride over rows), f32 accumulation, block tree reduction. Semantics as
// brain-core/src/reference/reduce.rs: Max propagates NaN; LogSumExp is max-subtracted
// and returns the max itself when it is ±∞.
#include "common.cuh"

#define OP_SUM 0
#define OP_MEAN 1
#define OP_MAX 2
#define OP_LOGSUMEXP 3
#define OP_SUM_SQUARES 4

template <int OP>
__device__ __forceinline__ void reduce_rows(const float* __restrict__ x, float* __restrict__ out,
                                            u64 rows, u64 cols) {
    for (u64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = x + r * cols;
        float result;
        if (OP == OP_MAX || OP == OP_LOGSUMEXP) {
            float m = -__int_as_float(0x7f800000);
            for (u64 j = threadIdx.x; j < cols; j += blockDim.x) m = MaxNanOp()(m, row[j]);
            m = block_max_nan(m);
            if (OP == OP_MAX || isinf(m)) {
                result = m;
            } else {
                float s = 0.0f;
                for (u64 j = threadIdx.x; j < cols; j += blockDim.x) s += expf(row[j] - m);
                result = m + logf(block_sum(s));
            }
        } else {
            float s = 0.0f;
            for (u64 j = threadIdx.x; j < cols; j += blockDim.x) {
                const float v = row[j];
                s += OP == OP_SUM_SQUARES ? v * v : v;
            }
            s = block_sum(s);
            result = OP == OP_MEAN ? s / (float)cols : s;
        }
        if (threadIdx.x == 0) out[r] = result;
    }
}

#define REDUCE_KERNEL(NAME, OP)                                                        \
    extern "C" __global__ void NAME(const float* __restrict__ x, float* __restrict__ out, \
                                    u64 rows, u64 cols) {                              \
        reduce_rows<OP>(x, out, rows, cols);                                           \
    }

REDUCE_KERNEL(reduce_rows_sum_f32, OP_SUM)
REDUCE_KERNEL(reduce_rows_mean_f32, OP_MEAN)
REDUCE_KERNEL(reduce_rows_max_f32, OP_MAX)
REDUCE_KERNEL(reduce_rows_logsumexp_f32, OP_LOGSUMEXP)
REDUCE_KERNEL(reduce_rows_sum_squares_f32, OP_SUM_SQUARES)
