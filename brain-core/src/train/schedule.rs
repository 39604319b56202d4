//! Learning-rate schedules, as functions of the 0-based step and the run's length.

use libm::cos;

/// How the learning rate moves over a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Linear warm-up from base/warmup to base over `warmup` steps, then cosine decay
    /// to `base·min_ratio` at the last step.
    WarmupCosine {
        /// Warm-up steps.
        warmup: u64,
        /// Final rate as a fraction of the base rate.
        min_ratio: f64,
    },
    /// PyTorch's `OneCycleLR` (cosine annealing, two phases): from base/div_factor up
    /// to base over the first `pct_start` of the run, then down to
    /// base/(div_factor·final_div_factor). MindEye trains with it.
    OneCycle {
        /// Fraction of the run spent rising.
        pct_start: f64,
        /// base / initial rate.
        div_factor: f64,
        /// initial / final rate.
        final_div_factor: f64,
    },
}

fn cos_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * (1.0 + cos(core::f64::consts::PI * pct))
}

impl LrSchedule {
    /// The rate of step `step` (0-based) of a run of `total` steps with base rate `base`.
    pub fn lr(&self, base: f64, step: u64, total: u64) -> f64 {
        let total = total.max(1);
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::WarmupCosine { warmup, min_ratio } => {
                if step < warmup {
                    return base * (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                cos_anneal(base, base * min_ratio, progress)
            }
            LrSchedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = base / div_factor;
                let min = initial / final_div_factor;
                let up_end = pct_start * total as f64 - 1.0;
                let down_end = total as f64 - 1.0;
                let s = step as f64;
                if s <= up_end {
                    cos_anneal(initial, base, s / up_end)
                } else {
                    cos_anneal(base, min, ((s - up_end) / (down_end - up_end)).min(1.0))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=10, pct_start=0.3,
    /// div_factor=25, final_div_factor=1e4), read from PyTorch 2.15.
    #[test]
    fn one_cycle_matches_pytorch() {
        let torch = [
            0.0040000000000000036,
            0.052000000000000005,
            0.1,
            0.09504846320134738,
            0.0811745653949763,
            0.06112620219362893,
            0.03887419780637107,
            0.0188258346050237,
            0.004951936798652629,
            4e-07,
        ];
        let s = LrSchedule::OneCycle {
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        };
        for (i, want) in torch.iter().enumerate() {
            let got = s.lr(0.1, i as u64, 10);
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1e-6),
                "step {i}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule::WarmupCosine {
            warmup: 4,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr(1.0, 0, 20), 0.25);
        assert_eq!(s.lr(1.0, 3, 20), 1.0);
        assert!((s.lr(1.0, 4, 20) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 12, 20) - 0.55).abs() < 1e-12);
        assert!((s.lr(1.0, 20, 20) - 0.1).abs() < 1e-12);
    }
}
