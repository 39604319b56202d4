use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, excepted, unit_roundoff, Tol};
use brain_core::{AdamW, AdamWTensor, Backend, Element};
use proptest::prelude::*;

/// State of one parameter tensor on some backend.
pub(crate) struct Slot<B: Backend> {
    pub param: B::Buffer,
    pub grad: B::Buffer,
    pub m: B::Buffer,
    pub v: B::Buffer,
}

/// Run one fused step over all slots; returns the grad norm.
pub(crate) fn step<B: Backend>(be: &B, cfg: &AdamW, slots: &mut [Slot<B>]) -> Result<f64, String> {
    let mut norm = be.alloc(1).map_err(|e| e.to_string())?;
    let mut ts: Vec<AdamWTensor<'_, B>> = slots
        .iter_mut()
        .map(|s| AdamWTensor {
            param: &mut s.param,
            grad: &s.grad,
            exp_avg: &mut s.m,
            exp_avg_sq: &mut s.v,
        })
        .collect();
    be.adamw_step(cfg, &mut ts, Some(&mut norm))
        .map_err(|e| e.to_string())?;
    Ok(down(be, &norm)[0])
}

/// Several fused AdamW steps over several tensors, with and without clipping.
pub fn adamw<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    let max_steps = if excepted::<B::Elem>("adamw after the first step") {
        2
    } else {
        4
    };
    let clip = proptest::sample::select(vec![None, Some(0.5), Some(1e3)]);
    let sizes = proptest::collection::vec(dim(3000), 1..4);
    run(
        "adamw",
        16,
        (sizes, 1u64..max_steps, clip, any::<u64>()),
        |(sizes, steps, max_grad_norm, seed)| {
            let mut r = Rng::new(seed);
            let mut mine: Vec<Slot<B>> = Vec::new();
            let mut oracle: Vec<Slot<Oracle>> = Vec::new();
            for &n in &sizes {
                let p = representable::<B>(&r.vec(n, -1.0, 1.0));
                let z = vec![0.0; n];
                mine.push(Slot {
                    param: up(be, &p),
                    grad: up(be, &z),
                    m: up(be, &z),
                    v: up(be, &z),
                });
                oracle.push(Slot {
                    param: p,
                    grad: z.clone(),
                    m: z.clone(),
                    v: z,
                });
            }
            let total: usize = sizes.iter().sum();
            for t in 1..=steps {
                for (k, &n) in sizes.iter().enumerate() {
                    let g = representable::<B>(&r.vec(n, -1.0, 1.0));
                    let elems: Vec<B::Elem> = g.iter().map(|&v| B::Elem::from_f64(v)).collect();
                    be.write(&mut mine[k].grad, &elems)
                        .map_err(|e| e.to_string())?;
                    oracle[k].grad = g;
                }
                let cfg = AdamW {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.05,
                    step: t,
                    max_grad_norm,
                };
                let got_norm = step(be, &cfg, &mut mine)?;
                let want_norm = step(&or, &cfg, &mut oracle)?;
                let sq = ((total + 1) as f64).sqrt();
                check_close(
                    "adamw grad_norm",
                    &[got_norm],
                    &[want_norm],
                    Tol::new(
                        0.0,
                        8.0 * u * sq,
                        "a sum of n squares: relative error ~u·√n",
                    ),
                )?;
                for k in 0..sizes.len() {
                    // The update lr·m̂/(√v̂+ε) is O(lr) with a relative error of a few u, plus
                    // the clip coefficient's error u·√n when clipping is active.
                    let tol = Tol::new(
                        64.0 * u * cfg.lr * t as f64 * sq,
                        16.0 * u,
                        "update of size lr with relative error ~u·√n from the clip coefficient",
                    );
                    check_close(
                        "adamw param",
                        &down(be, &mine[k].param),
                        &oracle[k].param,
                        tol,
                    )?;
                    let tol = Tol::new(16.0 * u * sq, 16.0 * u, "moments: a few rounded products of gradients ≤ 1, scaled by the clip coefficient");
                    check_close("adamw exp_avg", &down(be, &mine[k].m), &oracle[k].m, tol)?;
                    check_close("adamw exp_avg_sq", &down(be, &mine[k].v), &oracle[k].v, tol)?;
                }
            }
            Ok(())
        },
    );
}
