//! Mean squared error.
//!
//! `*_checked` functions validate with [`crate::check`] and run the plain kernels;
//! [`ReferenceBackend`](super::ReferenceBackend) calls them.

use crate::check;
use crate::element::Element;
use crate::error::Result;

/// loss = Σ (a − b)² / N over a[N], b[N].
pub fn mse_forward<T: Element>(a: &[T], b: &[T]) -> T {
    let mut sum = T::zero();
    for i in 0..a.len() {
        let d = a[i] - b[i];
        sum = sum + d * d;
    }
    sum / T::from_f64(a.len() as f64)
}

/// da[N] += scale·2(a − b)/N, db[N] −= the same, over a[N], b[N].
pub fn mse_backward<T: Element>(
    a: &[T],
    b: &[T],
    scale: T,
    mut da: Option<&mut [T]>,
    mut db: Option<&mut [T]>,
) {
    let c = scale * T::from_f64(2.0) / T::from_f64(a.len() as f64);
    for i in 0..a.len() {
        let g = c * (a[i] - b[i]);
        if let Some(da) = da.as_deref_mut() {
            da[i] = da[i] + g;
        }
        if let Some(db) = db.as_deref_mut() {
            db[i] = db[i] - g;
        }
    }
}

/// Validated `mse_forward` (see the [`Backend`](crate::Backend) method).
pub fn mse_forward_checked<T: Element>(a: &[T], b: &[T], loss: &mut [T]) -> Result<()> {
    check::mse_forward(a.len(), b.len(), loss.len())?;
    loss[0] = mse_forward(a, b);
    Ok(())
}

/// Validated `mse_backward` (see the [`Backend`](crate::Backend) method).
pub fn mse_backward_checked<T: Element>(
    a: &[T],
    b: &[T],
    scale: f64,
    da: Option<&mut [T]>,
    db: Option<&mut [T]>,
) -> Result<()> {
    check::mse_backward(
        a.len(),
        b.len(),
        scale,
        da.as_deref().map(<[T]>::len),
        db.as_deref().map(<[T]>::len),
    )?;
    mse_backward(a, b, T::from_f64(scale), da, db);
    Ok(())
}
