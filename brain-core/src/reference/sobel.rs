//! Sobel gradients on NCHW and the Sobel loss (HAVIR eq. 2).
//!
//! `*_checked` functions validate with [`crate::check`] and run the plain kernels;
//! [`ReferenceBackend`](super::ReferenceBackend) calls them.
//!
//! Per channel, 3×3 cross-correlation with zero padding 1 (PyTorch `conv2d`):
//! Kx = [[-1,0,1],[-2,0,2],[-1,0,1]], Ky = Kxᵀ, magnitude √(gx² + gy² + 1e-6).
//! Only the six non-zero taps of each kernel are summed, so a NaN pixel reaches the
//! outputs whose taps touch it with a non-zero weight. The adjoint of a correlation is
//! the correlation with the kernel flipped in both axes, and Kx, Ky flip to −Kx, −Ky:
//! dx = −(corr(dgx, Kx) + corr(dgy, Ky)).

use crate::check;
use crate::element::Element;
use crate::error::Result;
use crate::ops::{ImageShape, SobelLossForm, SOBEL_EPS};
use alloc::vec;

/// (corr(x, Kx), corr(x, Ky)) at (h, w) of one plane x[H,W], zero padding.
#[inline]
pub fn sobel_at<T: Element>(x: &[T], height: usize, width: usize, h: usize, w: usize) -> (T, T) {
    // v(dh, dw) = x[h+dh, w+dw] or 0 outside the plane.
    let v = |dh: isize, dw: isize| -> T {
        let (r, c) = (h as isize + dh, w as isize + dw);
        if r < 0 || c < 0 || r >= height as isize || c >= width as isize {
            T::zero()
        } else {
            x[r as usize * width + c as usize]
        }
    };
    let two = T::from_f64(2.0);
    let gx = (v(-1, 1) - v(-1, -1)) + two * (v(0, 1) - v(0, -1)) + (v(1, 1) - v(1, -1));
    let gy = (v(1, -1) + two * v(1, 0) + v(1, 1)) - (v(-1, -1) + two * v(-1, 0) + v(-1, 1));
    (gx, gy)
}

/// gx, gy, magnitude [N,C,H,W] from x [N,C,H,W].
pub fn sobel_forward<T: Element>(
    gx: &mut [T],
    gy: &mut [T],
    magnitude: &mut [T],
    x: &[T],
    s: &ImageShape,
) {
    let (hgt, wid) = (s.height, s.width);
    let hw = hgt * wid;
    let eps = T::from_f64(SOBEL_EPS);
    for p in 0..s.batch * s.channels {
        let plane = &x[p * hw..(p + 1) * hw];
        for h in 0..hgt {
            for w in 0..wid {
                let i = p * hw + h * wid + w;
                let (a, b) = sobel_at(plane, hgt, wid, h, w);
                gx[i] = a;
                gy[i] = b;
                magnitude[i] = (a * a + b * b + eps).sqrt();
            }
        }
    }
}

