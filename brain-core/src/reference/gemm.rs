//! GEMM by the definition: one dot product per output, accumulated in `T`.

use crate::element::Element;
use crate::ops::Gemm;

/// `c = alpha·op(a)·op(b) + beta·c` for every matrix of the batch.
/// a: batch × (m×k or k×m), b: batch × (k×n or n×k), c: batch × m×n.
pub fn gemm<T: Element>(g: &Gemm, a: &[T], b: &[T], c: &mut [T]) {
    let (m, n, k) = (g.m, g.n, g.k);
    let alpha = T::from_f64(g.alpha);
    let beta = T::from_f64(g.beta);
    for p in 0..g.batch {
        let a = &a[p * g.stride_a..];
        let b = &b[p * g.stride_b..];
        let c = &mut c[p * g.stride_c..p * g.stride_c + m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::zero();
                for l in 0..k {
                    let av = if g.trans_a {
                        a[l * m + i]
                    } else {
                        a[i * k + l]
                    };
                    let bv = if g.trans_b {
                        b[j * k + l]
                    } else {
                        b[l * n + j]
                    };
                    acc = acc + av * bv;
                }
                // beta = 0 overwrites, as BLAS does (NaN in C does not leak through).
                let old = if g.beta == 0.0 {
                    T::zero()
                } else {
                    beta * c[i * n + j]
                };
                c[i * n + j] = alpha * acc + old;
            }
        }
    }
}
