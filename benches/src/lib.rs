//! Benchmarks of the brain-decoding kernels, judged as SPEC §9 asks: as ratios
//! against floors (peak FMA rate, memory bandwidth) measured in the same run.
//!
//! - [`peak`]: this machine's floors.
//! - [`cases`]: the benchmarked kernels and shapes, and the summary table.
//!
//! `cargo bench -p benches` runs the criterion benchmarks (`benches/kernels.rs`) and
//! prints the summary table; `cargo run --release -p benches --bin summary` prints
//! only the floors and the table (Markdown, for BENCHMARKS.md).

pub mod cases;
pub mod peak;

/// The CPU backend under test: one pool thread per available core.
pub fn cpu_backend() -> backend_cpu::CpuBackend {
    backend_cpu::CpuBackend::new()
}
