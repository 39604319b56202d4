//! AdamW with global-norm clipping, PyTorch semantics (see [`crate::ops::AdamW`]).

use crate::element::Element;
use crate::ops::{AdamW, CLIP_NORM_EPS};

/// Clip coefficient min(1, max_norm/(norm + 1e-6)); NaN norm gives NaN (as torch.clamp).
#[inline]
pub fn clip_coefficient<T: Element>(norm: T, max_norm: Option<f64>) -> T {
    match max_norm {
        None => T::one(),
        Some(mx) => {
            let c = T::from_f64(mx) / (norm + T::from_f64(CLIP_NORM_EPS));
            if c.is_nan() || c < T::one() {
                c
            } else {
                T::one()
            }
        }
    }
}

/// Per-step scalars shared by every element: (decay, step_size, 1/√bc2, eps, β1, β2).
pub struct AdamWScalars<T> {
    /// 1 − lr·wd.
    pub decay: T,
    /// lr / (1 − β1^t).
    pub step_size: T,
    /// 1 / √(1 − β2^t).
    pub inv_sqrt_bc2: T,
    /// ε.
    pub eps: T,
    /// β1.
    pub beta1: T,
    /// β2.
    pub beta2: T,
}

impl<T: Element> AdamWScalars<T> {
    /// Bias corrections computed in f64 on the host, as PyTorch computes them in Python floats.
    pub fn new(cfg: &AdamW) -> Self {
        let t = cfg.step as i32;
        let bc1 = 1.0 - libm::pow(cfg.beta1, t as f64);
        let bc2 = 1.0 - libm::pow(cfg.beta2, t as f64);
        AdamWScalars {
            decay: T::from_f64(1.0 - cfg.lr * cfg.weight_decay),
            step_size: T::from_f64(cfg.lr / bc1),
            inv_sqrt_bc2: T::from_f64(1.0 / libm::sqrt(bc2)),
            eps: T::from_f64(cfg.eps),
            beta1: T::from_f64(cfg.beta1),
            beta2: T::from_f64(cfg.beta2),
        }
    }
}

/// One element: returns (p, m, v) after the update with (already clipped) gradient g.
#[inline(always)]
pub fn adamw_element<T: Element>(s: &AdamWScalars<T>, p: T, g: T, m: T, v: T) -> (T, T, T) {
    let one = T::one();
    let p = p * s.decay;
    let m = s.beta1 * m + (one - s.beta1) * g;
    let v = s.beta2 * v + (one - s.beta2) * g * g;
    let denom = v.sqrt() * s.inv_sqrt_bc2 + s.eps;
    (p - s.step_size * m / denom, m, v)
}

/// Σ g² over one tensor.
pub fn sum_squares<T: Element>(g: &[T]) -> T {
    g.iter().fold(T::zero(), |a, &v| a + v * v)
}

/// p, m, v updated in place from g scaled by `clip`.
pub fn adamw_tensor<T: Element>(
    s: &AdamWScalars<T>,
    clip: T,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
) {
    for i in 0..p.len() {
        let (pn, mn, vn) = adamw_element(s, p[i], g[i] * clip, m[i], v[i]);
        p[i] = pn;
        m[i] = mn;
        v[i] = vn;
    }
}
