//! wgpu backend for brain-core: not implemented yet.
//!
//! This crate holds the place that SPEC section 2 gives it in the workspace. The
//! implementation (WGSL compute shaders, conformance on lavapipe) is the subject of
//! its own issue; until then the crate exports nothing, so nothing can mistake it
//! for a working backend.
