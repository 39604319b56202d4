//! NaN and ±Inf in the inputs must reach the outputs exactly where the oracle puts
//! them: a fast path that drops them (max via `f32::max`, a select instead of a
//! multiply, beta-skipping that reads C) fails here.

use crate::data::{down, representable, up, Oracle, Rng};
use crate::tolerance::{check_close, Tol};
use brain_core::{
    Activation, AdamW, Backend, Dropout, Gemm, RowReduce, UpsampleMode, UpsampleShape,
};

const LOOSE: Tol = Tol::new(
    1e-3,
    1e-3,
    "only the placement of non-finite values is under test here",
);

fn poison(v: &mut [f64], r: &mut Rng) {
    let n = v.len();
    for (k, bad) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        let i = (r.next_u64() as usize + k) % n;
        v[i] = bad;
    }
}

/// Non-finite propagation through every kernel family.
pub fn nonfinite<B: Backend>(be: &B) {
    let or = Oracle::new();
    let e = |e: brain_core::BrainError| e.to_string();
    let run = || -> Result<(), String> {
        let mut r = Rng::new(7);
        // GEMM: NaN/Inf in A reach their rows; NaN in C vanishes when beta = 0 (BLAS).
        let (m, n, k) = (9, 11, 13);
        let mut a = representable::<B>(&r.vec(m * k, -1.0, 1.0));
        poison(&mut a, &mut r);
        let b = representable::<B>(&r.vec(k * n, -1.0, 1.0));
        let c0 = vec![f64::NAN; m * n];
        for beta in [0.0, 0.5] {
            let g = Gemm::new(m, n, k).scale(1.0, beta);
            let mut cb = up(be, &c0);
            be.gemm(&g, &up(be, &a), &up(be, &b), &mut cb).map_err(e)?;
            let mut want = c0.clone();
            or.gemm(&g, &a, &b, &mut want).map_err(e)?;
            check_close("gemm (non-finite)", &down(be, &cb), &want, LOOSE)?;
        }

        // Linear, activations, dropout, upsampling, reductions on a poisoned x.
        let (rows, cols) = (6, 37);
        let mut x = representable::<B>(&r.vec(rows * cols, -1.0, 1.0));
        poison(&mut x, &mut r);
        let w = representable::<B>(&r.vec(5 * cols, -1.0, 1.0));
        let xb = up(be, &x);
        let mut yb = be.alloc(rows * 5).map_err(e)?;
        be.linear_forward(&xb, &up(be, &w), None, &mut yb, rows, cols, 5)
            .map_err(e)?;
        let mut y = vec![0.0; rows * 5];
        or.linear_forward(&x, &w, None, &mut y, rows, cols, 5)
            .map_err(e)?;
        check_close("linear (non-finite)", &down(be, &yb), &y, LOOSE)?;

        let mut yb = be.alloc(rows * cols).map_err(e)?;
        let mut y = vec![0.0; rows * cols];
        for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
            be.activation_forward(act, &xb, &mut yb).map_err(e)?;
            or.activation_forward(act, &x, &mut y).map_err(e)?;
            check_close("activation (non-finite)", &down(be, &yb), &y, LOOSE)?;
        }
        let d = Dropout {
            p: 0.5,
            seed: 3,
            offset: 9,
        };
        be.dropout_forward(&d, &xb, &mut yb).map_err(e)?;
        or.dropout_forward(&d, &x, &mut y).map_err(e)?;
        check_close("dropout (non-finite)", &down(be, &yb), &y, LOOSE)?;

        let gamma = vec![1.0; cols];
        let (mut mb, mut rb) = (be.alloc(rows).map_err(e)?, be.alloc(rows).map_err(e)?);
        let (mut mo, mut ro) = (vec![0.0; rows], vec![0.0; rows]);
        be.layernorm_forward(
            &xb,
            &up(be, &gamma),
            &up(be, &gamma),
            &mut yb,
            &mut mb,
            &mut rb,
            rows,
            cols,
            1e-5,
        )
        .map_err(e)?;
        or.layernorm_forward(
            &x, &gamma, &gamma, &mut y, &mut mo, &mut ro, rows, cols, 1e-5,
        )
        .map_err(e)?;
        check_close("layernorm (non-finite)", &down(be, &yb), &y, LOOSE)?;

        let s = UpsampleShape {
            batch: 1,
            channels: rows,
            height: 1,
            width: cols,
            factor: 2,
        };
        let mut ub = be.alloc(s.output_len()).map_err(e)?;
        let mut uo = vec![0.0; s.output_len()];
        for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
            be.upsample_forward(mode, &s, &xb, &mut ub).map_err(e)?;
            or.upsample_forward(mode, &s, &x, &mut uo).map_err(e)?;
            check_close("upsample (non-finite)", &down(be, &ub), &uo, LOOSE)?;
        }

        let mut ob = be.alloc(rows).map_err(e)?;
        let mut out = vec![0.0; rows];
        for op in [
            RowReduce::Sum,
            RowReduce::Mean,
            RowReduce::Max,
            RowReduce::LogSumExp,
        ] {
            be.reduce_rows(op, &xb, &mut ob, rows, cols).map_err(e)?;
            or.reduce_rows(op, &x, &mut out, rows, cols).map_err(e)?;
            check_close("reduce_rows (non-finite)", &down(be, &ob), &out, LOOSE)?;
        }
        // max over a row holding −∞ and finite values, and a row of all −∞
        let mut z = vec![-1.0, f64::NEG_INFINITY, 2.0];
        z.extend([f64::NEG_INFINITY; 3]);
        for op in [RowReduce::Max, RowReduce::LogSumExp] {
            let mut ob = be.alloc(2).map_err(e)?;
            be.reduce_rows(op, &up(be, &z), &mut ob, 2, 3).map_err(e)?;
            let mut out = vec![0.0; 2];
            or.reduce_rows(op, &z, &mut out, 2, 3).map_err(e)?;
            check_close("reduce_rows (−∞ rows)", &down(be, &ob), &out, LOOSE)?;
        }

        // AdamW with clipping: one NaN gradient poisons the global norm, hence every parameter.
        let p = representable::<B>(&r.vec(8, -1.0, 1.0));
        let mut g = representable::<B>(&r.vec(8, -1.0, 1.0));
        g[3] = f64::NAN;
        let z8 = vec![0.0; 8];
        for clip in [None, Some(1.0)] {
            let cfg = AdamW {
                max_grad_norm: clip,
                ..AdamW::default()
            };
            let mut mine = [super::adamw::Slot::<B> {
                param: up(be, &p),
                grad: up(be, &g),
                m: up(be, &z8),
                v: up(be, &z8),
            }];
            let mut want = [super::adamw::Slot::<Oracle> {
                param: p.clone(),
                grad: g.clone(),
                m: z8.clone(),
                v: z8.clone(),
            }];
            super::adamw::step(be, &cfg, &mut mine)?;
            super::adamw::step(&or, &cfg, &mut want)?;
            check_close(
                "adamw (non-finite)",
                &down(be, &mine[0].param),
                &want[0].param,
                LOOSE,
            )?;
        }
        Ok(())
    };
    if let Err(msg) = run() {
        panic!("nonfinite: {msg}");
    }
}
