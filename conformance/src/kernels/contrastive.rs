//! Conformance of the `contrastive` kernels against the f64 oracle: row L2
//! normalisation, SoftCLIP / InfoNCE on logits, and the composite [`ClipLoss`].

use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, check_close_with, unit_roundoff, Tol};
use brain_core::loss::contrastive::ClipLoss;
use brain_core::{Backend, BrainError, ContrastiveLoss};
use proptest::prelude::*;

type E = BrainError;

fn e(e: E) -> String {
    e.to_string()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn expect_err<T: std::fmt::Debug>(what: &str, r: Result<T, E>, shape: bool) -> Result<(), String> {
    match (r, shape) {
        (Err(E::ShapeMismatch { .. }), true) | (Err(E::InvalidArgument { .. }), false) => Ok(()),
        (other, _) => Err(format!(
            "{what}: expected {} error, got {other:?}",
            if shape {
                "a ShapeMismatch"
            } else {
                "an InvalidArgument"
            }
        )),
    }
}

/// Every `contrastive` kernel, forward and backward, on proptest shapes.
pub fn contrastive<B: Backend>(be: &B) {
    l2_normalize(be);
    logits(be);
    gram_logits(be);
    clip_passes(be);
    clip_loss(be);
    bad_input(be);
}

const NORM_WHY: &str = "Σx² and x·dy over `cols` values: ~u·√cols relative to the row's scale \
    (recursive f32 sums in the f32 reference, f64 lanes elsewhere)";

/// Row normalisation, with rows of zeros and rows below the 1e-12 clamp, and a NaN row.
fn l2_normalize<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "l2_normalize_rows",
        20,
        ((dim(17), dim(4099)), 0..4u8, any::<u64>()),
        |((rows, cols), mode, seed)| {
            let mut r = Rng::new(seed);
            let mut x = r.vec(rows * cols, -1.0, 1.0);
            let special = rows / 2;
            let row = special * cols..(special + 1) * cols;
            match mode {
                1 => x[row].iter_mut().for_each(|v| *v = 0.0),
                2 => x[row].iter_mut().for_each(|v| *v *= 1e-15), // ‖x‖ < 1e-12: clamped
                3 => x[special * cols] = f64::NAN,
                _ => {}
            }
            let x = representable::<B>(&x);
            let dy = representable::<B>(&r.vec(rows * cols, -1.0, 1.0));
            let xb = up(be, &x);
            let (mut yb, mut nb) = (
                be.alloc(rows * cols).map_err(e)?,
                be.alloc(rows).map_err(e)?,
            );
            be.l2_normalize_rows_forward(&xb, &mut yb, &mut nb, rows, cols)
                .map_err(e)?;
            let (mut y, mut nr) = (vec![0.0; rows * cols], vec![0.0; rows]);
            or.l2_normalize_rows_forward(&x, &mut y, &mut nr, rows, cols)
                .map_err(e)?;
            let s = 8.0 * u * ((cols + 1) as f64).sqrt();
            check_close(
                "l2_normalize norms",
                &down(be, &nb),
                &nr,
                Tol::new(0.0, s, NORM_WHY),
            )?;
            check_close(
                "l2_normalize y",
                &down(be, &yb),
                &y,
                Tol::new(s, s, NORM_WHY),
            )?;

            // backward from the backend's own norms; dx is overwritten
            let mut dxb = up(be, &r.vec(rows * cols, -9.0, 9.0));
            be.l2_normalize_rows_backward(&up(be, &dy), &xb, &nb, &mut dxb, rows, cols)
                .map_err(e)?;
            let mut dx = vec![0.0; rows * cols];
            or.l2_normalize_rows_backward(&dy, &x, &nr, &mut dx, rows, cols)
                .map_err(e)?;
            // dx ~ dy/max(‖x‖, 1e-12): the error scales with that per row.
            let row_scale: Vec<f64> = nr.iter().map(|&n| 1.0 / n.max(1e-12)).collect();
            check_close_with("l2_normalize dx", &down(be, &dxb), &dx, |i| {
                let k = 4.0 * s * row_scale[i / cols];
                Tol::new(k, s, NORM_WHY)
            })
        },
    );
}

/// Error scale of the logit kernels: softmax arguments are rounded relative to the
/// largest logit, so every output errs by ~u·(1 + max|C|) relative to its own size.
const LOGIT_WHY: &str = "max-subtracted exp/log: arguments err by u·max|C|, sums of n terms \
    by ~u·n (f32 reference): 16·u·(1 + max|C| + n) of the output's scale";

