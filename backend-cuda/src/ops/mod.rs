//! One file per kernel family. Each exposes plain functions that the `Backend` impl in
//! `lib.rs` calls after checking the arguments, so a family's file and its
//! `kernels/<family>.cu` can be filled in without touching anything else.
//!
//! Contract of every function here:
//! - The parameters are those of the `Backend` method of the same name, in the same
//!   order, with `dev: &Device` first and [`CudaBuffer`](crate::CudaBuffer) for
//!   `Self::Buffer`; scalars arrive as the trait's `f64` (round once to `f32`).
//! - Lengths, dimensions and hyper-parameters have been validated with the same
//!   `brain_core::check` calls as the reference backend: every buffer has exactly the
//!   length its dimensions imply. Zero-sized problems still arrive here (a launch with
//!   0 elements must be skipped: CUDA rejects empty grids).
//! - Work is queued on `dev.stream()` and nothing waits: no download, no sync, no
//!   host round trip. Loss values stay on the device.
//! - Kernels are launched with `launch_kernel!` (see `src/launch.rs`), buffer
//!   addresses from `dev.ptr` / `dev.ptr_mut` (which also reject a foreign buffer).

pub(crate) mod activation;
pub(crate) mod adamw;
pub(crate) mod bias;
pub(crate) mod cka;
pub(crate) mod contrastive;
pub(crate) mod diffusion;
pub(crate) mod dropout_random;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod mse;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod sims;
pub(crate) mod sobel;
pub(crate) mod upsample;
