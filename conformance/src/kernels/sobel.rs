//! Conformance of the `sobel` kernels against the f64 oracle: Sobel forward and
//! backward (any subset of output gradients) and the fused Sobel loss in both forms.

use crate::data::{dim, down, representable, run, up, Oracle, Rng};
use crate::tolerance::{check_close, check_close_with, unit_roundoff, Tol};
use brain_core::{Backend, BrainError, ImageShape, SobelLossForm};
use proptest::prelude::*;

type E = BrainError;

fn e(e: E) -> String {
    e.to_string()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter()
        .filter(|x| x.is_finite())
        .fold(0.0f64, |m, x| m.max(x.abs()))
}

/// Σ of `v` over the 3×3 window (zero padded) of every pixel: how much of a field
/// one Sobel output (or one adjoint output) gathers.
fn window_sum(v: &[f64], s: &ImageShape) -> Vec<f64> {
    let (h, w) = (s.height as isize, s.width as isize);
    let hw = (h * w) as usize;
    let mut out = vec![0.0; v.len()];
    for p in 0..s.batch * s.channels {
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (yy, xx) = (y + dy, x + dx);
                        if yy >= 0 && xx >= 0 && yy < h && xx < w {
                            acc += v[p * hw + (yy * w + xx) as usize];
                        }
                    }
                }
                out[p * hw + (y * w + x) as usize] = acc;
            }
        }
    }
    out
}

fn shapes() -> impl Strategy<Value = ImageShape> {
    (dim(3), dim(4), dim(33), dim(65)).prop_map(|(batch, channels, height, width)| ImageShape {
        batch,
        channels,
        height,
        width,
    })
}

/// Every `sobel` kernel, forward and backward, on proptest shapes.
pub fn sobel<B: Backend>(be: &B) {
    sobel_kernels(be);
    sobel_loss(be);
    bad_input(be);
}

const WHY: &str = "each Sobel output sums 6 taps of total weight 8: ≤ 4 roundings of \
    values ≤ 8·max|x|, so 32·u·max|x|; the magnitude gradient gx/|g| moves by \
    1.5·that/|g|, and the adjoint gathers 3×3 windows of the effective gradients";

/// Forward (with a NaN pixel at random) and backward with any subset of dgx, dgy, dmag.
fn sobel_kernels<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "sobel",
        20,
        (shapes(), 0..8u8, any::<bool>(), any::<u64>()),
        |(s, mask, nan, seed)| {
            let n = s.len();
            let mut r = Rng::new(seed);
            let mut x = r.vec(n, -1.0, 1.0);
            if nan {
                x[n / 2] = f64::NAN;
            }
            let x = representable::<B>(&x);
            let a = max_abs(&x).max(1e-30);
            let xb = up(be, &x);
            let (mut gxb, mut gyb, mut mb) = (
                be.alloc(n).map_err(e)?,
                be.alloc(n).map_err(e)?,
                be.alloc(n).map_err(e)?,
            );
            be.sobel_forward(&xb, &s, &mut gxb, &mut gyb, &mut mb)
                .map_err(e)?;
            let (mut gx, mut gy, mut m) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            or.sobel_forward(&x, &s, &mut gx, &mut gy, &mut m)
                .map_err(e)?;
            let eg = 32.0 * u * a;
            check_close("sobel gx", &down(be, &gxb), &gx, Tol::new(eg, 0.0, WHY))?;
            check_close("sobel gy", &down(be, &gyb), &gy, Tol::new(eg, 0.0, WHY))?;
            check_close(
                "sobel magnitude",
                &down(be, &mb),
                &m,
                Tol::new(eg, 4.0 * u, WHY),
            )?;
            if nan {
                return Ok(());
            }

            let dgx = representable::<B>(&r.vec(n, -1.0, 1.0));
            let dgy = representable::<B>(&r.vec(n, -1.0, 1.0));
            let dm = representable::<B>(&r.vec(n, -1.0, 1.0));
            let (ux, uy, um) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
            let (dgxb, dgyb, dmb) = (up(be, &dgx), up(be, &dgy), up(be, &dm));
            let mut dxb = up(be, &r.vec(n, -9.0, 9.0)); // overwritten
            be.sobel_backward(
                &xb,
                &s,
                ux.then_some(&dgxb),
                uy.then_some(&dgyb),
                um.then_some(&dmb),
                &mut dxb,
            )
            .map_err(e)?;
            let mut dx = vec![0.0; n];
            or.sobel_backward(
                &x,
                &s,
                ux.then_some(&dgx),
                uy.then_some(&dgy),
                um.then_some(&dm),
                &mut dx,
            )
            .map_err(e)?;
            // Error of the effective gradients D = dg + dmag·g/|g| per pixel, and their size.
            let (mut err_d, mut size_d) = (vec![0.0; n], vec![0.0; n]);
            for i in 0..n {
                let (mut ed, mut sd) = (0.0, 0.0);
                if ux {
                    sd += dgx[i].abs();
                }
                if uy {
                    sd += dgy[i].abs();
                }
                if um {
                    ed += dm[i].abs() * (1.5 * eg / m[i] + 4.0 * u);
                    sd += dm[i].abs() * (gx[i].abs() + gy[i].abs()) / m[i];
                }
                err_d[i] = ed;
                size_d[i] = sd;
            }
            let (we, ws) = (window_sum(&err_d, &s), window_sum(&size_d, &s));
            check_close_with("sobel dx", &down(be, &dxb), &dx, |i| {
                Tol::new(3.0 * we[i] + 16.0 * u * ws[i], 0.0, WHY)
            })
        },
    );
}