/// contrastive_forward / backward on random logits at τ ∈ {0.005, 0.07, 1}.
fn logits<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "contrastive logits",
        24,
        (
            dim(65),
            any::<bool>(),
            0..3usize,
            any::<bool>(),
            any::<u64>(),
        ),
        |(n, soft, ti, nan, seed)| {
            let kind = if soft {
                ContrastiveLoss::SoftClip
            } else {
                ContrastiveLoss::InfoNce
            };
            let tau = [0.005, 0.07, 1.0][ti];
            let mut r = Rng::new(seed);
            let mut pt = r.vec(n * n, -1.0 / tau, 1.0 / tau);
            let mut tt = r.vec(n * n, -1.0 / tau, 1.0 / tau);
            for i in 0..n {
                tt[i * n + i] = 1.0 / tau; // a target is most similar to itself
            }
            if nan {
                pt[(n * n) / 2] = f64::NAN;
            }
            let (pt, tt) = (representable::<B>(&pt), representable::<B>(&tt));
            let scale = representable::<B>(&[r.uniform(-2.0, 2.0)])[0];
            let cmax =
                1.0 + max_abs(&pt).max(max_abs(&tt)) * if nan { 0.0 } else { 1.0 } + n as f64;
            let cmax = if cmax.is_finite() {
                cmax
            } else {
                1.0 + 1.0 / tau + n as f64
            };
            let (ptb, ttb) = (up(be, &pt), up(be, &tt));
            let ttb_opt = if soft { Some(&ttb) } else { None };
            let tt_opt = if soft { Some(&tt) } else { None };

            let mut lb = be.alloc(1).map_err(e)?;
            be.contrastive_forward(kind, &ptb, ttb_opt, n, &mut lb)
                .map_err(e)?;
            let mut l = vec![0.0];
            or.contrastive_forward(kind, &pt, tt_opt, n, &mut l)
                .map_err(e)?;
            let k = 16.0 * u * cmax;
            check_close(
                "contrastive loss",
                &down(be, &lb),
                &l,
                Tol::new(k, k, LOGIT_WHY),
            )?;
            if nan {
                return if l[0].is_nan() {
                    Ok(())
                } else {
                    Err("oracle loss not NaN".into())
                };
            }

            // gradients overwrite; InfoNCE's dlogits_tt (when given) becomes zero
            let mut dptb = up(be, &r.vec(n * n, -5.0, 5.0));
            let mut dttb = up(be, &r.vec(n * n, -5.0, 5.0));
            be.contrastive_backward(kind, &ptb, ttb_opt, n, scale, &mut dptb, Some(&mut dttb))
                .map_err(e)?;
            let (mut dpt, mut dtt) = (vec![0.0; n * n], vec![0.0; n * n]);
            or.contrastive_backward(kind, &pt, tt_opt, n, scale, &mut dpt, Some(&mut dtt))
                .map_err(e)?;
            let gs = scale.abs() / n as f64;
            check_close(
                "dlogits_pt",
                &down(be, &dptb),
                &dpt,
                Tol::new(k * gs, k, LOGIT_WHY),
            )?;
            // dC_tt = Q⊙(G − ΣQG): G spans up to 2·max|C|, so one more factor of it.
            check_close(
                "dlogits_tt",
                &down(be, &dttb),
                &dtt,
                Tol::new(k * gs * cmax, k, LOGIT_WHY),
            )
        },
    );
}

const PASS_WHY: &str = "sums of k products err by k·u of the sum of their magnitudes \
    (k = d for the Grams, 2n + 1 terms for the input gradients)";

