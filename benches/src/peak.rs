//! This machine's floors, measured in the same run as the kernels they judge
//! (SPEC §9): the peak f32 FMA rate and the memory bandwidth.

use std::fmt;
use std::hint::black_box;
use std::time::Instant;

/// Independent accumulator chains: enough to cover FMA latency × FMA ports.
const CHAINS: usize = 12;
/// f32 lanes per chain (one 256-bit register).
const LANES: usize = 8;

/// Peak f32 FMA rate in GFLOP/s (an FMA counts 2 flops) with `threads` threads, each
/// running `iters` iterations of `CHAINS` independent 8-wide FMAs.
pub fn peak_fma_gflops(threads: usize, iters: u64) -> f64 {
    let threads = threads.max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || black_box(fma_chains(black_box(iters), 0.5 + t as f32)));
        }
    });
    let secs = start.elapsed().as_secs_f64();
    threads as f64 * iters as f64 * (CHAINS * LANES * 2) as f64 / secs / 1e9
}

fn fma_chains(iters: u64, seed: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { fma_chains_avx2(iters, seed) };
        }
    }
    fma_chains_scalar(iters, seed)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(iters: u64, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    // acc ← acc·mul + add converges to 1: no overflow, no denormals.
    let mul = _mm256_set1_ps(0.999_9);
    let add = _mm256_set1_ps(1e-4);
    let mut acc = [_mm256_set1_ps(seed); CHAINS];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, mul, add);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    let mut lanes = [0.0f32; LANES];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

/// Portable fallback with the same chain structure (the compiler may vectorise it).
fn fma_chains_scalar(iters: u64, seed: f32) -> f32 {
    let mut acc = [[seed; LANES]; CHAINS];
    for _ in 0..iters {
        for chain in acc.iter_mut() {
            for a in chain.iter_mut() {
                *a = *a * 0.999_9 + 1e-4;
            }
        }
    }
    acc.iter().flatten().sum()
}

/// Pixels per second, on `threads` threads, of the Sobel loss's square roots and
/// divisions (forward + backward of the magnitude form, gradient of pred only): per
/// pixel the forward takes √(gx² + gy² + ε) of pred and of target (2 square roots),
/// the backward recomputes both (2 more) and divides once (k = c(M_p − M_t)/M_p);
/// the rest (stencil, products, sums: adds and multiplies) is not counted. Measured
/// as that mix at full width, 8 `vsqrtps` and 2 `vdivps` chains per iteration (16
/// pixels), independent chains so the divide/square-root unit's throughput, not its
/// latency, is what is timed.
pub fn sobel_sqrt_div_pixels_per_sec(threads: usize, iters: u64) -> f64 {
    let threads = threads.max(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || black_box(sqrt_div_chains(black_box(iters), 1.0 + t as f32)));
        }
    });
    let secs = start.elapsed().as_secs_f64();
    threads as f64 * iters as f64 * (2 * LANES) as f64 / secs
}

fn sqrt_div_chains(iters: u64, seed: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { sqrt_div_chains_avx2(iters, seed) };
        }
    }
    sqrt_div_chains_scalar(iters, seed)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sqrt_div_chains_avx2(iters: u64, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    // a ← √a + ½ and b ← 1.5/b + ½ settle at fixed points near 1.9 and 1.5: no
    // special values a unit could shortcut.
    let (half, num) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.5));
    let mut a = [_mm256_set1_ps(seed + 1.0); 8];
    let mut b = [_mm256_set1_ps(seed + 2.0); 2];
    for _ in 0..iters {
        for x in a.iter_mut() {
            *x = _mm256_add_ps(_mm256_sqrt_ps(*x), half);
        }
        for y in b.iter_mut() {
            *y = _mm256_add_ps(_mm256_div_ps(num, *y), half);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for x in a.iter().chain(&b) {
        sum = _mm256_add_ps(sum, *x);
    }
    let mut lanes = [0.0f32; LANES];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

/// Portable fallback with the same mix (the compiler may vectorise it).
fn sqrt_div_chains_scalar(iters: u64, seed: f32) -> f32 {
    let mut a = [[seed + 1.0; LANES]; 8];
    let mut b = [[seed + 2.0; LANES]; 2];
    for _ in 0..iters {
        for x in a.iter_mut().flatten() {
            *x = x.sqrt() + 0.5;
        }
        for y in b.iter_mut().flatten() {
            *y = 1.5 / *y + 0.5;
        }
    }
    a.iter().chain(&b).flatten().sum()
}

/// Memory bandwidth in GB/s with `threads` threads over buffers of `bytes` bytes, best
/// of `reps`: `(copy, read)`. Copy counts the bytes read plus the bytes written; read
/// is a read-only sum of `u64` words. Each thread repeats its part enough times for a
/// timed run to move at least 64 MiB, so thread start-up does not dominate small
/// buffers (which then measure the cache level they fit in).
pub fn memory_bandwidth_gbs(threads: usize, bytes: usize, reps: usize) -> (f64, f64) {
    let threads = threads.max(1);
    let words = (bytes / 8).max(threads);
    let src: Vec<u64> = (0..words as u64).collect();
    let mut dst = vec![1u64; words]; // written: pages are mapped before timing
    let chunk = words.div_ceil(threads);
    let inner = ((64usize << 20) / (words * 8)).max(1);
    let (mut best_copy, mut best_read) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (d, s_) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || {
                    for _ in 0..inner {
                        d.copy_from_slice(s_);
                        black_box(&mut *d);
                    }
                });
            }
        });
        best_copy = best_copy.min(start.elapsed().as_secs_f64());
        black_box(&mut dst);

        let start = Instant::now();
        let total = std::thread::scope(|s| {
            let handles: Vec<_> = src
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        let mut acc = 0u64;
                        for _ in 0..inner {
                            acc = acc.wrapping_add(
                                black_box(c).iter().fold(0u64, |a, &x| a.wrapping_add(x)),
                            );
                        }
                        acc
                    })
                })
                .collect();
            handles
                .into_iter()
                .fold(0u64, |acc, h| acc.wrapping_add(h.join().unwrap()))
        });
        best_read = best_read.min(start.elapsed().as_secs_f64());
        black_box(total);
    }
    let b = (words * 8 * inner) as f64;
    (2.0 * b / best_copy / 1e9, b / best_read / 1e9)
}

