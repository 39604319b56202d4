//! The whole conformance suite on the CUDA backend. Where there is no CUDA driver (CI,
//! this project's build machines) every test prints
//! `skipped: <test>: unsupported: cuda: no CUDA driver (libcuda not found)` and passes;
//! `.ci/expected-skips` lists those lines.

conformance::conformance_suite!(backend_cuda::CudaBackend::new().map_err(|e| e.to_string()));
