//! Criterion benchmarks of GEMM and LayerNorm on the CPU and reference backends.
//!
//! Run with `cargo bench -p benches`. The machine's floors (peak FMA rate, memory
//! bandwidth) are measured first and printed; after criterion, a summary table gives
//! each kernel's median time and its fraction of the floor (SPEC §9: ratios measured
//! in the same run). Criterion's throughput lines read as follows:
//! - GEMM uses `Throughput::Elements(flops)`, so criterion's "Gelem/s" is GFLOP/s;
//! - LayerNorm uses `Throughput::BytesDecimal(bytes moved)`, printed as GB/s.
//!
//! Without `--bench` (as under `cargo test --all-targets`) criterion only checks that
//! each benchmark runs once, and the floors and summary are skipped.

use benches::cases::{cpu_cases, markdown_table, reference_cases, summary, Kernel, Prepared, Work};
use benches::peak::MachinePeak;
use brain_core::reference::ReferenceBackend;
use brain_core::Backend;
use criterion::{BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn bench_backend<B: Backend<Elem = f32>>(
    c: &mut Criterion,
    group: &str,
    be: &B,
    cases: &[Kernel],
    sample_size: Option<usize>,
) {
    let mut g = c.benchmark_group(group);
    if let Some(n) = sample_size {
        g.sample_size(n);
    }
    for &kernel in cases {
        // Buffers are allocated here, outside the timed closure.
        let mut prep = Prepared::new(be, kernel).expect("benchmark setup failed");
        g.throughput(match kernel.work() {
            Work::Flops { flops, .. } => Throughput::Elements(flops), // Gelem/s = GFLOP/s
            Work::Bytes(b) => Throughput::BytesDecimal(b),
        });
        g.bench_function(BenchmarkId::new(kernel.name(), kernel.shape()), |bch| {
            // `run` calls the kernel, then `sync`.
            bch.iter(|| prep.run().expect("kernel failed"))
        });
    }
    g.finish();
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let peak = bench_mode.then(|| {
        let p = MachinePeak::measure();
        println!("{p}\n");
        p
    });

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let cpu = benches::cpu_backend();
    bench_backend(&mut c, "cpu", &cpu, &cpu_cases(), None);
    // The scalar reference backend: small shapes, few samples.
    let reference = ReferenceBackend::<f32>::new();
    bench_backend(
        &mut c,
        "reference-f32",
        &reference,
        &reference_cases(),
        Some(10),
    );
    c.final_summary();

    if let Some(first) = peak {
        // Floors measured again after the kernels; the best of each figure is kept.
        match summary() {
            Ok(rows) => {
                let after = MachinePeak::measure();
                println!("\nafter the kernels: {after}");
                let peak = first.best(after);
                println!("floors (best of each): {peak}\n");
                print!("{}", markdown_table(&rows, &peak));
            }
            Err(e) => {
                eprintln!("summary failed: {e}");
                std::process::exit(1);
            }
        }
    }
}