/// The floors kernels are judged against, measured once per run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachinePeak {
    /// Threads used for every figure (all available hardware threads).
    pub threads: usize,
    /// Peak f32 FMA rate, GFLOP/s, on `threads` threads.
    pub fma_gflops: f64,
    /// Copy bandwidth (read + write bytes), GB/s.
    pub copy_gbs: f64,
    /// Read-only bandwidth, GB/s.
    pub read_gbs: f64,
    /// Size of each of the two buffers the bandwidth was measured with, bytes.
    pub buffer_bytes: usize,
}

impl MachinePeak {
    /// FMA iterations per thread per run (~0.2 s at 100 GFLOP/s per thread).
    const FMA_ITERS: u64 = 100_000_000;
    /// Bandwidth buffer size: 256 MiB, far above any last-level cache here.
    const BW_BYTES: usize = 256 << 20;

    /// Measure on all available threads: a warm-up, then the best of 3 runs.
    pub fn measure() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        black_box(peak_fma_gflops(threads, Self::FMA_ITERS / 10));
        let fma_gflops = (0..3)
            .map(|_| peak_fma_gflops(threads, Self::FMA_ITERS))
            .fold(0.0, f64::max);
        black_box(memory_bandwidth_gbs(threads, Self::BW_BYTES / 4, 1));
        let (copy_gbs, read_gbs) = memory_bandwidth_gbs(threads, Self::BW_BYTES, 3);
        MachinePeak {
            threads,
            fma_gflops,
            copy_gbs,
            read_gbs,
            buffer_bytes: Self::BW_BYTES,
        }
    }

    /// A quick measurement for tests: 5M FMA iterations and 32 MiB buffers, best of
    /// 2 (the bandwidth may then come partly from the last-level cache).
    pub fn measure_quick() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let fma_gflops = (0..2)
            .map(|_| peak_fma_gflops(threads, 5_000_000))
            .fold(0.0, f64::max);
        let (copy_gbs, read_gbs) = memory_bandwidth_gbs(threads, 32 << 20, 2);
        MachinePeak {
            threads,
            fma_gflops,
            copy_gbs,
            read_gbs,
            buffer_bytes: 32 << 20,
        }
    }

    /// Figure by figure, the better of two measurements. Peaks are best-of figures,
    /// so measuring again later in the same run (after the kernels) and keeping the
    /// best guards against a floor lowered by other load at the first measurement.
    pub fn best(self, other: MachinePeak) -> MachinePeak {
        MachinePeak {
            threads: self.threads.max(other.threads),
            fma_gflops: self.fma_gflops.max(other.fma_gflops),
            copy_gbs: self.copy_gbs.max(other.copy_gbs),
            read_gbs: self.read_gbs.max(other.read_gbs),
            buffer_bytes: self.buffer_bytes.min(other.buffer_bytes),
        }
    }
}

impl fmt::Display for MachinePeak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "machine peak ({} threads): f32 FMA {:.1} GFLOP/s, copy {:.1} GB/s, read {:.1} GB/s",
            self.threads, self.fma_gflops, self.copy_gbs, self.read_gbs
        )
    }
}
