//! Linear CKA on n×n Gram matrices (biased and unbiased HSIC).
//!
//! With K = AAᵀ and L = BBᵀ (n samples):
//! - biased HSIC(K, L) = tr(KHLH)/(n−1)², H = I − 11ᵀ/n, i.e. Σᵢⱼ Kᵢⱼ·(HLH)ⱼᵢ/(n−1)²;
//! - unbiased HSIC (Song et al. 2012), K̃, L̃ with zeroed diagonals:
//!   [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − (2/(n−2))·1ᵀK̃L̃1] / (n(n−3));
//! - CKA = HSIC(K,L)/√(HSIC(K,K)·HSIC(L,L)); the loss is 1 − CKA.
//!
//! K and L are treated as general matrices (every entry independent), so the
//! gradients below are exact even for non-symmetric input; the backward writes the
//! symmetrised G + Gᵀ, which for K = AAᵀ gives dA = (G + Gᵀ)·A.
//!
//! `*_checked` functions validate with [`crate::check`] and run the plain kernels;
//! [`ReferenceBackend`](super::ReferenceBackend) calls them.

use crate::check;
use crate::element::Element;
use crate::error::Result;
use crate::ops::HsicEstimator;
use alloc::vec;
use alloc::vec::Vec;

/// HXH of x[n,n]: Xc[i,j] = X[i,j] − rowmean[i] − colmean[j] + mean.
pub fn centre<T: Element>(x: &[T], n: usize) -> Vec<T> {
    let nf = T::from_f64(n as f64);
    let mut row = vec![T::zero(); n];
    let mut col = vec![T::zero(); n];
    let mut all = T::zero();
    for i in 0..n {
        for j in 0..n {
            row[i] = row[i] + x[i * n + j];
            col[j] = col[j] + x[i * n + j];
            all = all + x[i * n + j];
        }
    }
    let mut xc = vec![T::zero(); n * n];
    for i in 0..n {
        for j in 0..n {
            xc[i * n + j] = x[i * n + j] - row[i] / nf - col[j] / nf + all / (nf * nf);
        }
    }
    xc
}

/// 1 off the diagonal, 0 on it: X̃ = X·(1 − I) entry-wise, so a NaN on the diagonal
/// still propagates (NaN·0 = NaN), as in PyTorch's `K * (1 - eye)`.
fn off<T: Element>(i: usize, j: usize) -> T {
    if i == j {
        T::zero()
    } else {
        T::one()
    }
}

/// Off-diagonal statistics of x[n,n]: (S = Σ_{i≠j} X[i,j], row sums r[n], column
/// sums c[n]) of X̃ (X with its diagonal zeroed).
pub fn off_diagonal_sums<T: Element>(x: &[T], n: usize) -> (T, Vec<T>, Vec<T>) {
    let mut s = T::zero();
    let mut r = vec![T::zero(); n];
    let mut c = vec![T::zero(); n];
    for i in 0..n {
        for j in 0..n {
            let v = x[i * n + j] * off(i, j);
            s = s + v;
            r[i] = r[i] + v;
            c[j] = c[j] + v;
        }
    }
    (s, r, c)
}

/// HSIC(K, L) of k[n,n], l[n,n].
pub fn hsic<T: Element>(k: &[T], l: &[T], n: usize, estimator: HsicEstimator) -> T {
    let nf = T::from_f64(n as f64);
    let one = T::one();
    let two = T::from_f64(2.0);
    match estimator {
        HsicEstimator::Biased => {
            let lc = centre(l, n);
            let mut t = T::zero();
            for i in 0..n {
                for j in 0..n {
                    t = t + k[i * n + j] * lc[j * n + i];
                }
            }
            t / ((nf - one) * (nf - one))
        }
        HsicEstimator::Unbiased => {
            let (sk, _rk, ck) = off_diagonal_sums(k, n);
            let (sl, rl, _cl) = off_diagonal_sums(l, n);
            // tr(K̃L̃) = Σ_{i≠j} K[i,j]·L[j,i]
            let mut t1 = T::zero();
            for i in 0..n {
                for j in 0..n {
                    t1 = t1 + k[i * n + j] * off::<T>(i, j) * l[j * n + i] * off::<T>(j, i);
                }
            }
            let t2 = sk * sl / ((nf - one) * (nf - two));
            // 1ᵀK̃L̃1 = Σ_m (1ᵀK̃)[m]·(L̃1)[m]
            let mut t3 = T::zero();
            for m in 0..n {
                t3 = t3 + ck[m] * rl[m];
            }
            t3 = two / (nf - two) * t3;
            (t1 + t2 - t3) / (nf * (nf - T::from_f64(3.0)))
        }
    }
}

/// ∂HSIC(X, Y)/∂X[i,j] as a function of y[n,n] (gradient wrt the first argument).
pub fn hsic_grad_first<T: Element>(y: &[T], n: usize, estimator: HsicEstimator) -> Vec<T> {
    let nf = T::from_f64(n as f64);
    let one = T::one();
    let two = T::from_f64(2.0);
    let mut g = vec![T::zero(); n * n];
    match estimator {
        HsicEstimator::Biased => {
            // (HYH)ᵀ/(n−1)²
            let yc = centre(y, n);
            for i in 0..n {
                for j in 0..n {
                    g[i * n + j] = yc[j * n + i] / ((nf - one) * (nf - one));
                }
            }
        }
        HsicEstimator::Unbiased => {
            // [Ỹ[j,i] + S_Y/((n−1)(n−2)) − (2/(n−2))·(Ỹ1)[j]] / (n(n−3)), times 0 on the diagonal
            let (s, r, _c) = off_diagonal_sums(y, n);
            let norm = nf * (nf - T::from_f64(3.0));
            for i in 0..n {
                for j in 0..n {
                    g[i * n + j] = (y[j * n + i] * off::<T>(j, i) + s / ((nf - one) * (nf - two))
                        - two / (nf - two) * r[j])
                        / norm
                        * off::<T>(i, j);
                }
            }
        }
    }
    g
}

