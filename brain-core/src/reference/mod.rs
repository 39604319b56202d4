//! The reference backend: plain scalar Rust, one forward and one backward function
//! per kernel (llm.c style, dims in comments), generic over f32 and f64.
//!
//! In f64 it is the oracle of the conformance suite; in f32 it runs where nothing
//! else does. Each kernel file holds plain-slice functions that other backends may
//! also call for small or odd cases; [`ReferenceBackend`] wraps them behind
//! [`Backend`](crate::Backend) with the shared argument checks.

pub mod activation;
pub mod adamw;
pub mod bias;
pub mod cka;
pub mod contrastive;
pub mod diffusion;
pub mod dropout;
pub mod elementwise;
pub mod gemm;
pub mod groupnorm;
pub mod layernorm;
pub mod linear;
pub mod mse;
pub mod random;
pub mod reduce;
pub mod sims;
pub mod sobel;
pub mod upsample;

mod backend;
pub use backend::ReferenceBackend;
