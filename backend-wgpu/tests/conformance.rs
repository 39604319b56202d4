//! The shared conformance suite on wgpu (f32 against the f64 oracle), for the kernel
//! families this branch implements so far; the others still return `Unsupported`
//! (issue 6), so `conformance_suite!` would fail on them. Without a Vulkan adapter
//! every test prints `skipped: <test>: <reason>` and passes.

fn make() -> Result<backend_wgpu::WgpuBackend, String> {
    backend_wgpu::WgpuBackend::new().map_err(|e| e.to_string())
}

macro_rules! families {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                conformance::with_backend(make(), stringify!($name), |be| {
                    conformance::kernels::$name(be)
                });
            }
        )*
    };
}

families!(gemm, linear, bias, activations, elementwise);
