//! Layers with explicit forward and backward passes (llm.c style): each layer holds
//! [`ParamId`]s and dimensions, each call takes the buffers it reads and writes.
//! Activations live in per-batch-size structs the models allocate once
//! (`*Acts`), so a training step allocates nothing.

mod channel_mix;
mod head;
mod linear;
mod mlp;
mod norm;
mod params;
mod stack;

pub use channel_mix::{ChannelMix, ChannelMixScratch};
pub use head::{Head, HeadActs};
pub use linear::Linear;
pub use mlp::{MlpUnit, ResidualActs, ResidualBlock, UnitActs};
pub use norm::{GroupNorm, LayerNorm, NormStats};
pub use params::{GradsMut, Init, ParamId, ParamInfo, ParamStore};
pub use stack::{MlpStack, StackActs};

/// Training (dropout on, masks from Philox) or evaluation (dropout off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dropout masks drawn from stream `(seed, step·SITES + site)`.
    Train {
        /// Philox key of the run.
        seed: u64,
        /// Optimizer step, so every step draws fresh masks and a resumed run the same ones.
        step: u64,
    },
    /// No dropout.
    Eval,
}

/// Dropout call sites per step: the Philox offset is `step·DROPOUT_SITES + site`.
pub const DROPOUT_SITES: u64 = 1 << 12;

impl Mode {
    /// The dropout of call site `site` with probability `p`, or `None` when it is the
    /// identity (evaluation or p = 0).
    pub fn dropout(self, p: f64, site: u64) -> Option<crate::ops::Dropout> {
        match self {
            Mode::Train { seed, step } if p > 0.0 => Some(crate::ops::Dropout {
                p,
                seed,
                offset: step.wrapping_mul(DROPOUT_SITES).wrapping_add(site),
            }),
            _ => None,
        }
    }
}
