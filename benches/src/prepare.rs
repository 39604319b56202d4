//! Every case as a closure over its device buffers, for any `B: Backend<Elem = f32>`.
//!
//! [`prepare`] allocates and fills a case's buffers (outside any timed region, with
//! the inputs a real call sees: saved statistics come from a forward pass, Gram
//! matrices are real Gram matrices) and returns a closure that queues one call.
//! Calls do not `sync`: the clock ([`crate::clock::DeviceClock`]) decides how the
//! device work is waited for and timed.
//!
//! Repeating a call is harmless: accumulated outputs grow linearly, `scale` flips
//! signs (alpha = −1, so values neither vanish into denormals nor overflow), AdamW and
//! the model steps keep training on the same batch.

use crate::case::{LossKind, ModelKind, Op, DROPOUT_P, SOBEL_FORM, TEMPERATURE};
use brain_core::diffusion::{DdimConfig, DdimScheduler, ScheduleArithmetic};
use brain_core::loss::cka::CkaLoss;
use brain_core::loss::contrastive::ClipLoss;
use brain_core::loss::multi_granularity::MultiGranularityLoss;
use brain_core::model::{BrainMclip, Havir, Model, ModelConfig};
use brain_core::nn::Mode;
use brain_core::train::AdamWState;
use brain_core::{AdamW, AdamWTensor, Backend, ContrastiveLoss, Dropout, Gemm, Result};

/// One queued call of a prepared case.
pub type Call<'a> = Box<dyn FnMut() -> Result<()> + 'a>;

/// Deterministic pseudo-random values in [-1, 1) (xorshift).
pub fn data(len: usize, seed: u64) -> Vec<f32> {
    crate::cases::data(len, seed)
}

fn up<B: Backend<Elem = f32>>(be: &B, len: usize, seed: u64) -> Result<B::Buffer> {
    be.upload(&data(len, seed))
}

fn up_scaled<B: Backend<Elem = f32>>(be: &B, len: usize, seed: u64, s: f32) -> Result<B::Buffer> {
    let v: Vec<f32> = data(len, seed).into_iter().map(|x| x * s).collect();
    be.upload(&v)
}

/// Positive values in [0.5, 1.5) (norms, squared norms).
fn up_positive<B: Backend<Elem = f32>>(be: &B, len: usize, seed: u64) -> Result<B::Buffer> {
    let v: Vec<f32> = data(len, seed).into_iter().map(|x| 1.0 + 0.5 * x).collect();
    be.upload(&v)
}

fn opt<T>(kind: ContrastiveLoss, x: T) -> Option<T> {
    (kind == ContrastiveLoss::SoftClip).then_some(x)
}

/// Allocate and fill the buffers of `op` on `be`; the returned closure queues one call.
/// Setup work is waited for (`sync`) before returning.
pub fn prepare<'a, B>(be: &'a B, op: &Op) -> Result<Call<'a>>
where
    B: Backend<Elem = f32>,
    B::Buffer: 'a,
{
    let call = build(be, op)?;
    be.sync()?;
    Ok(call)
}

