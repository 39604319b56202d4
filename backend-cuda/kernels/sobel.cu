// Sobel forward/backward and the fused Sobel loss (src/ops/sobel.rs).
//
// Placeholder: the kernels of this family are not written yet; src/ops/sobel.rs
// returns BrainError::Unsupported until they are. Kernels go here as
// `extern "C" __global__ void <name>_f32(...)` (see common.cuh for the conventions).
#include "common.cuh"
