//! Timers: how long the device work of a call takes, and medians over repeats.
//!
//! [`DeviceClock`] is the seam each backend fills: the CPU (and any synchronous
//! backend) is timed by [`HostClock`], the host clock between two `sync`s; a GPU
//! backend should time with its own device timers (CUDA events recorded on the
//! backend's stream, wgpu timestamp queries written before and after the calls), so
//! that host-side submission and driver latency are not counted as kernel time: those
//! are in `src/devices/` (`WgpuTimestampClock`, `CudaEventClock`).

use brain_core::{Backend, Result};
use std::time::{Duration, Instant};

/// Times the device work queued by a closure.
pub trait DeviceClock {
    /// Run `f` once and return how long the device took for the work it queued.
    ///
    /// Work queued before `f` must not be counted (wait for it first); the work `f`
    /// queues must be complete, or at least its end time known, when this returns.
    fn time(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Duration>;

    /// What the figures are: `"host clock around sync"`, `"CUDA events"`, ….
    fn describe(&self) -> String;
}

/// The host's monotonic clock between `sync` before and `sync` after: exact for a
/// synchronous backend (the CPU), and an upper bound on the device time of an
/// asynchronous one (it adds submission and the final wait).
pub struct HostClock<'a, B: Backend + ?Sized> {
    be: &'a B,
}

impl<'a, B: Backend + ?Sized> HostClock<'a, B> {
    /// A host clock for `be`.
    pub fn new(be: &'a B) -> Self {
        HostClock { be }
    }
}

impl<B: Backend + ?Sized> DeviceClock for HostClock<'_, B> {
    fn time(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Duration> {
        self.be.sync()?;
        let t = Instant::now();
        f()?;
        self.be.sync()?;
        Ok(t.elapsed())
    }

    fn describe(&self) -> String {
        "host clock around sync".into()
    }
}

/// How long to measure one case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Time spent warming up (at least one call, at most `max_warmup` calls).
    pub warmup: Duration,
    /// Most warm-up calls.
    pub max_warmup: usize,
    /// Time spent sampling once `min_samples` are taken.
    pub budget: Duration,
    /// Fewest samples.
    pub min_samples: usize,
    /// Most samples.
    pub max_samples: usize,
    /// Calls are grouped so that one sample lasts at least this long (clock
    /// resolution and per-sample overhead, e.g. `sync`, then weigh little); a
    /// sample's figure is its time divided by its calls.
    pub min_sample: Duration,
}

impl Policy {
    /// Kernels: 0.2 s warm-up, ~1 s of samples (5 to 200), samples of ≥ 0.5 ms.
    pub fn kernels() -> Self {
        Policy {
            warmup: Duration::from_millis(200),
            max_warmup: 50,
            budget: Duration::from_secs(1),
            min_samples: 5,
            max_samples: 200,
            min_sample: Duration::from_micros(500),
        }
    }

    /// Model training steps: one warm-up step, 3 to 10 steps within ~5 s.
    pub fn steps() -> Self {
        Policy {
            warmup: Duration::ZERO,
            max_warmup: 1,
            budget: Duration::from_secs(5),
            min_samples: 3,
            max_samples: 10,
            min_sample: Duration::ZERO,
        }
    }

    /// Quick figures for tests: a few samples within ~20 ms.
    pub fn quick() -> Self {
        Policy {
            warmup: Duration::from_millis(2),
            max_warmup: 2,
            budget: Duration::from_millis(20),
            min_samples: 3,
            max_samples: 20,
            min_sample: Duration::from_micros(100),
        }
    }

    /// This policy with the sampling budget scaled by `factor`.
    pub fn scaled(mut self, factor: f64) -> Self {
        self.budget = self.budget.mul_f64(factor.max(0.0));
        self.warmup = self.warmup.mul_f64(factor.max(0.0));
        self
    }
}

/// The figures of one measured case.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Median time of one call.
    pub median: Duration,
    /// Fastest sample (per call).
    pub min: Duration,
    /// Slowest sample (per call).
    pub max: Duration,
    /// Samples taken.
    pub samples: usize,
    /// Calls per sample.
    pub calls_per_sample: usize,
    /// Warm-up calls made before sampling.
    pub warmup_calls: usize,
}

/// Median over samples of `f` timed by `clock`: warm-up first (the first call, timed,
/// also surfaces errors and sizes the samples), then samples of `calls_per_sample`
/// calls each until the budget is spent.
pub fn measure(
    clock: &dyn DeviceClock,
    f: &mut dyn FnMut() -> Result<()>,
    policy: &Policy,
) -> Result<Timing> {
    let start = Instant::now();
    let mut first = clock.time(f)?;
    let mut warmup_calls = 1;
    while warmup_calls < policy.max_warmup && start.elapsed() < policy.warmup {
        first = first.min(clock.time(f)?);
        warmup_calls += 1;
    }
    let per_call = first.max(Duration::from_nanos(50));
    let calls = if per_call >= policy.min_sample {
        1
    } else {
        (policy.min_sample.as_nanos() / per_call.as_nanos()).clamp(1, 10_000) as usize
    };
    let mut samples: Vec<Duration> = Vec::with_capacity(policy.max_samples.min(1024));
    let t0 = Instant::now();
    while samples.len() < policy.min_samples.max(1)
        || (samples.len() < policy.max_samples && t0.elapsed() < policy.budget)
    {
        let d = if calls == 1 {
            clock.time(f)?
        } else {
            clock.time(&mut || {
                for _ in 0..calls {
                    f()?;
                }
                Ok(())
            })? / calls as u32
        };
        samples.push(d);
    }
    samples.sort_unstable();
    let n = samples.len();
    let median = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    Ok(Timing {
        median,
        min: samples[0],
        max: samples[n - 1],
        samples: n,
        calls_per_sample: calls,
        warmup_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that reports a fixed time per call of the closure's inner counter.
    struct FakeClock<'a>(&'a Cell<u32>);
    impl DeviceClock for FakeClock<'_> {
        fn time(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Duration> {
            let before = self.0.get();
            f()?;
            let calls = self.0.get() - before;
            Ok(Duration::from_micros(10) * calls)
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    #[test]
    fn groups_short_calls_and_reports_per_call_medians() {
        let n = Cell::new(0);
        let clock = FakeClock(&n);
        let mut f = || {
            n.set(n.get() + 1);
            Ok(())
        };
        let t = measure(&clock, &mut f, &Policy::quick()).unwrap();
        assert_eq!(t.median, Duration::from_micros(10));
        assert_eq!(t.calls_per_sample, 10);
        assert!(t.samples >= 3);
    }

    #[test]
    fn errors_surface() {
        let be = brain_core::reference::ReferenceBackend::<f32>::new();
        let clock = HostClock::new(&be);
        let mut f = || Err(brain_core::BrainError::Unsupported("nope".into()));
        assert!(measure(&clock, &mut f, &Policy::quick()).is_err());
    }
}