/// The fused loss in both forms: value, and gradients accumulated onto random values
/// with a random scale, for any subset of dpred, dtarget; NaN in pred propagates.
fn sobel_loss<B: Backend>(be: &B) {
    let or = Oracle::new();
    let u = unit_roundoff::<B::Elem>();
    run(
        "sobel_loss",
        20,
        (shapes(), any::<bool>(), 0..3u8, any::<bool>(), any::<u64>()),
        |(s, magnitude, which, nan, seed)| {
            let form = if magnitude {
                SobelLossForm::Magnitude
            } else {
                SobelLossForm::Components
            };
            let n = s.len();
            let mut r = Rng::new(seed);
            let mut p = r.vec(n, -1.0, 1.0);
            let t0 = r.vec(n, -1.0, 1.0);
            let t: Vec<f64> = p.iter().zip(&t0).map(|(a, b)| 0.5 * a + b).collect();
            if nan {
                p[n / 3] = f64::NAN;
            }
            let (p, t) = (representable::<B>(&p), representable::<B>(&t));
            let a = max_abs(&p).max(max_abs(&t));
            let eg = 32.0 * u * a;
            let (pb, tb) = (up(be, &p), up(be, &t));
            let mut lb = be.alloc(1).map_err(e)?;
            be.sobel_loss_forward(&pb, &tb, &s, form, &mut lb)
                .map_err(e)?;
            let mut l = vec![0.0];
            or.sobel_loss_forward(&p, &t, &s, form, &mut l).map_err(e)?;
            if nan {
                return check_close(
                    "sobel loss (NaN input)",
                    &down(be, &lb),
                    &l,
                    Tol::exact("NaN"),
                );
            }
            // Per-pixel differences of what the loss compares, from the oracle.
            let (mut gxp, mut gyp, mut mp) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            let (mut gxt, mut gyt, mut mt) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            or.sobel_forward(&p, &s, &mut gxp, &mut gyp, &mut mp)
                .map_err(e)?;
            or.sobel_forward(&t, &s, &mut gxt, &mut gyt, &mut mt)
                .map_err(e)?;
            let diff: Vec<f64> = (0..n)
                .map(|i| match form {
                    SobelLossForm::Magnitude => (mp[i] - mt[i]).abs(),
                    SobelLossForm::Components => (gxp[i] - gxt[i]).abs() + (gyp[i] - gyt[i]).abs(),
                })
                .collect();
            let mean_diff = diff.iter().sum::<f64>() / n as f64;
            const LWHY: &str = "each compared value errs by ≤ 2·32·u·max|x| (two Sobels), so \
                the mean of squares by 2·mean|d|·that + that²; the sum of N terms by \
                ~u·√N relative (f32 reference)";
            check_close(
                "sobel loss",
                &down(be, &lb),
                &l,
                Tol::new(
                    4.0 * eg * mean_diff + 8.0 * eg * eg,
                    8.0 * u * ((n + 1) as f64).sqrt(),
                    LWHY,
                ),
            )?;

            let scale = representable::<B>(&[r.uniform(-2.0, 2.0)])[0];
            let c = 2.0 * scale.abs() / n as f64;
            let (want_p, want_t) = (which != 2, which != 1);
            let gp0 = representable::<B>(&r.vec(n, -1.0, 1.0));
            let gt0 = representable::<B>(&r.vec(n, -1.0, 1.0));
            let (mut gpb, mut gtb) = (up(be, &gp0), up(be, &gt0));
            be.sobel_loss_backward(
                &pb,
                &tb,
                &s,
                form,
                scale,
                want_p.then_some(&mut gpb),
                want_t.then_some(&mut gtb),
            )
            .map_err(e)?;
            let (mut gp, mut gt) = (gp0.clone(), gt0.clone());
            or.sobel_loss_backward(
                &p,
                &t,
                &s,
                form,
                scale,
                want_p.then_some(&mut gp),
                want_t.then_some(&mut gt),
            )
            .map_err(e)?;
            const GWHY: &str = "effective gradients c·d·g/|g| (or c·d) err by \
                c·(2·eg + |d|·(1.5·eg/|g| + 4u)); the adjoint gathers 3×3 windows of them \
                (weights ≤ 3), plus the accumulation onto the pre-filled values";
            for (what, got, want, mag) in [
                ("sobel_loss dpred", down(be, &gpb), &gp, &mp),
                ("sobel_loss dtarget", down(be, &gtb), &gt, &mt),
            ] {
                let (err_d, size_d): (Vec<f64>, Vec<f64>) = (0..n)
                    .map(|i| match form {
                        SobelLossForm::Magnitude => (
                            c * (2.0 * eg + diff[i] * (1.5 * eg / mag[i] + 4.0 * u)),
                            c * diff[i],
                        ),
                        SobelLossForm::Components => {
                            (c * (4.0 * eg + 4.0 * u * diff[i]), c * diff[i])
                        }
                    })
                    .unzip();
                let (we, ws) = (window_sum(&err_d, &s), window_sum(&size_d, &s));
                check_close_with(what, &got, want, |i| {
                    Tol::new(3.0 * we[i] + 16.0 * u * ws[i], 2.0 * u, GWHY)
                })?;
            }
            Ok(())
        },
    );
}

