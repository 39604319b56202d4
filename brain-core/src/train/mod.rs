//! Training: AdamW state, learning-rate schedules, host-side datasets, and the loop
//! with seeded shuffling, gradient clipping, periodic evaluation and early stopping.
//!
//! Everything is a pure function of the seeds, so a run resumed from a checkpoint
//! taken at an epoch boundary continues bit for bit as if it had never stopped (same
//! backend): epoch `e` shuffles with Philox stream `(seed, e)`, step `t` draws its
//! dropout masks from `(seed, t·SITES + site)`.

mod dataset;
mod optimizer;
mod schedule;
mod trainer;

pub use dataset::Dataset;
pub use optimizer::AdamWState;
pub use schedule::LrSchedule;
pub use trainer::{
    evaluate, predict, shuffled, EpochLog, Observer, StepLog, TrainConfig, TrainState, Trainer,
};