/// `clip_grams_forward` and `clip_inputs_backward` against the oracle, on batch
/// sizes and widths that leave partial tiles and panels on the fast kernels.
fn clip_passes<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "clip Gram and input-gradient passes",
        24,
        (1..40usize, dim(300), any::<bool>(), 0..3usize, any::<u64>()),
        |(n, d, soft, want, seed)| {
            let kind = if soft {
                ContrastiveLoss::SoftClip
            } else {
                ContrastiveLoss::InfoNce
            };
            let mut r = Rng::new(seed);
            let p = representable::<B>(&r.vec(n * d, -1.0, 1.0));
            let t = representable::<B>(&r.vec(n * d, -1.0, 1.0));
            let (pb, tb) = (up(be, &p), up(be, &t));
            let abs_dot = |a: &[f64], i: usize, b: &[f64], j: usize| -> f64 {
                (0..d).map(|k| (a[i * d + k] * b[j * d + k]).abs()).sum()
            };
            let kd = d as f64 + 2.0;

            // forward
            let junk = |r: &mut Rng, len: usize| up(be, &r.vec(len, -5.0, 5.0));
            let (mut ps_b, mut ts_b) = (junk(&mut r, n), junk(&mut r, n));
            let (mut gpt_b, mut gtt_b) = (junk(&mut r, n * n), junk(&mut r, n * n));
            be.clip_grams_forward(
                kind,
                &pb,
                &tb,
                n,
                d,
                &mut ps_b,
                &mut ts_b,
                &mut gpt_b,
                soft.then_some(&mut gtt_b),
            )
            .map_err(e)?;
            let (mut ps, mut ts) = (vec![0.0; n], vec![0.0; n]);
            let (mut gpt, mut gtt) = (vec![0.0; n * n], vec![0.0; n * n]);
            or.clip_grams_forward(
                kind,
                &p,
                &t,
                n,
                d,
                &mut ps,
                &mut ts,
                &mut gpt,
                soft.then_some(&mut gtt),
            )
            .map_err(e)?;
            let tol = |x: f64| Tol::new(kd * u * x, 0.0, PASS_WHY);
            check_close_with("p_sq", &down(be, &ps_b), &ps, |i| tol(ps[i]))?;
            check_close_with("t_sq", &down(be, &ts_b), &ts, |i| tol(ts[i]))?;
            check_close_with("g_pt", &down(be, &gpt_b), &gpt, |x| {
                tol(abs_dot(&p, x / n, &t, x % n))
            })?;
            if soft {
                check_close_with("g_tt", &down(be, &gtt_b), &gtt, |x| {
                    tol(abs_dot(&t, x / n, &t, x % n))
                })?;
            }

            // backward, accumulating into random gradients
            let w = representable::<B>(&r.vec(n * n, -1.0, 1.0));
            let dpm = representable::<B>(&r.vec(n * n, -1.0, 1.0));
            let mut wtt = representable::<B>(&r.vec(n * n, -1.0, 1.0));
            if !soft {
                // InfoNCE's w_tt is diagonal.
                for (i, v) in wtt.iter_mut().enumerate() {
                    if i % (n + 1) != 0 {
                        *v = 0.0;
                    }
                }
            }
            let g0 = representable::<B>(&r.vec(n * d, -1.0, 1.0));
            let h0 = representable::<B>(&r.vec(n * d, -1.0, 1.0));
            let (want_p, want_t) = [(true, true), (true, false), (false, true)][want];
            let (wb, dpb, wttb) = (up(be, &w), up(be, &dpm), up(be, &wtt));
            let (mut gb, mut hb) = (up(be, &g0), up(be, &h0));
            be.clip_inputs_backward(
                kind,
                &wb,
                &dpb,
                &wttb,
                &pb,
                &tb,
                n,
                d,
                want_p.then_some(&mut gb),
                want_t.then_some(&mut hb),
            )
            .map_err(e)?;
            let (mut g, mut h) = (g0.clone(), h0.clone());
            or.clip_inputs_backward(
                kind,
                &w,
                &dpm,
                &wtt,
                &p,
                &t,
                n,
                d,
                want_p.then_some(&mut g),
                want_t.then_some(&mut h),
            )
            .map_err(e)?;
            // Σ of the magnitudes of every term of an output element.
            let mag_p = |x: usize| {
                let (i, k) = (x / d, x % d);
                let mut m = g0[x].abs() + (dpm[i * n + i] * p[x]).abs();
                for l in 0..n {
                    m += (w[i * n + l] * t[l * d + k]).abs();
                }
                m
            };
            let mag_t = |x: usize| {
                let (i, k) = (x / d, x % d);
                let mut m = h0[x].abs();
                for l in 0..n {
                    m +=
                        (w[l * n + i] * p[l * d + k]).abs() + (wtt[i * n + l] * t[l * d + k]).abs();
                }
                m
            };
            let kn = 2.0 * n as f64 + 3.0;
            check_close_with("dpreds", &down(be, &gb), &g, |x| {
                Tol::new(kn * u * mag_p(x), 0.0, PASS_WHY)
            })?;
            check_close_with("dtargets", &down(be, &hb), &h, |x| {
                Tol::new(kn * u * mag_t(x), 0.0, PASS_WHY)
            })
        },
    );
}