/// ∂HSIC(X, Y)/∂Y[i,j] as a function of x[n,n] (gradient wrt the second argument).
pub fn hsic_grad_second<T: Element>(x: &[T], n: usize, estimator: HsicEstimator) -> Vec<T> {
    let nf = T::from_f64(n as f64);
    let one = T::one();
    let two = T::from_f64(2.0);
    let mut g = vec![T::zero(); n * n];
    match estimator {
        HsicEstimator::Biased => {
            // (HXH)ᵀ/(n−1)²
            let xc = centre(x, n);
            for i in 0..n {
                for j in 0..n {
                    g[i * n + j] = xc[j * n + i] / ((nf - one) * (nf - one));
                }
            }
        }
        HsicEstimator::Unbiased => {
            // [X̃[j,i] + S_X/((n−1)(n−2)) − (2/(n−2))·(1ᵀX̃)[i]] / (n(n−3)), times 0 on the diagonal
            let (s, _r, c) = off_diagonal_sums(x, n);
            let norm = nf * (nf - T::from_f64(3.0));
            for i in 0..n {
                for j in 0..n {
                    g[i * n + j] = (x[j * n + i] * off::<T>(j, i) + s / ((nf - one) * (nf - two))
                        - two / (nf - two) * c[i])
                        / norm
                        * off::<T>(i, j);
                }
            }
        }
    }
    g
}

/// out[0] = 1 − CKA and, when out has 4 elements, out[1..4] = [HSIC(K,L), HSIC(K,K),
/// HSIC(L,L)], from k[n,n], l[n,n].
pub fn cka_grams_forward<T: Element>(
    out: &mut [T],
    k: &[T],
    l: &[T],
    n: usize,
    estimator: HsicEstimator,
) {
    let hab = hsic(k, l, n, estimator);
    let haa = hsic(k, k, n, estimator);
    let hbb = hsic(l, l, n, estimator);
    let cka = hab / (haa * hbb).sqrt();
    out[0] = T::one() - cka;
    if let [_, ab, aa, bb] = out {
        (*ab, *aa, *bb) = (hab, haa, hbb);
    }
}

/// dk[n,n], dl[n,n] (overwritten) = G + Gᵀ with G = ∂(scale·(1 − CKA))/∂K (resp. L):
/// ∂CKA = α·∂HSIC(K,L) − ½(CKA/HSIC(K,K))·∂HSIC(K,K) − ½(CKA/HSIC(L,L))·∂HSIC(L,L),
/// α = 1/√(HSIC(K,K)·HSIC(L,L)).
pub fn cka_grams_backward<T: Element>(
    dk: Option<&mut [T]>,
    dl: Option<&mut [T]>,
    k: &[T],
    l: &[T],
    n: usize,
    estimator: HsicEstimator,
    scale: T,
) {
    let hab = hsic(k, l, n, estimator);
    let haa = hsic(k, k, n, estimator);
    let hbb = hsic(l, l, n, estimator);
    let alpha = T::one() / (haa * hbb).sqrt();
    let cka = hab * alpha;
    let half = T::from_f64(0.5);
    let symmetrise = |d: &mut [T], g: &[T]| {
        for i in 0..n {
            for j in 0..n {
                d[i * n + j] = g[i * n + j] + g[j * n + i];
            }
        }
    };
    if let Some(dk) = dk {
        let ab = hsic_grad_first(l, n, estimator);
        let aa1 = hsic_grad_first(k, n, estimator);
        let aa2 = hsic_grad_second(k, n, estimator);
        let beta = half * cka / haa;
        let mut g = vec![T::zero(); n * n];
        for i in 0..n * n {
            g[i] = -scale * (alpha * ab[i] - beta * (aa1[i] + aa2[i]));
        }
        symmetrise(dk, &g);
    }
    if let Some(dl) = dl {
        let ab = hsic_grad_second(k, n, estimator);
        let bb1 = hsic_grad_first(l, n, estimator);
        let bb2 = hsic_grad_second(l, n, estimator);
        let gamma = half * cka / hbb;
        let mut g = vec![T::zero(); n * n];
        for i in 0..n * n {
            g[i] = -scale * (alpha * ab[i] - gamma * (bb1[i] + bb2[i]));
        }
        symmetrise(dl, &g);
    }
}

/// Validated `cka_grams_forward` (see the [`Backend`](crate::Backend) method).
pub fn cka_grams_forward_checked<T: Element>(
    k: &[T],
    l: &[T],
    n: usize,
    estimator: HsicEstimator,
    out: &mut [T],
) -> Result<()> {
    check::cka_grams_forward(k.len(), l.len(), n, estimator, out.len())?;
    cka_grams_forward(out, k, l, n, estimator);
    Ok(())
}

/// Validated `cka_grams_backward` (see the [`Backend`](crate::Backend) method).
pub fn cka_grams_backward_checked<T: Element>(
    k: &[T],
    l: &[T],
    n: usize,
    estimator: HsicEstimator,
    scale: f64,
    dk: Option<&mut [T]>,
    dl: Option<&mut [T]>,
) -> Result<()> {
    check::cka_grams_backward(
        k.len(),
        l.len(),
        n,
        estimator,
        scale,
        dk.as_deref().map(<[T]>::len),
        dl.as_deref().map(<[T]>::len),
    )?;
    cka_grams_backward(dk, dl, k, l, n, estimator, T::from_f64(scale));
    Ok(())
}
