//! The whole conformance suite on the CUDA backend's CPU emulator
//! ([`CudaBackend::emulated`](backend_cuda::CudaBackend::emulated)): the real kernel
//! sources of `kernels/*.cu`, compiled by the host C++ compiler against
//! `emu/cuda_emu.h`, launched by the crate's own host code, against the f64 reference
//! with the suite's tolerances. Runs in CI (no GPU there): it must not skip, so a
//! missing C++ compiler fails the test instead of printing `skipped:`, unless
//! `BRAIN_CUDA_EMU_OPTIONAL=1` is set.

fn emulated() -> Result<backend_cuda::CudaBackend, String> {
    match backend_cuda::CudaBackend::emulated() {
        Ok(be) => Ok(be),
        Err(e) if std::env::var_os("BRAIN_CUDA_EMU_OPTIONAL").is_some() => Err(e.to_string()),
        Err(e) => panic!("the CUDA emulator is unavailable: {e}"),
    }
}

conformance::conformance_suite!(emulated());