const GRAM_WHY: &str = "a product of three rounded factors and a division (≤ 4 roundings \
    relative); sums of n products err by n·u of the sum of their magnitudes";

/// `clip_logits_forward` / `clip_logits_backward` against the oracle, with Gram
/// matrices of random raw rows, one row of P or T sometimes zero (its norm clamped).
fn gram_logits<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "clip logits from Grams",
        24,
        (
            dim(40),
            1..9usize,
            any::<bool>(),
            0..3usize,
            0..3usize,
            any::<u64>(),
        ),
        |(n, d, soft, ti, zero, seed)| {
            let kind = if soft {
                ContrastiveLoss::SoftClip
            } else {
                ContrastiveLoss::InfoNce
            };
            let tau = [0.005, 0.07, 1.0][ti];
            let mut r = Rng::new(seed);
            let mut p = r.vec(n * d, -1.0, 1.0);
            let mut t = r.vec(n * d, -1.0, 1.0);
            match zero {
                1 => p[..d].iter_mut().for_each(|v| *v = 0.0),
                2 => t[(n - 1) * d..].iter_mut().for_each(|v| *v = 0.0),
                _ => {}
            }
            let dot = |a: &[f64], i: usize, b: &[f64], j: usize| -> f64 {
                (0..d).map(|k| a[i * d + k] * b[j * d + k]).sum()
            };
            let gram = |a: &[f64], b: &[f64]| -> Vec<f64> {
                let v: Vec<f64> = (0..n * n).map(|x| dot(a, x / n, b, x % n)).collect();
                representable::<B>(&v)
            };
            let (g_pt, g_tt) = (gram(&p, &t), gram(&t, &t));
            let p_sq = representable::<B>(&(0..n).map(|i| dot(&p, i, &p, i)).collect::<Vec<_>>());
            let t_sq = representable::<B>(&(0..n).map(|i| dot(&t, i, &t, i)).collect::<Vec<_>>());
            let (gptb, gttb, psb, tsb) =
                (up(be, &g_pt), up(be, &g_tt), up(be, &p_sq), up(be, &t_sq));
            let inv = |sq: f64| 1.0 / sq.sqrt().max(1e-12);

            // forward
            let (mut cpt_b, mut ctt_b) = (
                up(be, &r.vec(n * n, -9.0, 9.0)),
                be.alloc(n * n).map_err(e)?,
            );
            be.clip_logits_forward(
                kind,
                &gptb,
                soft.then_some(&gttb),
                &psb,
                &tsb,
                n,
                tau,
                &mut cpt_b,
                soft.then_some(&mut ctt_b),
            )
            .map_err(e)?;
            let (mut cpt, mut ctt) = (vec![0.0; n * n], vec![0.0; n * n]);
            or.clip_logits_forward(
                kind,
                &g_pt,
                soft.then_some(&g_tt),
                &p_sq,
                &t_sq,
                n,
                tau,
                &mut cpt,
                soft.then_some(&mut ctt),
            )
            .map_err(e)?;
            let fwd_tol = Tol::new(4.0 * u * max_abs(&cpt).max(1.0), 4.0 * u, GRAM_WHY);
            check_close("logits_pt from Grams", &down(be, &cpt_b), &cpt, fwd_tol)?;
            if soft {
                let tol = Tol::new(4.0 * u * max_abs(&ctt).max(1.0), 4.0 * u, GRAM_WHY);
                check_close("logits_tt from Grams", &down(be, &ctt_b), &ctt, tol)?;
            }

            // backward, from the oracle's logits (made representable) and random cotangents
            let (cpt, ctt) = (representable::<B>(&cpt), representable::<B>(&ctt));
            let dc = representable::<B>(&r.vec(n * n, -1.0, 1.0));
            let de = representable::<B>(&r.vec(n * n, -1.0, 1.0));
            let (cptb, cttb, dcb, deb) = (up(be, &cpt), up(be, &ctt), up(be, &dc), up(be, &de));
            let junk = r.vec(n * n, -7.0, 7.0);
            let (mut wpt_b, mut dp_b, mut wtt_b) = (up(be, &junk), up(be, &junk), up(be, &junk));
            be.clip_logits_backward(
                kind,
                &cptb,
                soft.then_some(&cttb),
                &dcb,
                soft.then_some(&deb),
                &psb,
                &tsb,
                n,
                tau,
                &mut wpt_b,
                Some(&mut dp_b),
                Some(&mut wtt_b),
            )
            .map_err(e)?;
            let (mut wpt, mut dp, mut wtt) = (vec![0.0; n * n], vec![0.0; n * n], vec![0.0; n * n]);
            or.clip_logits_backward(
                kind,
                &cpt,
                soft.then_some(&ctt),
                &dc,
                soft.then_some(&de),
                &p_sq,
                &t_sq,
                n,
                tau,
                &mut wpt,
                Some(&mut dp),
                Some(&mut wtt),
            )
            .map_err(e)?;
            let (rv, sv): (Vec<f64>, Vec<f64>) = (
                p_sq.iter().map(|&x| inv(x)).collect(),
                t_sq.iter().map(|&x| inv(x)).collect(),
            );
            check_close_with("w_pt", &down(be, &wpt_b), &wpt, |x| {
                let (i, j) = (x / n, x % n);
                Tol::new(
                    4.0 * u * dc[x].abs() * rv[i] * sv[j] / tau,
                    4.0 * u,
                    GRAM_WHY,
                )
            })?;
            let nf = n as f64 + 4.0;
            check_close_with("d_p", &down(be, &dp_b), &dp, |x| {
                let (i, j) = (x / n, x % n);
                if i != j {
                    return Tol::exact("off-diagonal zeros");
                }
                let m: f64 = (0..n).map(|k| (dc[i * n + k] * cpt[i * n + k]).abs()).sum();
                Tol::new(nf * u * rv[i] * rv[i] * m, 4.0 * u, GRAM_WHY)
            })?;
            check_close_with("w_tt", &down(be, &wtt_b), &wtt, |x| {
                let (m, l) = (x / n, x % n);
                let off = if soft {
                    (de[m * n + l].abs() + de[l * n + m].abs()) * sv[m] * sv[l] / tau
                } else {
                    0.0
                };
                let diag = if m == l {
                    let mut b: f64 = (0..n).map(|i| (dc[i * n + m] * cpt[i * n + m]).abs()).sum();
                    if soft {
                        b += (0..n)
                            .map(|k| {
                                (de[m * n + k] * ctt[m * n + k]).abs()
                                    + (de[k * n + m] * ctt[k * n + m]).abs()
                            })
                            .sum::<f64>();
                    }
                    nf * u * sv[m] * sv[m] * b
                } else {
                    0.0
                };
                Tol::new(4.0 * u * off + diag, 4.0 * u, GRAM_WHY)
            })
        },
    );
}

