// MSE loss forward and backward (src/ops/mse.rs).
//
// Placeholder: the kernels of this family are not written yet; src/ops/mse.rs
// returns BrainError::Unsupported until they are. Kernels go here as
// `extern "C" __global__ void <name>_f32(...)` (see common.cuh for the conventions).
#include "common.cuh"
