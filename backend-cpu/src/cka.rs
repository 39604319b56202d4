//! Linear CKA on n×n Gram matrices (biased and unbiased HSIC), in f64.
//!
//! The Grams are small (n = batch size), so the kernels are O(n²) and accuracy comes
//! first: one pass over K and L gathers, in f64, the row and column sums, the
//! diagonals and the traces tr(KL) = Σᵢⱼ KᵢⱼLⱼᵢ, tr(KK), tr(LL); every HSIC is then a
//! closed form of those (no centred n×n copy):
//! - biased, ×(n−1)²: tr(KL) − (c_K·r_L + r_K·c_L)/n + s_K·s_L/n²;
//! - unbiased, ×n(n−3): tr(KL) − Σ KᵢᵢLᵢᵢ + S̃_K·S̃_L/((n−1)(n−2)) − (2/(n−2))·c̃_K·r̃_L,
//!   with r̃, c̃, S̃ the sums of the zero-diagonal matrices.
//!
//! The backward writes G + Gᵀ directly as
//! `d[i,j] = c_K·(Kᵢⱼ + Kⱼᵢ) + c_L·(Lᵢⱼ + Lⱼᵢ) + wᵢ + wⱼ + c₀` (zero diagonal for the
//! unbiased estimator), the coefficients derived from the same statistics (see the
//! reference `brain_core::reference::cka` for the plain derivation). Rows run in
//! parallel when n² is large; the statistics' partials are reduced in f64.

use crate::par::Exec;
use crate::{CpuBackend, CpuBuffer};
use brain_core::{check, HsicEstimator, Result};
use rayon::prelude::*;

/// Below this many Gram entries the kernels stay on the caller's thread.
const SEQ_CKA: usize = 1 << 16;

/// f64 statistics of K and L (see the module docs).
#[derive(Clone)]
struct Stats {
    rk: Vec<f64>,
    ck: Vec<f64>,
    rl: Vec<f64>,
    cl: Vec<f64>,
    tr_kl: f64,
    tr_kk: f64,
    tr_ll: f64,
}

impl Stats {
    fn zero(n: usize) -> Self {
        Stats {
            rk: vec![0.0; n],
            ck: vec![0.0; n],
            rl: vec![0.0; n],
            cl: vec![0.0; n],
            tr_kl: 0.0,
            tr_kk: 0.0,
            tr_ll: 0.0,
        }
    }
    /// Add row `i` of K and L.
    #[inline(always)]
    fn add_row(&mut self, k: &[f32], l: &[f32], n: usize, i: usize) {
        let (kr, lr) = (&k[i * n..(i + 1) * n], &l[i * n..(i + 1) * n]);
        let (mut rk, mut rl, mut kl, mut kk, mut ll) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for j in 0..n {
            let (kij, lij) = (kr[j] as f64, lr[j] as f64);
            let (kji, lji) = (k[j * n + i] as f64, l[j * n + i] as f64);
            rk += kij;
            rl += lij;
            self.ck[j] += kij;
            self.cl[j] += lij;
            kl += kij * lji;
            kk += kij * kji;
            ll += lij * lji;
        }
        self.rk[i] += rk;
        self.rl[i] += rl;
        self.tr_kl += kl;
        self.tr_kk += kk;
        self.tr_ll += ll;
    }
    fn merge(mut self, o: Stats) -> Stats {
        for (a, b) in [
            (&mut self.rk, &o.rk),
            (&mut self.ck, &o.ck),
            (&mut self.rl, &o.rl),
            (&mut self.cl, &o.cl),
        ] {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
        }
        self.tr_kl += o.tr_kl;
        self.tr_kk += o.tr_kk;
        self.tr_ll += o.tr_ll;
        self
    }
}

