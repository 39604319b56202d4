//! Argument validation shared by every backend, so that each one rejects the same
//! calls with the same typed error before touching memory.
//!
//! Every function takes buffer lengths (a backend knows them without a device sync)
//! and the kernel's dimensions. One file per kernel family.

mod contrastive;
mod core;
mod diffusion;
mod losses;
mod sobel;

pub use self::core::*;
pub use contrastive::*;
pub use diffusion::*;
pub use losses::*;
pub use sobel::*;
