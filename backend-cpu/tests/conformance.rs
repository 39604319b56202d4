//! The shared conformance suite on the CPU backend (f32 against the f64 oracle).

conformance::conformance_suite!(Ok::<_, String>(backend_cpu::CpuBackend::new()));
