//! # brain
//!
//! The `std` side of the workspace: what touches files. Safetensors checkpoints
//! (model, optimizer and training state, written atomically, loadable by the PyTorch
//! twins in `pytorch/brain_models.py`) and the synthetic subject used by the demo and
//! the tests. The numerics live in `brain-core`, generic over the backend.

pub mod checkpoint;
pub mod cli;
pub mod error;
pub mod io;
pub mod projection;
pub mod synthetic;
pub mod targets;

pub use error::{Error, Result};
