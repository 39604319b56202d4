//! Integer-factor upsampling on NCHW, PyTorch rules.

use crate::element::Element;
use crate::ops::UpsampleShape;

/// Bilinear source coordinate for output index `dst` (align_corners = false):
/// src = (dst + ½)/k − ½ clamped at 0; returns (i0, i1, λ1) with i1 = min(i0+1, len−1).
#[inline]
pub fn bilinear_source<T: Element>(dst: usize, factor: usize, len: usize) -> (usize, usize, T) {
    let scale = T::one() / T::from_f64(factor as f64);
    let src = (T::from_f64(dst as f64) + T::from_f64(0.5)) * scale - T::from_f64(0.5);
    let src = if src < T::zero() { T::zero() } else { src };
    let i0 = src.floor().to_usize().unwrap_or(0).min(len - 1);
    let i1 = if i0 + 1 < len { i0 + 1 } else { i0 };
    (i0, i1, src - T::from_f64(i0 as f64))
}

/// y[N,C,H·k,W·k] from x[N,C,H,W]: y[.., oy, ox] = x[.., oy/k, ox/k]
pub fn nearest_forward<T: Element>(y: &mut [T], x: &[T], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * k, w * k);
    for p in 0..s.batch * s.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                y[(p * oh + oy) * ow + ox] = x[(p * h + oy / k) * w + ox / k];
            }
        }
    }
}

/// dx[N,C,H,W] = Σ over the k×k block of dy
pub fn nearest_backward<T: Element>(dx: &mut [T], dy: &[T], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * k, w * k);
    dx.iter_mut().for_each(|v| *v = T::zero());
    for p in 0..s.batch * s.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let i = (p * h + oy / k) * w + ox / k;
                dx[i] = dx[i] + dy[(p * oh + oy) * ow + ox];
            }
        }
    }
}

/// y[N,C,H·k,W·k] = bilinear interpolation of x[N,C,H,W]
pub fn bilinear_forward<T: Element>(y: &mut [T], x: &[T], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * k, w * k);
    let one = T::one();
    for p in 0..s.batch * s.channels {
        let xp = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            let (y0, y1, ly) = bilinear_source::<T>(oy, k, h);
            for ox in 0..ow {
                let (x0, x1, lx) = bilinear_source::<T>(ox, k, w);
                let v = (one - ly) * ((one - lx) * xp[y0 * w + x0] + lx * xp[y0 * w + x1])
                    + ly * ((one - lx) * xp[y1 * w + x0] + lx * xp[y1 * w + x1]);
                y[(p * oh + oy) * ow + ox] = v;
            }
        }
    }
}

/// dx[N,C,H,W]: each dy scattered to its four sources with the bilinear weights
pub fn bilinear_backward<T: Element>(dx: &mut [T], dy: &[T], s: &UpsampleShape) {
    let (h, w, k) = (s.height, s.width, s.factor);
    let (oh, ow) = (h * k, w * k);
    let one = T::one();
    dx.iter_mut().for_each(|v| *v = T::zero());
    for p in 0..s.batch * s.channels {
        let dxp = &mut dx[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            let (y0, y1, ly) = bilinear_source::<T>(oy, k, h);
            for ox in 0..ow {
                let (x0, x1, lx) = bilinear_source::<T>(ox, k, w);
                let g = dy[(p * oh + oy) * ow + ox];
                dxp[y0 * w + x0] = dxp[y0 * w + x0] + (one - ly) * (one - lx) * g;
                dxp[y0 * w + x1] = dxp[y0 * w + x1] + (one - ly) * lx * g;
                dxp[y1 * w + x0] = dxp[y1 * w + x0] + ly * (one - lx) * g;
                dxp[y1 * w + x1] = dxp[y1 * w + x1] + ly * lx * g;
            }
        }
    }
}
