//! Test data: deterministic pseudo-random inputs, shape strategies, and moving
//! buffers between a backend under test and the f64 oracle.

use brain_core::reference::ReferenceBackend;
use brain_core::{Backend, Element};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The oracle every backend is compared with.
pub type Oracle = ReferenceBackend<f64>;

/// SplitMix64: small, seedable, and identical everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    /// `n` values uniform in [lo, hi).
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Round f64 data to the element type of `B` and back, so the oracle sees exactly
/// the values the backend sees.
pub fn representable<B: Backend>(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| B::Elem::from_f64(x).to_f64()).collect()
}

/// Upload f64 data to a backend (rounding to its element type).
pub fn up<B: Backend>(be: &B, v: &[f64]) -> B::Buffer {
    let data: Vec<B::Elem> = v.iter().map(|&x| B::Elem::from_f64(x)).collect();
    be.upload(&data).expect("upload")
}

/// Download a buffer as f64.
pub fn down<B: Backend>(be: &B, buf: &B::Buffer) -> Vec<f64> {
    be.download_vec(buf)
        .expect("download")
        .into_iter()
        .map(|x| x.to_f64())
        .collect()
}

/// Dimensions that stress tiling: 1, primes, tile sizes ± 1, and anything in 1..=max.
pub fn dim(max: usize) -> BoxedStrategy<usize> {
    let special: Vec<usize> = [
        1usize, 2, 3, 5, 7, 13, 17, 31, 33, 63, 64, 65, 127, 129, 257, 1021, 4099, 16411,
    ]
    .into_iter()
    .filter(|&d| d <= max)
    .collect();
    prop_oneof![proptest::sample::select(special), 1..=max].boxed()
}

/// Run `cases` proptest cases of `strategy` through `body`, panicking with the
/// minimal failing input (these functions are test bodies).
pub fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    body: impl Fn(S::Value) -> Result<(), String>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    if let Err(e) = runner.run(&strategy, |v| body(v).map_err(TestCaseError::fail)) {
        panic!("{name}: {e}");
    }
}
