//! Linear layer in PyTorch's layout: weight `[out, in]`, `y = x·Wᵀ + b`.

use crate::element::Element;

/// y[rows,out] = x[rows,in] · w[out,in]ᵀ + b[out]
pub fn linear_forward<T: Element>(
    y: &mut [T],
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    rows: usize,
    in_f: usize,
    out_f: usize,
) {
    for r in 0..rows {
        let xr = &x[r * in_f..(r + 1) * in_f];
        for o in 0..out_f {
            let wo = &w[o * in_f..(o + 1) * in_f];
            let mut acc = b.map_or(T::zero(), |b| b[o]);
            for i in 0..in_f {
                acc = acc + xr[i] * wo[i];
            }
            y[r * out_f + o] = acc;
        }
    }
}

/// dx[rows,in] = dy·w (overwritten); dw[out,in] += dyᵀ·x; db[out] += Σ_rows dy.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Element>(
    dx: Option<&mut [T]>,
    dw: Option<&mut [T]>,
    db: Option<&mut [T]>,
    dy: &[T],
    x: &[T],
    w: &[T],
    rows: usize,
    in_f: usize,
    out_f: usize,
) {
    if let Some(dx) = dx {
        for r in 0..rows {
            for i in 0..in_f {
                let mut acc = T::zero();
                for o in 0..out_f {
                    acc = acc + dy[r * out_f + o] * w[o * in_f + i];
                }
                dx[r * in_f + i] = acc;
            }
        }
    }
    if let Some(dw) = dw {
        for o in 0..out_f {
            for i in 0..in_f {
                let mut acc = T::zero();
                for r in 0..rows {
                    acc = acc + dy[r * out_f + o] * x[r * in_f + i];
                }
                dw[o * in_f + i] = dw[o * in_f + i] + acc;
            }
        }
    }
    if let Some(db) = db {
        for o in 0..out_f {
            let mut acc = T::zero();
            for r in 0..rows {
                acc = acc + dy[r * out_f + o];
            }
            db[o] = db[o] + acc;
        }
    }
}