fn expect_err<T: std::fmt::Debug>(what: &str, r: Result<T, E>, shape: bool) {
    match (r, shape) {
        (Err(E::ShapeMismatch { .. }), true) | (Err(E::InvalidArgument { .. }), false) => {}
        (other, _) => panic!(
            "sobel bad input: {what}: expected {} error, got {other:?}",
            if shape {
                "a ShapeMismatch"
            } else {
                "an InvalidArgument"
            }
        ),
    }
}

/// Wrong lengths, an empty loss and a non-finite scale are typed errors.
fn bad_input<B: Backend>(be: &B) {
    let buf = |n: usize| be.alloc(n).expect("alloc");
    let s = ImageShape {
        batch: 2,
        channels: 3,
        height: 4,
        width: 5,
    };
    let n = s.len();
    let x = buf(n);
    let (mut gx, mut gy, mut m) = (buf(n), buf(n), buf(n));
    expect_err(
        "short x",
        be.sobel_forward(&buf(n - 1), &s, &mut gx, &mut gy, &mut m),
        true,
    );
    expect_err(
        "short gy",
        be.sobel_forward(&x, &s, &mut gx, &mut buf(n + 1), &mut m),
        true,
    );
    expect_err(
        "short dmag",
        be.sobel_backward(&x, &s, None, None, Some(&buf(3)), &mut gx),
        true,
    );
    expect_err(
        "short dx",
        be.sobel_backward(&x, &s, Some(&x), None, None, &mut buf(1)),
        true,
    );
    let f = SobelLossForm::Magnitude;
    expect_err(
        "short target",
        be.sobel_loss_forward(&x, &buf(n - 1), &s, f, &mut buf(1)),
        true,
    );
    expect_err(
        "loss of 2",
        be.sobel_loss_forward(&x, &x, &s, f, &mut buf(2)),
        true,
    );
    let empty = ImageShape { height: 0, ..s };
    expect_err(
        "empty loss",
        be.sobel_loss_forward(&buf(0), &buf(0), &empty, f, &mut buf(1)),
        false,
    );
    expect_err(
        "NaN scale",
        be.sobel_loss_backward(&x, &x, &s, f, f64::NAN, Some(&mut gx), None),
        false,
    );
    expect_err(
        "short dtarget",
        be.sobel_loss_backward(&x, &x, &s, f, 1.0, None, Some(&mut buf(2))),
        true,
    );
    // an empty image is fine for the plain kernels
    be.sobel_forward(&buf(0), &empty, &mut buf(0), &mut buf(0), &mut buf(0))
        .expect("empty Sobel");
}