/// The composite loss against the same composite on the oracle, gradients accumulated.
fn clip_loss<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "ClipLoss",
        16,
        (
            dim(33),
            dim(257),
            any::<bool>(),
            0..3usize,
            0..3u8,
            any::<u64>(),
        ),
        |(n, d, soft, ti, which, seed)| {
            let kind = if soft {
                ContrastiveLoss::SoftClip
            } else {
                ContrastiveLoss::InfoNce
            };
            let tau = [0.005, 0.05, 1.0][ti];
            let mut r = Rng::new(seed);
            let t = r.vec(n * d, -1.0, 1.0);
            let noise = r.vec(n * d, -1.0, 1.0);
            let p: Vec<f64> = t.iter().zip(&noise).map(|(a, b)| 0.5 * a + b).collect();
            let (p, t) = (representable::<B>(&p), representable::<B>(&t));
            let gp0 = representable::<B>(&r.vec(n * d, -1.0, 1.0));
            let gt0 = representable::<B>(&r.vec(n * d, -1.0, 1.0));
            let scale = representable::<B>(&[r.uniform(-2.0, 2.0)])[0];
            let (want_p, want_t) = (which != 2, which != 1);

            let (pb, tb) = (up(be, &p), up(be, &t));
            let mut clip = ClipLoss::new(be, n, d, kind, tau).map_err(e)?;
            let mut lb = be.alloc(1).map_err(e)?;
            clip.forward(be, &pb, &tb, &mut lb).map_err(e)?;
            let (mut gpb, mut gtb) = (up(be, &gp0), up(be, &gt0));
            clip.backward(
                be,
                &pb,
                &tb,
                scale,
                if want_p { Some(&mut gpb) } else { None },
                if want_t { Some(&mut gtb) } else { None },
            )
            .map_err(e)?;

            let mut oclip = ClipLoss::new(&or, n, d, kind, tau).map_err(e)?;
            let mut l = vec![0.0];
            oclip.forward(&or, &p, &t, &mut l).map_err(e)?;
            let (mut gp, mut gt) = (gp0.clone(), gt0.clone());
            oclip
                .backward(
                    &or,
                    &p,
                    &t,
                    scale,
                    if want_p { Some(&mut gp) } else { None },
                    if want_t { Some(&mut gt) } else { None },
                )
                .map_err(e)?;

            const WHY: &str = "cosines err by ~(2 + √d)·u (f32 dot products), logits by that \
                over τ, and the loss and gradients by ≤ 4× the logit error relative to their \
                own size; + the accumulation onto the pre-filled gradient";
            let k = 4.0 * u * (2.0 + (d as f64).sqrt()) / tau;
            check_close(
                "ClipLoss loss",
                &down(be, &lb),
                &l,
                Tol::new(k * l[0].abs().max(1.0), k, WHY),
            )?;
            for (what, got, want, g0) in [
                ("ClipLoss dpreds", down(be, &gpb), &gp, &gp0),
                ("ClipLoss dtargets", down(be, &gtb), &gt, &gt0),
            ] {
                let own: Vec<f64> = want.iter().zip(g0).map(|(a, b)| a - b).collect();
                let mag = max_abs(&own);
                check_close(what, &got, want, Tol::new(k * mag + 2.0 * u, 2.0 * u, WHY))?;
            }
            Ok(())
        },
    );
}

