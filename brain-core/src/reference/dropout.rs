//! Inverted dropout whose mask is Philox word `i` of stream `(seed, offset)`.

use crate::element::Element;
use crate::ops::Dropout;
use crate::philox;

/// Whether element `i` is kept.
#[inline]
pub fn keep(d: &Dropout, threshold: u32, i: u64) -> bool {
    philox::bits24(philox::word(d.seed, d.offset, i)) >= threshold
}

/// y[n] = x[n]·(keep ? 1/(1−p) : 0). A multiply, not a select, so NaN and Inf
/// in dropped positions still propagate (as PyTorch's `x * mask / (1 − p)` does).
pub fn dropout_forward<T: Element>(d: &Dropout, y: &mut [T], x: &[T]) {
    let t = d.threshold();
    let scale = T::from_f64(d.keep_scale());
    for (i, (y, &x)) in y.iter_mut().zip(x).enumerate() {
        *y = x * if keep(d, t, i as u64) {
            scale
        } else {
            T::zero()
        };
    }
}

/// dx[n] = keep ? dy[n]/(1−p) : 0 (same mask as the forward pass)
pub fn dropout_backward<T: Element>(d: &Dropout, dx: &mut [T], dy: &[T]) {
    dropout_forward(d, dx, dy)
}
