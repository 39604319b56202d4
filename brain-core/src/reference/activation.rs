//! GELU (erf and tanh forms) and SiLU, forward and backward, per element.

use crate::element::Element;
use crate::ops::Activation;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const GELU_TANH_C: f64 = 0.044_715;

/// f(x) for one element.
#[inline]
pub fn activation<T: Element>(act: Activation, x: T) -> T {
    let half = T::from_f64(0.5);
    let one = T::one();
    match act {
        Activation::GeluErf => {
            half * x * (one + (x * T::from_f64(core::f64::consts::FRAC_1_SQRT_2)).erf())
        }
        Activation::GeluTanh => {
            let inner = T::from_f64(SQRT_2_OVER_PI) * (x + T::from_f64(GELU_TANH_C) * x * x * x);
            half * x * (one + inner.tanh())
        }
        Activation::Silu => x / (one + (-x).exp()),
    }
}

/// f'(x) for one element.
#[inline]
pub fn activation_grad<T: Element>(act: Activation, x: T) -> T {
    let half = T::from_f64(0.5);
    let one = T::one();
    match act {
        Activation::GeluErf => {
            let cdf = half * (one + (x * T::from_f64(core::f64::consts::FRAC_1_SQRT_2)).erf());
            let pdf = T::from_f64(INV_SQRT_2PI) * (-half * x * x).exp();
            cdf + x * pdf
        }
        Activation::GeluTanh => {
            let c = T::from_f64(GELU_TANH_C);
            let k = T::from_f64(SQRT_2_OVER_PI);
            let t = (k * (x + c * x * x * x)).tanh();
            half * (one + t) + half * x * (one - t * t) * k * (one + T::from_f64(3.0) * c * x * x)
        }
        Activation::Silu => {
            let s = one / (one + (-x).exp());
            s * (one + x * (one - s))
        }
    }
}

/// y[n] = f(x[n])
pub fn activation_forward<T: Element>(act: Activation, y: &mut [T], x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = activation(act, x);
    }
}

/// dx[n] = dy[n]·f'(x[n])
pub fn activation_backward<T: Element>(act: Activation, dx: &mut [T], x: &[T], dy: &[T]) {
    for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *dx = dy * activation_grad(act, x);
    }
}
