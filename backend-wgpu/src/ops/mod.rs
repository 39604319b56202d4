//! One file per kernel family: its WGSL kernels (as [`Kernel`](crate::gpu::Kernel)
//! constants) and the host functions the `Backend` impl in `lib.rs` delegates to.
//! Each family's shader is `shaders/<family>.wgsl`, with `shaders/common.wgsl`
//! prepended.

/// The [`Shader`](crate::gpu::Shader) of `shaders/<file>`, after `common.wgsl`.
macro_rules! shader {
    ($file:literal) => {
        crate::gpu::Shader {
            label: $file,
            parts: &[
                include_str!("../shaders/common.wgsl"),
                include_str!(concat!("../shaders/", $file)),
            ],
        }
    };
}

pub(crate) mod activation;
pub(crate) mod adamw;
pub(crate) mod bias;
pub(crate) mod cka;
pub(crate) mod contrastive;
pub(crate) mod diffusion;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod mse;
pub(crate) mod norm;
pub(crate) mod random;
pub(crate) mod reduce;
pub(crate) mod sims;
pub(crate) mod sobel;
pub(crate) mod upsample;