fn stats(ex: Exec, k: &[f32], l: &[f32], n: usize) -> Stats {
    if ex.par {
        let min_rows = Exec::min_items(n, 1 << 12);
        (0..n)
            .into_par_iter()
            .with_min_len(min_rows)
            .fold(
                || Stats::zero(n),
                |mut s, i| {
                    s.add_row(k, l, n, i);
                    s
                },
            )
            .reduce_with(Stats::merge)
            .unwrap_or_else(|| Stats::zero(n))
    } else {
        let mut s = Stats::zero(n);
        for i in 0..n {
            s.add_row(k, l, n, i);
        }
        s
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// What both passes need: the statistics turned into the three HSIC values, plus the
/// per-index vectors of the backward formula.
struct Hsic {
    hab: f64,
    haa: f64,
    hbb: f64,
    /// Biased: u = (r + c)/n of K and L, totals s. Unbiased: r̃, c̃ and S̃.
    rk: Vec<f64>,
    ck: Vec<f64>,
    rl: Vec<f64>,
    cl: Vec<f64>,
    sk: f64,
    sl: f64,
}

fn hsic(s: Stats, k: &[f32], l: &[f32], n: usize, est: HsicEstimator) -> Hsic {
    let nf = n as f64;
    let sk: f64 = s.rk.iter().sum();
    let sl: f64 = s.rl.iter().sum();
    match est {
        HsicEstimator::Biased => {
            let norm = (nf - 1.0) * (nf - 1.0);
            let hab = (s.tr_kl - (dot(&s.ck, &s.rl) + dot(&s.rk, &s.cl)) / nf
                + sk * sl / (nf * nf))
                / norm;
            let haa = (s.tr_kk - 2.0 * dot(&s.ck, &s.rk) / nf + sk * sk / (nf * nf)) / norm;
            let hbb = (s.tr_ll - 2.0 * dot(&s.cl, &s.rl) / nf + sl * sl / (nf * nf)) / norm;
            Hsic {
                hab,
                haa,
                hbb,
                rk: s.rk,
                ck: s.ck,
                rl: s.rl,
                cl: s.cl,
                sk,
                sl,
            }
        }
        HsicEstimator::Unbiased => {
            let mut s = s;
            let (mut dkl, mut dkk, mut dll, mut trk, mut trl) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for i in 0..n {
                let (kii, lii) = (k[i * n + i] as f64, l[i * n + i] as f64);
                dkl += kii * lii;
                dkk += kii * kii;
                dll += lii * lii;
                trk += kii;
                trl += lii;
                s.rk[i] -= kii;
                s.ck[i] -= kii;
                s.rl[i] -= lii;
                s.cl[i] -= lii;
            }
            let (sk, sl) = (sk - trk, sl - trl);
            let d = (nf - 1.0) * (nf - 2.0);
            let e = 2.0 / (nf - 2.0);
            let norm = nf * (nf - 3.0);
            let hab = (s.tr_kl - dkl + sk * sl / d - e * dot(&s.ck, &s.rl)) / norm;
            let haa = (s.tr_kk - dkk + sk * sk / d - e * dot(&s.ck, &s.rk)) / norm;
            let hbb = (s.tr_ll - dll + sl * sl / d - e * dot(&s.cl, &s.rl)) / norm;
            Hsic {
                hab,
                haa,
                hbb,
                rk: s.rk,
                ck: s.ck,
                rl: s.rl,
                cl: s.cl,
                sk,
                sl,
            }
        }
    }
}

/// `Backend::cka_grams_forward` on the CPU.
pub(crate) fn cka_grams_forward(
    be: &CpuBackend,
    k: &CpuBuffer,
    l: &CpuBuffer,
    n: usize,
    estimator: HsicEstimator,
    out: &mut CpuBuffer,
) -> Result<()> {
    check::cka_grams_forward(k.len(), l.len(), n, estimator, out.len())?;
    let (k, l) = (k.as_slice(), l.as_slice());
    let s = be.exec(n * n, SEQ_CKA, |ex| stats(ex, k, l, n));
    let h = hsic(s, k, l, n, estimator);
    let cka = h.hab / (h.haa * h.hbb).sqrt();
    let out = out.as_mut_slice();
    out[0] = (1.0 - cka) as f32;
    if let [_, ab, aa, bb] = out {
        (*ab, *aa, *bb) = (h.hab as f32, h.haa as f32, h.hbb as f32);
    }
    Ok(())
}

/// Coefficients of `d[i,j] = ck·(Kᵢⱼ + Kⱼᵢ) + cl·(Lᵢⱼ + Lⱼᵢ) + wᵢ + wⱼ + c0`.
struct Coefs {
    ck: f64,
    cl: f64,
    w: Vec<f64>,
    c0: f64,
}

/// Write `d` (G + Gᵀ) from its coefficients, rows in parallel when `ex.par`.
fn write_grad(ex: Exec, d: &mut [f32], k: &[f32], l: &[f32], n: usize, c: &Coefs, zero_diag: bool) {
    let row = |i: usize, dr: &mut [f32]| {
        let (wi, kr, lr) = (
            c.w[i] + c.c0,
            &k[i * n..(i + 1) * n],
            &l[i * n..(i + 1) * n],
        );
        for j in 0..n {
            let ks = kr[j] as f64 + k[j * n + i] as f64;
            let ls = lr[j] as f64 + l[j * n + i] as f64;
            dr[j] = (c.ck * ks + c.cl * ls + wi + c.w[j]) as f32;
        }
        if zero_diag {
            // ×0 rather than = 0: a NaN propagates as through the reference's mask.
            dr[i] *= 0.0;
        }
    };
    if ex.par {
        d.par_chunks_exact_mut(n)
            .enumerate()
            .with_min_len(Exec::min_items(n, 1 << 12))
            .for_each(|(i, dr)| row(i, dr));
    } else {
        d.chunks_exact_mut(n)
            .enumerate()
            .for_each(|(i, dr)| row(i, dr));
    }
}

/// `Backend::cka_grams_backward` on the CPU.
pub(crate) fn cka_grams_backward(
    be: &CpuBackend,
    k: &CpuBuffer,
    l: &CpuBuffer,
    n: usize,
    estimator: HsicEstimator,
    scale: f64,
    dk: Option<&mut CpuBuffer>,
    dl: Option<&mut CpuBuffer>,
) -> Result<()> {
    check::cka_grams_backward(
        k.len(),
        l.len(),
        n,
        estimator,
        scale,
        dk.as_deref().map(CpuBuffer::len),
        dl.as_deref().map(CpuBuffer::len),
    )?;
    if dk.is_none() && dl.is_none() {
        return Ok(());
    }
    let (k, l) = (k.as_slice(), l.as_slice());
    let scale = scale as f32 as f64;
    be.exec(n * n, SEQ_CKA, |ex| {
        let h = hsic(stats(ex, k, l, n), k, l, n, estimator);
        let nf = n as f64;
        let alpha = 1.0 / (h.haa * h.hbb).sqrt();
        let cka = h.hab * alpha;
        // ∂(1 − CKA) = −α·∂HSIC(K,L) + β·∂HSIC(K,K) + γ·∂HSIC(L,L)
        let beta = 0.5 * cka / h.haa;
        let gamma = 0.5 * cka / h.hbb;
        let (dk_c, dl_c) = match estimator {
            HsicEstimator::Biased => {
                let f = -scale / ((nf - 1.0) * (nf - 1.0));
                let uk: Vec<f64> = h.rk.iter().zip(&h.ck).map(|(r, c)| (r + c) / nf).collect();
                let ul: Vec<f64> = h.rl.iter().zip(&h.cl).map(|(r, c)| (r + c) / nf).collect();
                let (gk, gl) = (2.0 * h.sk / (nf * nf), 2.0 * h.sl / (nf * nf));
                let dk_c = Coefs {
                    ck: -2.0 * beta * f,
                    cl: alpha * f,
                    w: uk
                        .iter()
                        .zip(&ul)
                        .map(|(uk, ul)| f * (-alpha * ul + 2.0 * beta * uk))
                        .collect(),
                    c0: f * (alpha * gl - 2.0 * beta * gk),
                };
                let dl_c = Coefs {
                    ck: alpha * f,
                    cl: -2.0 * gamma * f,
                    w: uk
                        .iter()
                        .zip(&ul)
                        .map(|(uk, ul)| f * (-alpha * uk + 2.0 * gamma * ul))
                        .collect(),
                    c0: f * (alpha * gk - 2.0 * gamma * gl),
                };
                (dk_c, dl_c)
            }
            HsicEstimator::Unbiased => {
                let f = -scale / (nf * (nf - 3.0));
                let d = (nf - 1.0) * (nf - 2.0);
                let e = 2.0 / (nf - 2.0);
                let dk_c = Coefs {
                    ck: -2.0 * beta * f,
                    cl: alpha * f,
                    w: (0..n)
                        .map(|i| f * (-alpha * e * h.rl[i] + beta * e * (h.rk[i] + h.ck[i])))
                        .collect(),
                    c0: f * (alpha * 2.0 * h.sl / d - beta * 4.0 * h.sk / d),
                };
                let dl_c = Coefs {
                    ck: alpha * f,
                    cl: -2.0 * gamma * f,
                    w: (0..n)
                        .map(|i| f * (-alpha * e * h.ck[i] + gamma * e * (h.rl[i] + h.cl[i])))
                        .collect(),
                    c0: f * (alpha * 2.0 * h.sk / d - gamma * 4.0 * h.sl / d),
                };
                (dk_c, dl_c)
            }
        };
        let zero_diag = estimator == HsicEstimator::Unbiased;
        if let Some(dk) = dk {
            write_grad(ex, dk.as_mut_slice(), k, l, n, &dk_c, zero_diag);
        }
        if let Some(dl) = dl {
            write_grad(ex, dl.as_mut_slice(), k, l, n, &dl_c, zero_diag);
        }
    });
    Ok(())
}
