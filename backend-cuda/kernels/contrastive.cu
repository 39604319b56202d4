// Row L2 normalisation, SoftCLIP/InfoNCE on logits, clip_logits, clip_grams, clip_inputs (src/ops/contrastive.rs).
//
// Placeholder: the kernels of this family are not written yet; src/ops/contrastive.rs
// returns BrainError::Unsupported until they are. Kernels go here as
// `extern "C" __global__ void <name>_f32(...)` (see common.cuh for the conventions).
#include "common.cuh"
