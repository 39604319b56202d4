//! The whole shared conformance suite on the wgpu f16-storage backend (f16 tensors,
//! f32 arithmetic, against the f64 oracle; tolerances in units of f16's roundoff).
//! Without a Vulkan adapter offering SHADER_F16 every test prints
//! `skipped: <test>: <reason>` and passes.

conformance::conformance_suite!(backend_wgpu::WgpuF16Backend::new().map_err(|e| e.to_string()));
