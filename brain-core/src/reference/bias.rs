//! Bias over the channel dim of `[outer, channels, inner]`.

use crate::element::Element;

/// y[o,c,i] += b[c]
pub fn bias_add<T: Element>(y: &mut [T], b: &[T], outer: usize, channels: usize, inner: usize) {
    for o in 0..outer {
        for c in 0..channels {
            let base = (o * channels + c) * inner;
            for v in &mut y[base..base + inner] {
                *v = *v + b[c];
            }
        }
    }
}

/// db[c] += Σ_{o,i} dy[o,c,i]
pub fn bias_backward<T: Element>(
    db: &mut [T],
    dy: &[T],
    outer: usize,
    channels: usize,
    inner: usize,
) {
    for c in 0..channels {
        let mut acc = T::zero();
        for o in 0..outer {
            let base = (o * channels + c) * inner;
            for &v in &dy[base..base + inner] {
                acc = acc + v;
            }
        }
        db[c] = db[c] + acc;
    }
}
