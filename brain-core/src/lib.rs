//! # brain-core
//!
//! The `no_std` (+ `alloc`) heart of the brain-decoding workspace: the [`Backend`]
//! trait every device implements, the plain scalar [`reference`] backend that serves
//! as the f64 oracle of the conformance suite, and the counter-based [`philox`]
//! random stream shared bit for bit by every backend.
//!
//! Tensors are contiguous row-major buffers owned by the backend; kernels take buffers
//! and explicit dimensions, never host slices, so GPU backends stay asynchronous and
//! only [`Backend::upload`], [`Backend::download`] and [`Backend::sync`] touch host memory.
//!
//! ```
//! use brain_core::{Backend, reference::ReferenceBackend};
//!
//! # fn main() -> Result<(), brain_core::BrainError> {
//! let be = ReferenceBackend::<f64>::new();
//! // y[2,3] = x[2,4] · W[3,4]ᵀ + b[3]
//! let x = be.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])?;
//! let w = be.upload(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])?;
//! let b = be.upload(&[0.5, 0.5, 0.5])?;
//! let mut y = be.alloc(6)?;
//! be.linear_forward(&x, &w, Some(&b), &mut y, 2, 4, 3)?;
//! assert_eq!(be.download_vec(&y)?, vec![1.5, 2.5, 7.5, 5.5, 6.5, 15.5]);
//! # Ok(())
//! # }
//! ```
#![no_std]
#![warn(missing_docs)]
// Kernels index several slices with one loop variable, llm.c style, and take their
// dims as plain arguments; `!(x > 0.0)` is how the checks reject NaN on purpose.
#![allow(
    clippy::needless_range_loop,
    clippy::too_many_arguments,
    clippy::neg_cmp_op_on_partial_ord
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod backend;
pub mod check;
pub mod diffusion;
pub mod element;
pub mod error;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod nn;
pub mod ops;
pub mod philox;
pub mod reference;
pub mod train;

pub use backend::{AdamWTensor, Backend};
pub use element::Element;
pub use error::{BrainError, Result};
/// The `half` crate, whose [`f16`](half::f16) is an [`Element`].
pub use half;
pub use ops::{
    Activation, AdamW, ContrastiveLoss, Dropout, Gemm, GroupNormShape, HsicEstimator, ImageShape,
    PredictionType, RowReduce, SchedulerStep, SobelLossForm, UpsampleMode, UpsampleShape,
};