fn build<'a, B>(be: &'a B, op: &Op) -> Result<Call<'a>>
where
    B: Backend<Elem = f32>,
    B::Buffer: 'a,
{
    use Op::*;
    Ok(match *op {
        Gemm(g) => {
            let (a, b, mut c) = (
                up(be, g.m * g.k, 1)?,
                up(be, g.k * g.n, 2)?,
                be.alloc(g.m * g.n)?,
            );
            Box::new(move || be.gemm(&g, &a, &b, &mut c))
        }
        LinearFwd { rows, inp, out } => {
            let x = up(be, rows * inp, 1)?;
            let w = up_scaled(be, out * inp, 2, 0.01)?;
            let bias = up(be, out, 3)?;
            let mut y = be.alloc(rows * out)?;
            Box::new(move || be.linear_forward(&x, &w, Some(&bias), &mut y, rows, inp, out))
        }
        LinearBwd { rows, inp, out } => {
            let dy = up(be, rows * out, 1)?;
            let x = up(be, rows * inp, 2)?;
            let w = up_scaled(be, out * inp, 3, 0.01)?;
            let mut dx = be.alloc(rows * inp)?;
            let mut dw = be.alloc(out * inp)?;
            let mut db = be.alloc(out)?;
            Box::new(move || {
                be.linear_backward(
                    &dy,
                    &x,
                    &w,
                    Some(&mut dx),
                    Some(&mut dw),
                    Some(&mut db),
                    rows,
                    inp,
                    out,
                )
            })
        }
        BiasAdd { outer, channels } => {
            let mut y = up(be, outer * channels, 1)?;
            let b = up(be, channels, 2)?;
            Box::new(move || be.bias_add(&mut y, &b, outer, channels, 1))
        }
        BiasBwd { outer, channels } => {
            let dy = up(be, outer * channels, 1)?;
            let mut db = be.alloc(channels)?;
            Box::new(move || be.bias_backward(&dy, &mut db, outer, channels, 1))
        }
        ActFwd(act, n) => {
            let x = up_scaled(be, n, 1, 4.0)?;
            let mut y = be.alloc(n)?;
            Box::new(move || be.activation_forward(act, &x, &mut y))
        }
        ActBwd(act, n) => {
            let x = up_scaled(be, n, 1, 4.0)?;
            let dy = up(be, n, 2)?;
            let mut dx = be.alloc(n)?;
            Box::new(move || be.activation_backward(act, &x, &dy, &mut dx))
        }
        LayerNormFwd { rows, cols } => {
            let x = up(be, rows * cols, 1)?;
            let (g, b) = (up(be, cols, 2)?, up(be, cols, 3)?);
            let mut y = be.alloc(rows * cols)?;
            let (mut mean, mut rstd) = (be.alloc(rows)?, be.alloc(rows)?);
            Box::new(move || {
                be.layernorm_forward(&x, &g, &b, &mut y, &mut mean, &mut rstd, rows, cols, 1e-5)
            })
        }
        LayerNormBwd { rows, cols } => {
            let x = up(be, rows * cols, 1)?;
            let (g, b) = (up(be, cols, 2)?, up(be, cols, 3)?);
            let mut y = be.alloc(rows * cols)?;
            let (mut mean, mut rstd) = (be.alloc(rows)?, be.alloc(rows)?);
            be.layernorm_forward(&x, &g, &b, &mut y, &mut mean, &mut rstd, rows, cols, 1e-5)?;
            let dy = up(be, rows * cols, 4)?;
            let mut dx = be.alloc(rows * cols)?;
            let (mut dg, mut db) = (be.alloc(cols)?, be.alloc(cols)?);
            Box::new(move || {
                be.layernorm_backward(
                    &dy, &x, &g, &mean, &rstd, &mut dx, &mut dg, &mut db, rows, cols,
                )
            })
        }
        GroupNormFwd(s) => {
            let n = s.batch * s.channels * s.spatial;
            let x = up(be, n, 1)?;
            let (g, b) = (up(be, s.channels, 2)?, up(be, s.channels, 3)?);
            let mut y = be.alloc(n)?;
            let ng = s.batch * s.groups;
            let (mut mean, mut rstd) = (be.alloc(ng)?, be.alloc(ng)?);
            Box::new(move || {
                be.groupnorm_forward(&x, &g, &b, &mut y, &mut mean, &mut rstd, &s, 1e-5)
            })
        }
        GroupNormBwd(s) => {
            let n = s.batch * s.channels * s.spatial;
            let x = up(be, n, 1)?;
            let (g, b) = (up(be, s.channels, 2)?, up(be, s.channels, 3)?);
            let mut y = be.alloc(n)?;
            let ng = s.batch * s.groups;
            let (mut mean, mut rstd) = (be.alloc(ng)?, be.alloc(ng)?);
            be.groupnorm_forward(&x, &g, &b, &mut y, &mut mean, &mut rstd, &s, 1e-5)?;
            let dy = up(be, n, 4)?;
            let mut dx = be.alloc(n)?;
            let (mut dg, mut db) = (be.alloc(s.channels)?, be.alloc(s.channels)?);
            Box::new(move || {
                be.groupnorm_backward(&dy, &x, &g, &mean, &rstd, &mut dx, &mut dg, &mut db, &s)
            })
        }
        DropoutFwd(n) | DropoutBwd(n) => {
            let d = Dropout {
                p: DROPOUT_P,
                seed: 1,
                offset: 0,
            };
            let x = up(be, n, 1)?;
            let mut y = be.alloc(n)?;
            if matches!(op, DropoutFwd(_)) {
                Box::new(move || be.dropout_forward(&d, &x, &mut y))
            } else {
                Box::new(move || be.dropout_backward(&d, &x, &mut y))
            }
        }
        UpsampleFwd(mode, s) => {
            let x = up(be, s.input_len(), 1)?;
            let mut y = be.alloc(s.output_len())?;
            Box::new(move || be.upsample_forward(mode, &s, &x, &mut y))
        }
        UpsampleBwd(mode, s) => {
            let dy = up(be, s.output_len(), 1)?;
            let mut dx = be.alloc(s.input_len())?;
            Box::new(move || be.upsample_backward(mode, &s, &dy, &mut dx))
        }
        Add(n) => {
            let (a, b, mut c) = (up(be, n, 1)?, up(be, n, 2)?, be.alloc(n)?);
            Box::new(move || be.add(&a, &b, &mut c))
        }
        Scale(n) => {
            let mut x = up(be, n, 1)?;
            Box::new(move || be.scale(&mut x, -1.0))
        }
        Axpy(n) => {
            let (x, mut y) = (up(be, n, 1)?, up(be, n, 2)?);
            Box::new(move || be.axpy(0.5, &x, &mut y))
        }
        ReduceRows(red, rows, cols) => {
            let x = up(be, rows * cols, 1)?;
            let mut out = be.alloc(rows)?;
            Box::new(move || be.reduce_rows(red, &x, &mut out, rows, cols))
        }
        AdamW { tensors, params } => {
            let t = tensors.max(1);
            let sizes: Vec<usize> = (0..t)
                .map(|i| params / t + usize::from(i < params % t))
                .collect();
            let mut p = Vec::with_capacity(t);
            let mut g = Vec::with_capacity(t);
            let mut m = Vec::with_capacity(t);
            let mut v = Vec::with_capacity(t);
            for (i, &len) in sizes.iter().enumerate() {
                let s = 10 * i as u64;
                p.push(up(be, len, s + 1)?);
                g.push(up_scaled(be, len, s + 2, 0.01)?);
                m.push(be.alloc(len)?);
                v.push(be.alloc(len)?);
            }
            let mut norm = be.alloc(1)?;
            let cfg = brain_core::AdamW {
                lr: 3e-4,
                weight_decay: 0.01,
                ..brain_core::AdamW::default()
            };
            Box::new(move || {
                let mut ts: Vec<AdamWTensor<'_, B>> = p
                    .iter_mut()
                    .zip(&g)
                    .zip(m.iter_mut().zip(v.iter_mut()))
                    .map(|((param, grad), (exp_avg, exp_avg_sq))| AdamWTensor {
                        param,
                        grad,
                        exp_avg,
                        exp_avg_sq,
                    })
                    .collect();
                be.adamw_step(&cfg, &mut ts, Some(&mut norm))
            })
        }
        PhiloxBits(n) => {
            let mut out = be.alloc(n)?;
            Box::new(move || be.philox_bits(&mut out, 7, 1))
        }
        Uniform(n) => {
            let mut out = be.alloc(n)?;
            Box::new(move || be.fill_uniform(&mut out, 7, 1))
        }
        Normal(n) => {
            let mut out = be.alloc(n)?;
            Box::new(move || be.fill_normal(&mut out, 7, 1, 0.0, 1.0))
        }
        MseFwd(n) => {
            let (a, b, mut loss) = (up(be, n, 1)?, up(be, n, 2)?, be.alloc(1)?);
            Box::new(move || be.mse_forward(&a, &b, &mut loss))
        }
        MseBwd(n) => {
            let (a, b) = (up(be, n, 1)?, up(be, n, 2)?);
            let (mut da, mut db) = (be.alloc(n)?, be.alloc(n)?);
            Box::new(move || be.mse_backward(&a, &b, 1.0, Some(&mut da), Some(&mut db)))
        }
        CkaGramsFwd(est, n) | CkaGramsBwd(est, n) => {
            let (k, l) = grams(be, n)?;
            if matches!(op, CkaGramsFwd(..)) {
                let mut out = be.alloc(4)?;
                Box::new(move || be.cka_grams_forward(&k, &l, n, est, &mut out))
            } else {
                let (mut dk, mut dl) = (be.alloc(n * n)?, be.alloc(n * n)?);
                Box::new(move || {
                    be.cka_grams_backward(&k, &l, n, est, 1.0, Some(&mut dk), Some(&mut dl))
                })
            }
        }
        SimsFwd(b, t, d) => {
            let n = b * t * d;
            let (x, y, mut loss) = (up(be, n, 1)?, up(be, n, 2)?, be.alloc(1)?);
            Box::new(move || be.sims_forward(&x, &y, b, t, d, &mut loss))
        }
        SimsBwd(b, t, d) => {
            let n = b * t * d;
            let (x, y) = (up(be, n, 1)?, up(be, n, 2)?);
            let (mut dx, mut dy) = (be.alloc(n)?, be.alloc(n)?);
            Box::new(move || be.sims_backward(&x, &y, b, t, d, 1.0, Some(&mut dx), Some(&mut dy)))
        }
        L2NormFwd { rows, cols } => {
            let x = up(be, rows * cols, 1)?;
            let (mut y, mut norms) = (be.alloc(rows * cols)?, be.alloc(rows)?);
            Box::new(move || be.l2_normalize_rows_forward(&x, &mut y, &mut norms, rows, cols))
        }
        L2NormBwd { rows, cols } => {
            let x = up(be, rows * cols, 1)?;
            let (mut y, mut norms) = (be.alloc(rows * cols)?, be.alloc(rows)?);
            be.l2_normalize_rows_forward(&x, &mut y, &mut norms, rows, cols)?;
            let dy = up(be, rows * cols, 2)?;
            let mut dx = be.alloc(rows * cols)?;
            Box::new(move || be.l2_normalize_rows_backward(&dy, &x, &norms, &mut dx, rows, cols))
        }
        ContrastiveFwd(kind, n) => {
            let inv_t = (1.0 / TEMPERATURE) as f32;
            let pt = up_scaled(be, n * n, 1, inv_t)?;
            let tt = opt(kind, up_scaled(be, n * n, 2, inv_t)?);
            let mut loss = be.alloc(1)?;
            Box::new(move || be.contrastive_forward(kind, &pt, tt.as_ref(), n, &mut loss))
        }
        ContrastiveBwd(kind, n) => {
            let inv_t = (1.0 / TEMPERATURE) as f32;
            let pt = up_scaled(be, n * n, 1, inv_t)?;
            let tt = opt(kind, up_scaled(be, n * n, 2, inv_t)?);
            let mut dpt = be.alloc(n * n)?;
            let mut dtt = opt(kind, be.alloc(n * n)?);
            Box::new(move || {
                be.contrastive_backward(kind, &pt, tt.as_ref(), n, 1.0, &mut dpt, dtt.as_mut())
            })
        }
        ClipLogitsFwd(kind, n) => {
            let g_pt = up(be, n * n, 1)?;
            let g_tt = opt(kind, up(be, n * n, 2)?);
            let (p_sq, t_sq) = (up_positive(be, n, 3)?, up_positive(be, n, 4)?);
            let mut l_pt = be.alloc(n * n)?;
            let mut l_tt = opt(kind, be.alloc(n * n)?);
            Box::new(move || {
                be.clip_logits_forward(
                    kind,
                    &g_pt,
                    g_tt.as_ref(),
                    &p_sq,
                    &t_sq,
                    n,
                    TEMPERATURE,
                    &mut l_pt,
                    l_tt.as_mut(),
                )
            })
        }
        ClipLogitsBwd(kind, n) => {
            let inv_t = (1.0 / TEMPERATURE) as f32;
            let l_pt = up_scaled(be, n * n, 1, inv_t)?;
            let l_tt = opt(kind, up_scaled(be, n * n, 2, inv_t)?);
            let dl_pt = up(be, n * n, 3)?;
            let dl_tt = opt(kind, up(be, n * n, 4)?);
            let (p_sq, t_sq) = (up_positive(be, n, 5)?, up_positive(be, n, 6)?);
            let mut w_pt = be.alloc(n * n)?;
            let mut d_p = be.alloc(n * n)?;
            let mut w_tt = be.alloc(n * n)?;
            Box::new(move || {
                be.clip_logits_backward(
                    kind,
                    &l_pt,
                    l_tt.as_ref(),
                    &dl_pt,
                    dl_tt.as_ref(),
                    &p_sq,
                    &t_sq,
                    n,
                    TEMPERATURE,
                    &mut w_pt,
                    Some(&mut d_p),
                    Some(&mut w_tt),
                )
            })
        }
        ClipGramsFwd(kind, n, d) => {
            let (p, t) = (up(be, n * d, 1)?, up(be, n * d, 2)?);
            let (mut p_sq, mut t_sq) = (be.alloc(n)?, be.alloc(n)?);
            let mut g_pt = be.alloc(n * n)?;
            let mut g_tt = opt(kind, be.alloc(n * n)?);
            Box::new(move || {
                be.clip_grams_forward(
                    kind,
                    &p,
                    &t,
                    n,
                    d,
                    &mut p_sq,
                    &mut t_sq,
                    &mut g_pt,
                    g_tt.as_mut(),
                )
            })
        }
        ClipInputsBwd(kind, n, d) => {
            let (w_pt, d_p, w_tt) = (up(be, n * n, 1)?, up(be, n * n, 2)?, up(be, n * n, 3)?);
            let (p, t) = (up(be, n * d, 4)?, up(be, n * d, 5)?);
            let (mut dp, mut dt) = (be.alloc(n * d)?, be.alloc(n * d)?);
            Box::new(move || {
                be.clip_inputs_backward(
                    kind,
                    &w_pt,
                    &d_p,
                    &w_tt,
                    &p,
                    &t,
                    n,
                    d,
                    Some(&mut dp),
                    Some(&mut dt),
                )
            })
        }
        SobelFwd(s) => {
            let x = up(be, s.len(), 1)?;
            let (mut gx, mut gy, mut mag) =
                (be.alloc(s.len())?, be.alloc(s.len())?, be.alloc(s.len())?);
            Box::new(move || be.sobel_forward(&x, &s, &mut gx, &mut gy, &mut mag))
        }
        SobelBwd(s) => {
            let x = up(be, s.len(), 1)?;
            let (dgx, dgy, dmag) = (
                up(be, s.len(), 2)?,
                up(be, s.len(), 3)?,
                up(be, s.len(), 4)?,
            );
            let mut dx = be.alloc(s.len())?;
            Box::new(move || {
                be.sobel_backward(&x, &s, Some(&dgx), Some(&dgy), Some(&dmag), &mut dx)
            })
        }
        SobelLossFwd(s) => {
            let (p, q, mut loss) = (up(be, s.len(), 1)?, up(be, s.len(), 2)?, be.alloc(1)?);
            Box::new(move || be.sobel_loss_forward(&p, &q, &s, SOBEL_FORM, &mut loss))
        }
        SobelLossBwd(s) => {
            let (p, q) = (up(be, s.len(), 1)?, up(be, s.len(), 2)?);
            let mut dp = be.alloc(s.len())?;
            Box::new(move || {
                be.sobel_loss_backward(&p, &q, &s, SOBEL_FORM, 1.0, Some(&mut dp), None)
            })
        }
        SchedulerStep(s) => {
            let mut ddim = DdimScheduler::new(DdimConfig::versatile_diffusion(
                ScheduleArithmetic::DiffusersF32,
            ))?;
            ddim.set_timesteps(50)?;
            let step = ddim.step_params(ddim.timesteps()[10], 0.0)?;
            let (eps, x) = (up(be, s.len(), 1)?, up(be, s.len(), 2)?);
            let mut prev = be.alloc(s.len())?;
            Box::new(move || be.scheduler_step(&step, &eps, &x, None, &mut prev, None))
        }
        AddNoise(s) => {
            let (x0, noise) = (up(be, s.len(), 1)?, up(be, s.len(), 2)?);
            let a: Vec<f64> = (0..s.batch)
                .map(|i| 0.3 + 0.6 * i as f64 / s.batch as f64)
                .collect();
            let b: Vec<f64> = a.iter().map(|x| (1.0 - x * x).sqrt()).collect();
            let mut out = be.alloc(s.len())?;
            Box::new(move || be.add_noise(&x0, &noise, &a, &b, &mut out))
        }
        Guidance(s) => {
            let (u, c) = (up(be, s.len(), 1)?, up(be, s.len(), 2)?);
            let mut out = be.alloc(s.len())?;
            Box::new(move || be.guidance_combine(&u, &c, 7.5, &mut out))
        }
        Loss(kind, tokens, lat) => loss_call(be, kind, tokens, lat)?,
        Step(kind, cfg, batch) => match (kind, cfg) {
            (ModelKind::BrainMclip, ModelConfig::BrainMclip(c)) => {
                step_call(be, BrainMclip::new(be, c, 0)?, batch)?
            }
            (ModelKind::Havir, ModelConfig::Havir(c)) => {
                step_call(be, Havir::new(be, c, 0)?, batch)?
            }
            _ => {
                return Err(brain_core::BrainError::InvalidArgument {
                    op: "benches::prepare",
                    reason: "model kind and configuration disagree".into(),
                })
            }
        },
    })
}

