//! CUDA backend for brain-core: not implemented yet.
//!
//! This crate holds the place that SPEC section 2 gives it in the workspace. The
//! implementation (NVRTC kernels, cuBLAS GEMM, cudarc with dynamic loading) is the
//! subject of its own issue; until then the crate exports nothing, so nothing can
//! mistake it for a working backend.
