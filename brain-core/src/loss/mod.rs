//! Losses composed from Backend kernels, written once for every backend: each holds
//! its scratch buffers (allocated once per batch shape) and exposes `forward`/`backward`.

pub mod cka;
pub mod contrastive;
pub mod multi_granularity;
