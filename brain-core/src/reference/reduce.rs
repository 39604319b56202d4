//! Reductions along the last dim.

use crate::element::Element;
use crate::ops::RowReduce;

/// max that propagates NaN (`Float::max` would drop it).
#[inline]
pub fn nan_max<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if b > a {
        b
    } else {
        a
    }
}

/// One row.
pub fn reduce_row<T: Element>(op: RowReduce, x: &[T]) -> T {
    match op {
        RowReduce::Sum => x.iter().fold(T::zero(), |a, &v| a + v),
        RowReduce::Mean => x.iter().fold(T::zero(), |a, &v| a + v) / T::from_f64(x.len() as f64),
        RowReduce::Max => x.iter().fold(T::neg_infinity(), |a, &v| nan_max(a, v)),
        RowReduce::SumSquares => x.iter().fold(T::zero(), |a, &v| a + v * v),
        RowReduce::LogSumExp => {
            let m = x.iter().fold(T::neg_infinity(), |a, &v| nan_max(a, v));
            if m.is_infinite() {
                // all −∞ gives −∞; any +∞ gives +∞ (exp would make ∞−∞ = NaN)
                return m;
            }
            let s = x.iter().fold(T::zero(), |a, &v| a + (v - m).exp());
            m + s.ln()
        }
    }
}

/// out[rows] = reduce(x[rows, cols])
pub fn reduce_rows<T: Element>(op: RowReduce, out: &mut [T], x: &[T], rows: usize, cols: usize) {
    for r in 0..rows {
        out[r] = reduce_row(op, &x[r * cols..(r + 1) * cols]);
    }
}
