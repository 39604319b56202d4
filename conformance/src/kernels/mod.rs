//! One test function per kernel family, generic over [`Backend`](brain_core::Backend):
//! each draws shapes with proptest, runs the backend and the f64 oracle on the same
//! (element-rounded) inputs, and compares forward outputs and gradients.

pub mod activation;
pub mod adamw;
pub mod bad_input;
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
pub mod nonfinite;
pub mod random;
pub mod reduce;
pub mod sims;
pub mod sobel;
pub mod upsample;

pub use activation::activations;
pub use adamw::adamw;
pub use bad_input::bad_input;
pub use bias::bias;
pub use cka::cka;
pub use contrastive::contrastive;
pub use diffusion::diffusion;
pub use dropout::dropout;
pub use elementwise::elementwise;
pub use gemm::gemm;
pub use groupnorm::groupnorm;
pub use layernorm::layernorm;
pub use linear::linear;
pub use mse::mse;
pub use nonfinite::nonfinite;
pub use random::philox;
pub use reduce::reduce_rows;
pub use sims::sims;
pub use sobel::sobel;
pub use upsample::upsample;