/// Wrong lengths and bad arguments are typed errors.
fn bad_input<B: Backend>(be: &B) {
    let buf = |n: usize| be.alloc(n).expect("alloc");
    let r = (|| -> Result<(), String> {
        let (x, mut y, mut nrm) = (buf(12), buf(12), buf(3));
        expect_err(
            "normalize short y",
            be.l2_normalize_rows_forward(&x, &mut buf(11), &mut nrm, 3, 4),
            true,
        )?;
        expect_err(
            "normalize short norms",
            be.l2_normalize_rows_forward(&x, &mut y, &mut buf(2), 3, 4),
            true,
        )?;
        expect_err(
            "normalize backward short dx",
            be.l2_normalize_rows_backward(&x, &x, &nrm, &mut buf(1), 3, 4),
            true,
        )?;
        let (c, mut l) = (buf(9), buf(1));
        let sc = ContrastiveLoss::SoftClip;
        let nce = ContrastiveLoss::InfoNce;
        expect_err(
            "softclip without logits_tt",
            be.contrastive_forward(sc, &c, None, 3, &mut l),
            false,
        )?;
        expect_err(
            "n = 0",
            be.contrastive_forward(nce, &buf(0), None, 0, &mut l),
            false,
        )?;
        expect_err(
            "short logits",
            be.contrastive_forward(nce, &buf(8), None, 3, &mut l),
            true,
        )?;
        expect_err(
            "short logits_tt",
            be.contrastive_forward(sc, &c, Some(&buf(8)), 3, &mut l),
            true,
        )?;
        expect_err(
            "loss of 2",
            be.contrastive_forward(nce, &c, None, 3, &mut buf(2)),
            true,
        )?;
        expect_err(
            "short dlogits_tt",
            be.contrastive_backward(sc, &c, Some(&c), 3, 1.0, &mut buf(9), Some(&mut buf(4))),
            true,
        )?;
        expect_err(
            "NaN scale",
            be.contrastive_backward(nce, &c, None, 3, f64::NAN, &mut buf(9), None),
            false,
        )?;
        expect_err("τ = 0", ClipLoss::new(be, 3, 4, sc, 0.0).map(|_| ()), false)?;
        let mut clip = ClipLoss::new(be, 3, 4, sc, 0.05).map_err(e)?;
        expect_err(
            "ClipLoss short preds",
            clip.forward(be, &buf(11), &x, &mut l),
            true,
        )?;
        expect_err(
            "ClipLoss loss of 2",
            clip.forward(be, &x, &x, &mut buf(2)),
            true,
        )?;
        clip.forward(be, &x, &x, &mut l).map_err(e)?;
        expect_err(
            "ClipLoss short dtargets",
            clip.backward(be, &x, &x, 1.0, None, Some(&mut buf(5))),
            true,
        )
    })();
    if let Err(m) = r {
        panic!("contrastive bad input: {m}");
    }
}
