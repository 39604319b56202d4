//! Criterion benchmarks of the whole case list (`benches::case::cases`): every
//! Backend kernel forward and backward, the composite losses and one training step of
//! each model, on every device present, at the `small` and `paper` shape sets.
//!
//! ```text
//! cargo bench -p benches                                   # small and paper, cpu (+ features)
//! BENCH_SHAPES=small cargo bench -p benches                # one set
//! BENCH_BACKENDS=cpu,reference cargo bench -p benches      # pick backends
//! cargo bench -p benches --no-default-features              # CPU and reference only
//! cargo bench -p benches -- 'cpu/small/gemm'               # criterion's filter
//! ```
//!
//! Benchmark ids are `{device}/{set}/{kernel}/{shape}`. Each sample is timed by the
//! device's [`DeviceClock`] through `iter_custom` (the host clock around `sync` on
//! the CPU; device timers on GPU backends once they provide them), with criterion's
//! own warm-up. Throughput is flops for cases whose floor counts them (criterion's
//! "elem/s" then reads as FLOP/s) and least bytes moved otherwise (B/s). The floors
//! of every device are measured first and printed; fractions of the floor, devices
//! side by side and the PyTorch column are the report's job
//! (`cargo run --release -p benches --bin report`).
//!
//! Without `--bench` (as under `cargo test --benches`) criterion runs each benchmark
//! once, at the `tiny` shapes.

use benches::case::{cases, Case};
use benches::clock::DeviceClock;
use benches::devices::{visit, DeviceKind, DeviceVisitor, KNOWN_BACKENDS};
use benches::floors::{measure_floors, FloorConfig};
use benches::prepare::prepare;
use benches::shapes::ShapeSet;
use brain_core::Backend;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::time::Duration;

struct Harness {
    c: Criterion,
    sets: Vec<ShapeSet>,
    bench_mode: bool,
}

impl DeviceVisitor for Harness {
    fn device<B: Backend<Elem = f32>>(
        &mut self,
        kind: DeviceKind<'_>,
        be: &B,
        clock: &dyn DeviceClock,
    ) {
        println!("== {}: {} ({})", kind.id, be.name(), clock.describe());
        if self.bench_mode {
            let largest = self.sets.iter().copied().max().unwrap_or(ShapeSet::Small);
            let cfg = FloorConfig::for_set(largest);
            match measure_floors(be, clock, &cfg, kind.host_probes, &mut |l| {
                println!("   {l}")
            }) {
                Ok(f) => println!(
                    "   floors: {:.1} GFLOP/s, {:.1} GB/s at the largest copy\n",
                    f.flop_rate(),
                    f.peak_bandwidth()
                ),
                Err(e) => println!("   floors not measured: {e}"),
            }
        }
        for &set in &self.sets {
            if kind.scalar && set == ShapeSet::Paper {
                println!(
                    "not benchmarked: {}: paper shapes on a scalar backend",
                    kind.id
                );
                continue;
            }
            let mut g = self.c.benchmark_group(format!("{}/{set}", kind.id));
            for case in cases(set) {
                bench_case(&mut g, be, clock, &case, set);
            }
            g.finish();
        }
    }

    fn skip(&mut self, line: String) {
        println!("{line}");
    }
}

fn bench_case<B: Backend<Elem = f32>>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    be: &B,
    clock: &dyn DeviceClock,
    case: &Case,
    set: ShapeSet,
) {
    let id = BenchmarkId::new(case.name(), case.shape());
    let mut call = match prepare(be, &case.op) {
        Ok(c) => c,
        Err(e) => {
            println!("not benchmarked: {}: {e}", case.id());
            return;
        }
    };
    let cost = case.cost();
    g.throughput(if cost.flops > 0.0 {
        Throughput::Elements(cost.flops as u64)
    } else {
        Throughput::BytesDecimal(cost.bytes as u64)
    });
    let slow = case.is_model_step() || set == ShapeSet::Paper;
    g.sample_size(if slow { 10 } else { 30 });
    g.sampling_mode(if slow {
        SamplingMode::Flat
    } else {
        SamplingMode::Auto
    });
    g.measurement_time(Duration::from_secs(if case.is_model_step() {
        20
    } else {
        3
    }));
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            clock
                .time(&mut || {
                    for _ in 0..iters {
                        call()?;
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{}: {e}", case.id()))
        })
    });
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let sets = match std::env::var("BENCH_SHAPES") {
        Ok(s) => ShapeSet::parse_list(&s).unwrap_or_else(|e| panic!("BENCH_SHAPES: {e}")),
        Err(_) if bench_mode => vec![ShapeSet::Small, ShapeSet::Paper],
        Err(_) => vec![ShapeSet::Tiny],
    };
    let backends = env_list("BENCH_BACKENDS").unwrap_or_else(|| {
        benches::devices::DEFAULT_BACKENDS
            .map(String::from)
            .to_vec()
    });
    let mut h = Harness {
        c: Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .configure_from_args(),
        sets,
        bench_mode,
    };
    for b in KNOWN_BACKENDS
        .iter()
        .filter(|k| backends.iter().any(|b| b == *k))
    {
        visit(b, None, &mut h);
    }
    h.c.final_summary();
}
