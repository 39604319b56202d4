//! Benchmarks of the brain-decoding kernels, judged as SPEC §9 asks: as ratios
//! against floors (peak FLOP rate, memory bandwidth) measured in the same run, on
//! every backend and device present, beside PyTorch on the same machine.
//!
//! - [`shapes`], [`case`]: the case list, every `Backend` kernel forward and
//!   backward, the composite losses and one training step per model, at the `tiny`,
//!   `small` and `paper` shape sets, each with its flops and least bytes moved;
//! - [`prepare`]: each case as a closure over its buffers, for any
//!   `B: Backend<Elem = f32>`;
//! - [`clock`]: the [`clock::DeviceClock`] seam (host clock on the CPU; device timers
//!   for GPU backends), warm-up and medians;
//! - [`floors`]: per-device floors through the `Backend` trait (a large GEMM, a copy
//!   ladder) plus the CPU's host probes ([`peak`]);
//! - [`report`], [`render`], [`torch`], [`devices`]: the report command
//!   (`cargo run --release -p benches --bin report`), its Markdown/JSON/PNG output,
//!   the PyTorch column and the GPU backends behind cargo features.
//!
//! `cargo bench -p benches` runs the same case list under criterion
//! (`benches/kernels.rs`). The older [`cases`] module keeps the GEMM/LayerNorm summary
//! of BENCHMARKS.md (`--bin summary`).

pub mod case;
pub mod cases;
pub mod clock;
pub mod devices;
pub mod floors;
pub mod peak;
pub mod prepare;
pub mod render;
pub mod report;
pub mod shapes;
pub mod torch;

/// The CPU backend under test: one pool thread per available core.
pub fn cpu_backend() -> backend_cpu::CpuBackend {
    backend_cpu::CpuBackend::new()
}