/// K = AAᵀ, L = BBᵀ for random `A, B [n, 64]`: real (positive semi-definite) Grams.
fn grams<B: Backend<Elem = f32>>(be: &B, n: usize) -> Result<(B::Buffer, B::Buffer)> {
    let p = 64;
    let g = Gemm::new(n, n, p).trans(false, true);
    let (a, b) = (up(be, n * p, 1)?, up(be, n * p, 2)?);
    let (mut k, mut l) = (be.alloc(n * n)?, be.alloc(n * n)?);
    be.gemm(&g, &a, &a, &mut k)?;
    be.gemm(&g, &b, &b, &mut l)?;
    Ok((k, l))
}

fn loss_call<'a, B>(
    be: &'a B,
    kind: LossKind,
    (n, t, d): (usize, usize, usize),
    lat: brain_core::ImageShape,
) -> Result<Call<'a>>
where
    B: Backend<Elem = f32>,
    B::Buffer: 'a,
{
    let len = n * t * d;
    let width = t * d;
    let mut loss = be.alloc(1)?;
    // The Sobel loss works on latents, not token tensors.
    let (alen, glen) = if kind == LossKind::Sobel {
        (lat.len(), lat.len())
    } else {
        (len, len)
    };
    let (a, b) = (up(be, alen, 1)?, up(be, alen, 2)?);
    let (mut da, mut db) = (be.alloc(glen)?, be.alloc(glen)?);
    Ok(match kind {
        LossKind::Mse => Box::new(move || {
            be.mse_forward(&a, &b, &mut loss)?;
            be.mse_backward(&a, &b, 1.0, Some(&mut da), Some(&mut db))
        }),
        LossKind::Cka(est) => {
            let mut cka = CkaLoss::new(be, n, width, width, est)?;
            Box::new(move || {
                cka.forward(be, &a, &b, &mut loss)?;
                cka.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))
            })
        }
        LossKind::Sims => Box::new(move || {
            be.sims_forward(&a, &b, n, t, d, &mut loss)?;
            be.sims_backward(&a, &b, n, t, d, 1.0, Some(&mut da), Some(&mut db))
        }),
        LossKind::Mg => {
            let mut mg = MultiGranularityLoss::new(be, n, t, d)?;
            Box::new(move || {
                mg.forward(be, &a, &b, &mut loss)?;
                mg.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))
            })
        }
        LossKind::Clip(c) => {
            let mut clip = ClipLoss::new(be, n, width, c, TEMPERATURE)?;
            Box::new(move || {
                clip.forward(be, &a, &b, &mut loss)?;
                clip.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))
            })
        }
        LossKind::Sobel => Box::new(move || {
            be.sobel_loss_forward(&a, &b, &lat, SOBEL_FORM, &mut loss)?;
            be.sobel_loss_backward(&a, &b, &lat, SOBEL_FORM, 1.0, Some(&mut da), None)
        }),
    })
}

