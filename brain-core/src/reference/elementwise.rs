//! Residual add, scale, axpy.

use crate::element::Element;

/// out[n] = a[n] + b[n]
pub fn add<T: Element>(out: &mut [T], a: &[T], b: &[T]) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// x[n] *= alpha
pub fn scale<T: Element>(x: &mut [T], alpha: T) {
    for v in x {
        *v = *v * alpha;
    }
}

/// y[n] += alpha·x[n]
pub fn axpy<T: Element>(y: &mut [T], alpha: T, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + alpha * x;
    }
}
