//! The whole shared conformance suite on wgpu (f32 against the f64 oracle). Without a
//! Vulkan adapter every test prints `skipped: <test>: <reason>` and passes.

conformance::conformance_suite!(backend_wgpu::WgpuBackend::new().map_err(|e| e.to_string()));