/// One training step as `Trainer::run` takes it per batch: forward in train mode
/// (dropout on), every loss term (downloaded, as the trainer logs them), backward into
/// zeroed gradients, one AdamW update (lr 3e-4, weight decay 0.01, no clipping).
fn step_call<'a, B, M>(be: &'a B, mut model: M, batch: usize) -> Result<Call<'a>>
where
    B: Backend<Elem = f32>,
    B::Buffer: 'a,
    M: Model<B> + 'a,
    M::Acts: 'a,
{
    let mut acts = model.acts(be, batch)?;
    for (i, slot) in model.slots().iter().enumerate() {
        let v = data(batch * slot.width, 100 + i as u64);
        be.write(model.slot_mut(&mut acts, i), &v)?;
    }
    let cfg = AdamW {
        lr: 3e-4,
        weight_decay: 0.01,
        ..AdamW::default()
    };
    let mut opt = AdamWState::new(be, model.params(), cfg)?;
    let mut step = 0u64;
    Ok(Box::new(move || {
        let mode = Mode::Train { seed: 1, step };
        model.forward(be, &mut acts, mode)?;
        model.loss(be, &mut acts)?;
        model.backward(be, &mut acts, mode)?;
        opt.step(be, model.params_mut(), cfg.lr)?;
        step += 1;
        Ok(())
    }))
}
