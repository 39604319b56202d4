// Philox fills (uniform, normal, raw bits) and dropout forward/backward (src/ops/dropout_random.rs).
//
// Placeholder: the kernels of this family are not written yet; src/ops/dropout_random.rs
// returns BrainError::Unsupported until they are. Kernels go here as
// `extern "C" __global__ void <name>_f32(...)` (see common.cuh for the conventions).
#include "common.cuh"