/// dx [N,C,H,W] (overwritten) = −(corr(Dx, Kx) + corr(Dy, Ky)) with the effective
/// gradients Dx = dgx + dmag·gx/mag, Dy = dgy + dmag·gy/mag (absent ones are zero).
pub fn sobel_backward<T: Element>(
    dx: &mut [T],
    x: &[T],
    s: &ImageShape,
    dgx: Option<&[T]>,
    dgy: Option<&[T]>,
    dmagnitude: Option<&[T]>,
) {
    let n = s.len();
    let mut ex = vec![T::zero(); n];
    let mut ey = vec![T::zero(); n];
    if let Some(d) = dgx {
        ex.copy_from_slice(d);
    }
    if let Some(d) = dgy {
        ey.copy_from_slice(d);
    }
    if let Some(dm) = dmagnitude {
        let (mut gx, mut gy, mut mag) =
            (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
        sobel_forward(&mut gx, &mut gy, &mut mag, x, s);
        for i in 0..n {
            ex[i] = ex[i] + dm[i] * gx[i] / mag[i];
            ey[i] = ey[i] + dm[i] * gy[i] / mag[i];
        }
    }
    let (hgt, wid) = (s.height, s.width);
    let hw = hgt * wid;
    for p in 0..s.batch * s.channels {
        let (px, py) = (&ex[p * hw..(p + 1) * hw], &ey[p * hw..(p + 1) * hw]);
        for h in 0..hgt {
            for w in 0..wid {
                let (a, _) = sobel_at(px, hgt, wid, h, w);
                let (_, b) = sobel_at(py, hgt, wid, h, w);
                dx[p * hw + h * wid + w] = -(a + b);
            }
        }
    }
}

/// Sobel loss of pred, target [N,C,H,W]: mean((M_p − M_t)²) (magnitude form) or
/// mean((gx_p − gx_t)²) + mean((gy_p − gy_t)²) (components form).
pub fn sobel_loss_forward<T: Element>(
    pred: &[T],
    target: &[T],
    s: &ImageShape,
    form: SobelLossForm,
) -> T {
    let n = s.len();
    let (mut gxp, mut gyp, mut mp) = (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
    let (mut gxt, mut gyt, mut mt) = (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
    sobel_forward(&mut gxp, &mut gyp, &mut mp, pred, s);
    sobel_forward(&mut gxt, &mut gyt, &mut mt, target, s);
    let mut sum = T::zero();
    for i in 0..n {
        match form {
            SobelLossForm::Magnitude => {
                let d = mp[i] - mt[i];
                sum = sum + d * d;
            }
            SobelLossForm::Components => {
                let (a, b) = (gxp[i] - gxt[i], gyp[i] - gyt[i]);
                sum = sum + (a * a + b * b);
            }
        }
    }
    sum / T::from_f64(n as f64)
}

/// dpred, dtarget [N,C,H,W] += the gradients of scale·loss: with c = 2·scale/N,
/// magnitude form dM_p = c·(M_p − M_t) = −dM_t; components form
/// dgx_p = c·(gx_p − gx_t) = −dgx_t (and gy alike); then through [`sobel_backward`].
pub fn sobel_loss_backward<T: Element>(
    pred: &[T],
    target: &[T],
    s: &ImageShape,
    form: SobelLossForm,
    scale: T,
    dpred: Option<&mut [T]>,
    dtarget: Option<&mut [T]>,
) {
    let n = s.len();
    let (mut gxp, mut gyp, mut mp) = (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
    let (mut gxt, mut gyt, mut mt) = (vec![T::zero(); n], vec![T::zero(); n], vec![T::zero(); n]);
    sobel_forward(&mut gxp, &mut gyp, &mut mp, pred, s);
    sobel_forward(&mut gxt, &mut gyt, &mut mt, target, s);
    let c = T::from_f64(2.0) * scale / T::from_f64(n as f64);
    let mut tmp = vec![T::zero(); n];
    for (sign, x, out) in [(T::one(), pred, dpred), (-T::one(), target, dtarget)] {
        let Some(out) = out else { continue };
        match form {
            SobelLossForm::Magnitude => {
                let dm: alloc::vec::Vec<T> = (0..n).map(|i| sign * c * (mp[i] - mt[i])).collect();
                sobel_backward(&mut tmp, x, s, None, None, Some(&dm));
            }
            SobelLossForm::Components => {
                let dgx: alloc::vec::Vec<T> =
                    (0..n).map(|i| sign * c * (gxp[i] - gxt[i])).collect();
                let dgy: alloc::vec::Vec<T> =
                    (0..n).map(|i| sign * c * (gyp[i] - gyt[i])).collect();
                sobel_backward(&mut tmp, x, s, Some(&dgx), Some(&dgy), None);
            }
        }
        for i in 0..n {
            out[i] = out[i] + tmp[i];
        }
    }
}

/// Validated `sobel_forward` (see the [`Backend`](crate::Backend) method).
pub fn sobel_forward_checked<T: Element>(
    x: &[T],
    shape: &ImageShape,
    gx: &mut [T],
    gy: &mut [T],
    magnitude: &mut [T],
) -> Result<()> {
    check::sobel_forward(x.len(), shape, gx.len(), gy.len(), magnitude.len())?;
    sobel_forward(gx, gy, magnitude, x, shape);
    Ok(())
}

/// Validated `sobel_backward` (see the [`Backend`](crate::Backend) method).
pub fn sobel_backward_checked<T: Element>(
    x: &[T],
    shape: &ImageShape,
    dgx: Option<&[T]>,
    dgy: Option<&[T]>,
    dmagnitude: Option<&[T]>,
    dx: &mut [T],
) -> Result<()> {
    check::sobel_backward(
        x.len(),
        shape,
        dgx.map(<[T]>::len),
        dgy.map(<[T]>::len),
        dmagnitude.map(<[T]>::len),
        dx.len(),
    )?;
    sobel_backward(dx, x, shape, dgx, dgy, dmagnitude);
    Ok(())
}

/// Validated `sobel_loss_forward` (see the [`Backend`](crate::Backend) method).
pub fn sobel_loss_forward_checked<T: Element>(
    pred: &[T],
    target: &[T],
    shape: &ImageShape,
    form: SobelLossForm,
    loss: &mut [T],
) -> Result<()> {
    check::sobel_loss_forward(pred.len(), target.len(), shape, loss.len())?;
    loss[0] = sobel_loss_forward(pred, target, shape, form);
    Ok(())
}

/// Validated `sobel_loss_backward` (see the [`Backend`](crate::Backend) method).
pub fn sobel_loss_backward_checked<T: Element>(
    pred: &[T],
    target: &[T],
    shape: &ImageShape,
    form: SobelLossForm,
    scale: f64,
    dpred: Option<&mut [T]>,
    dtarget: Option<&mut [T]>,
) -> Result<()> {
    check::sobel_loss_backward(
        pred.len(),
        target.len(),
        shape,
        scale,
        dpred.as_deref().map(<[T]>::len),
        dtarget.as_deref().map(<[T]>::len),
    )?;
    sobel_loss_backward(
        pred,
        target,
        shape,
        form,
        T::from_f64(scale),
        dpred,
        dtarget,
    );
    Ok(())
}
