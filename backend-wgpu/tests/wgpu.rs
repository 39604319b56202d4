//! Checks specific to the wgpu backend: what the adapter is, the accuracy of the WGSL
//! erf, dispatches split past the per-dimension workgroup limit, BLAS's beta = 0,
//! empty buffers, typed errors, the buffer pool, tensors larger than one storage
//! binding, and device timestamps. Each test prints `skipped: …` without an adapter.

use backend_wgpu::WgpuBackend;
use brain_core::{Activation, Backend, BrainError, Gemm, RowReduce};

fn with(test: &str, body: impl FnOnce(&WgpuBackend)) {
    conformance::with_backend(WgpuBackend::new().map_err(|e| e.to_string()), test, body);
}

#[test]
fn adapter_is_described() {
    with("adapter_is_described", |be| {
        let l = be.limits();
        println!(
            "{}\n  max_storage_buffer_binding_size {}, max_buffer_size {}, \
             max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {}, \
             max_compute_workgroup_storage_size {}, min_storage_buffer_offset_alignment {}\n  \
             adapter features: {:?}\n  SHADER_F16: {}",
            be.name(),
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size,
            l.min_storage_buffer_offset_alignment,
            be.adapter_features(),
            be.adapter_features().contains(wgpu::Features::SHADER_F16)
        );
        assert!(be.name().starts_with("wgpu ("));
        assert_eq!(be.adapter_info().backend, wgpu::Backend::Vulkan);
    });
}

/// The erf behind GELU, over a dense grid of [−6, 6] plus every float near 0 and near
/// the branch points, against libm's f64 erf: at most 2 ulp of the result (the fit
/// alone gives 1.4 ulp in a float32 simulation; the adapter's exp adds a little).
#[test]
fn erf_is_float32_accurate() {
    with("erf_is_float32_accurate", |be| {
        let mut x: Vec<f32> = (0..=240_000).map(|i| -6.0 + i as f32 * 5e-5).collect();
        for c in [1.0f32, 4.0] {
            let mut v = c;
            for _ in 0..2000 {
                x.extend([v, -v]);
                v = f32::from_bits(v.to_bits() - 1);
            }
            let mut v = c;
            for _ in 0..2000 {
                x.extend([v, -v]);
                v = f32::from_bits(v.to_bits() + 1);
            }
        }
        x.extend((0..200).map(|i| 1e-30f32 * 1.5f32.powi(i)));
        x.extend([0.0, -0.0, 10.0, -10.0, f32::INFINITY, f32::NEG_INFINITY]);
        let xb = be.upload(&x).unwrap();
        let mut yb = be.alloc(x.len()).unwrap();
        be.erf_probe(&xb, &mut yb).unwrap();
        let y = be.download_vec(&yb).unwrap();
        let (mut worst, mut at, mut worst_abs) = (0.0f64, 0.0f32, 0.0f64);
        for (&xi, &yi) in x.iter().zip(&y) {
            let want = libm::erf(xi as f64);
            let ulp = ((want.abs() as f32).to_bits() + 1).min(0x7f7f_ffff);
            let ulp = (f32::from_bits(ulp) as f64 - want.abs() as f32 as f64)
                .max(f64::from(f32::MIN_POSITIVE));
            let err = (yi as f64 - want).abs();
            worst_abs = worst_abs.max(err);
            if err / ulp > worst {
                worst = err / ulp;
                at = xi;
            }
        }
        println!(
            "erf on the adapter: max error {worst:.2} ulp at x = {at:e}, {worst_abs:.2e} absolute"
        );
        assert!(worst <= 2.0, "erf error {worst} ulp at x = {at}");
    });
}

/// More workgroups than one dimension allows (65 535 on most adapters): an
/// element-wise kernel over 2^24 + 3 elements.
#[test]
fn dispatch_splits_past_the_dimension_limit() {
    with("dispatch_splits_past_the_dimension_limit", |be| {
        let max = be.limits().max_compute_workgroups_per_dimension as usize;
        let n = (max * 256 + 3).max((1 << 24) + 3);
        let a: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
        let ab = be.upload(&a).unwrap();
        let mut ob = be.alloc(n).unwrap();
        be.fill(&mut ob, 0.5).unwrap();
        be.axpy(2.0, &ab, &mut ob).unwrap();
        let o = be.download_vec(&ob).unwrap();
        assert!(o.iter().zip(&a).all(|(o, a)| *o == 0.5 + 2.0 * a));
    });
}

/// The same split in every kernel that decodes a linear workgroup index, with the
/// per-dimension limit lowered to 5 so that small problems spread over x, y and z
/// (the GEMM would need 65 536 tiles, minutes on lavapipe, to hit the real limit).
#[test]
fn every_kernel_undoes_the_split() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: every_kernel_undoes_the_split: {e}"),
    };
    be.limit_workgroups_per_dimension(5);
    let or = brain_core::reference::ReferenceBackend::<f64>::new();
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap()
    };
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let vals =
        |n: usize, m: usize| -> Vec<f64> { (0..n).map(|i| ((i * 7) % m) as f64 - 3.0).collect() };

    // 20 matrices of 70×65: 2·2·20 = 80 tiles, dispatched as 5×5×4 with the last
    // layer partly idle. Small integers: every sum is exact.
    let g = Gemm::new(70, 65, 9)
        .trans(true, false)
        .scale(1.0, -1.0)
        .batched_dense(20);
    let (a, b, c) = (
        vals(70 * 9 * 20, 5),
        vals(9 * 65 * 20, 7),
        vals(70 * 65 * 20, 3),
    );
    let mut cb = up(&c);
    be.gemm(&g, &up(&a), &up(&b), &mut cb).unwrap();
    let mut want = c.clone();
    or.gemm(&g, &a, &b, &mut want).unwrap();
    assert_eq!(down(&cb), want, "gemm");

    // 40 channels, one workgroup each (5×5×2); 10 000 elements, 40 workgroups.
    let dy = vals(5 * 40 * 6, 9);
    let mut db = up(&[1.0; 40]);
    be.bias_backward(&up(&dy), &mut db, 5, 40, 6).unwrap();
    let mut want = vec![1.0; 40];
    or.bias_backward(&dy, &mut want, 5, 40, 6).unwrap();
    assert_eq!(down(&db), want, "bias_backward");

    let x = vals(10_000, 11);
    let mut xb = up(&x);
    be.scale(&mut xb, 2.0).unwrap();
    assert_eq!(
        down(&xb),
        x.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
        "scale"
    );

    // More workgroups than 5³ = 125 allow: a typed error, not a wrong answer.
    let mut big = be.alloc(126 * 256).unwrap();
    assert!(matches!(
        be.fill(&mut big, 1.0),
        Err(BrainError::Unsupported(_))
    ));
}

/// beta = 0 overwrites C without reading it, as BLAS does: NaN in C must not leak.
#[test]
fn gemm_beta_zero_overwrites_nan() {
    with("gemm_beta_zero_overwrites_nan", |be| {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let g = Gemm::new(3, 5, 4).trans(ta, tb).scale(2.0, 0.0);
            let a = be.upload(&[1.0; 12]).unwrap();
            let b = be.upload(&[0.5; 20]).unwrap();
            let mut c = be.upload(&[f32::NAN; 15]).unwrap();
            be.gemm(&g, &a, &b, &mut c).unwrap();
            assert_eq!(be.download_vec(&c).unwrap(), vec![4.0; 15]);
        }
    });
}

/// Zero-length buffers work everywhere (wgpu itself cannot map or bind zero bytes).
#[test]
fn empty_buffers() {
    with("empty_buffers", |be| {
        let a = be.upload(&[]).unwrap();
        let mut b = be.alloc(0).unwrap();
        assert_eq!(be.len(&a), 0);
        be.write(&mut b, &[]).unwrap();
        be.copy(&a, &mut b).unwrap();
        be.fill(&mut b, 1.0).unwrap();
        be.scale(&mut b, 2.0).unwrap();
        be.activation_forward(Activation::GeluErf, &a, &mut b)
            .unwrap();
        be.gemm(&Gemm::new(0, 3, 2), &a, &a, &mut b).unwrap();
        assert!(be.download_vec(&b).unwrap().is_empty());
        be.sync().unwrap();
    });
}

/// write lands after the work queued before it and before the work queued after it.
#[test]
fn write_is_ordered() {
    with("write_is_ordered", |be| {
        let mut x = be.upload(&[1.0, 2.0, 3.0]).unwrap();
        let mut y = be.alloc(3).unwrap();
        be.copy(&x, &mut y).unwrap();
        be.write(&mut x, &[10.0, 20.0, 30.0]).unwrap();
        be.axpy(1.0, &x, &mut y).unwrap();
        assert_eq!(be.download_vec(&y).unwrap(), vec![11.0, 22.0, 33.0]);
        assert_eq!(be.download_vec(&x).unwrap(), vec![10.0, 20.0, 30.0]);
    });
}

/// Batched recording keeps the call order: dispatches (more than one batch of them),
/// writes, copies and the zero fill of reused pool buffers, each checked against
/// the same sequence on the host.
#[test]
fn batched_work_stays_ordered() {
    with("batched_work_stays_ordered", |be| {
        let n = 64;
        let ones = be.upload(&vec![1.0; n]).unwrap();
        let mut x = be.upload(&vec![1.0; n]).unwrap();
        let mut want = vec![1.0f32; n];
        let mut copies = Vec::new();
        for i in 0..700 {
            be.scale(&mut x, 0.5).unwrap();
            be.axpy(1.0, &ones, &mut x).unwrap();
            want.iter_mut().for_each(|v| *v = *v * 0.5 + 1.0);
            if i % 37 == 0 {
                let w: Vec<f32> = (0..n).map(|j| (i + j) as f32).collect();
                be.write(&mut x, &w).unwrap();
                want.copy_from_slice(&w);
            }
            if i % 53 == 0 {
                // A pooled temporary: zero-filled after its previous owner's last use.
                let mut t = be.alloc(n).unwrap();
                be.axpy(2.0, &x, &mut t).unwrap();
                let mut c = be.alloc(n).unwrap();
                be.copy(&t, &mut c).unwrap();
                copies.push((c, want.iter().map(|v| 2.0 * v).collect::<Vec<f32>>()));
            }
        }
        assert_eq!(be.download_vec(&x).unwrap(), want);
        for (c, w) in &copies {
            assert_eq!(&be.download_vec(c).unwrap(), w);
        }
    });
}

/// Bad lengths are typed errors, and a huge alloc (or one past the adapter's
/// max_buffer_size) is an out-of-memory error: none of them panics.
#[test]
fn errors_are_typed() {
    with("errors_are_typed", |be| {
        let x = be.upload(&[1.0; 8]).unwrap();
        let mut y = be.alloc(5).unwrap();
        let w = be.upload(&[1.0; 12]).unwrap();
        assert!(matches!(
            be.linear_forward(&x, &w, None, &mut y, 2, 4, 3),
            Err(BrainError::ShapeMismatch { arg: "y", .. })
        ));
        assert!(matches!(
            be.add(&x, &x, &mut y),
            Err(BrainError::ShapeMismatch { .. })
        ));
        let mut d = be.alloc(5).unwrap();
        assert!(matches!(
            be.dropout_forward(
                &brain_core::Dropout {
                    p: 0.5,
                    seed: 1,
                    offset: 0,
                },
                &x,
                &mut d,
            ),
            Err(BrainError::ShapeMismatch { arg: "y", .. })
        ));
        assert!(matches!(
            be.alloc(usize::MAX / 2),
            Err(BrainError::OutOfMemory { .. })
        ));
        // One element past the adapter's max_buffer_size: refused before the driver.
        let past = be.limits().max_buffer_size / 4 + 1;
        assert!(matches!(
            be.alloc(past as usize),
            Err(BrainError::OutOfMemory { .. })
        ));
        be.sync().unwrap();
    });
}

/// f64 data uploaded as f32 and the rounded values back, for comparing with the oracle.
fn rounded(be: &WgpuBackend, v: &[f64]) -> (backend_wgpu::WgpuBuffer, Vec<f64>) {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    (
        be.upload(&f).unwrap(),
        f.iter().map(|&x| f64::from(x)).collect(),
    )
}

fn download(be: &WgpuBackend, b: &backend_wgpu::WgpuBuffer) -> Vec<f64> {
    be.download_vec(b)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Largest |got − want| relative to max(1, max |want|).
fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0.0, f64::max)
}

/// The Sobel loss over 1.1 M pixels goes through three reduction levels (pixels →
/// 1 075 workgroup partials → 2 → the loss); its error stays at a few u, far below
/// the suite's u·√N allowance, and nothing is downloaded on the way.
#[test]
fn sobel_loss_reduces_over_several_levels() {
    use brain_core::{ImageShape, SobelLossForm};
    with("sobel_loss_reduces_over_several_levels", |be| {
        let or = brain_core::reference::ReferenceBackend::<f64>::new();
        let s = ImageShape {
            batch: 1,
            channels: 1,
            height: 1100,
            width: 1000,
        };
        let n = s.len();
        let wave = |k: f64| -> Vec<f64> { (0..n).map(|i| (i as f64 * k).sin()).collect() };
        let (pb, p) = rounded(be, &wave(0.37));
        let (tb, t) = rounded(be, &wave(0.11));
        for form in [SobelLossForm::Magnitude, SobelLossForm::Components] {
            let mut lb = be.alloc(1).unwrap();
            be.sobel_loss_forward(&pb, &tb, &s, form, &mut lb).unwrap();
            let mut want = vec![0.0];
            or.sobel_loss_forward(&p, &t, &s, form, &mut want).unwrap();
            let got = download(be, &lb)[0];
            let rel = (got - want[0]).abs() / want[0];
            // one rounding per Sobel tap and per level of the sums: ~20 u
            assert!(
                rel < 2e-6,
                "{form:?}: {got} vs {} (relative {rel:e})",
                want[0]
            );
        }
    });
}

/// The Sobel, upsampling and diffusion kernels rebuild their linear workgroup index
/// when a dispatch is split over x, y and z.
#[test]
fn image_and_diffusion_kernels_undo_the_split() {
    use brain_core::{
        ImageShape, PredictionType, SchedulerStep, SobelLossForm, UpsampleMode, UpsampleShape,
    };
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: image_and_diffusion_kernels_undo_the_split: {e}"),
    };
    // 37 800 pixels: 148 per-pixel workgroups (6×6×5) and 37 loss partials (6×6×2).
    be.limit_workgroups_per_dimension(6);
    let be = &be;
    let or = brain_core::reference::ReferenceBackend::<f64>::new();
    let vals = |n: usize, k: f64| -> Vec<f64> { (0..n).map(|i| (i as f64 * k).sin()).collect() };
    const TOL: f64 = 1e-5;

    let s = ImageShape {
        batch: 3,
        channels: 2,
        height: 70,
        width: 90,
    };
    let n = s.len();
    let (xb, x) = rounded(be, &vals(n, 0.7));
    let (tb, t) = rounded(be, &vals(n, 0.3));
    let (gb, g) = rounded(be, &vals(n, 0.9));
    let mut bufs = [0; 3].map(|_| be.alloc(n).unwrap());
    let mut want = [0; 3].map(|_| vec![0.0; n]);
    let [b0, b1, b2] = &mut bufs;
    be.sobel_forward(&xb, &s, b0, b1, b2).unwrap();
    let [w0, w1, w2] = &mut want;
    or.sobel_forward(&x, &s, w0, w1, w2).unwrap();
    for (b, w) in bufs.iter().zip(&want) {
        assert!(rel_err(&download(be, b), w) < TOL, "sobel_forward");
    }
    let mut db = be.alloc(n).unwrap();
    be.sobel_backward(&xb, &s, Some(&gb), None, Some(&gb), &mut db)
        .unwrap();
    let mut dw = vec![0.0; n];
    or.sobel_backward(&x, &s, Some(&g), None, Some(&g), &mut dw)
        .unwrap();
    assert!(rel_err(&download(be, &db), &dw) < TOL, "sobel_backward");
    for form in [SobelLossForm::Magnitude, SobelLossForm::Components] {
        let mut lb = be.alloc(1).unwrap();
        be.sobel_loss_forward(&xb, &tb, &s, form, &mut lb).unwrap();
        let mut lw = vec![0.0];
        or.sobel_loss_forward(&x, &t, &s, form, &mut lw).unwrap();
        assert!(rel_err(&download(be, &lb), &lw) < TOL, "sobel loss");
        let (mut dp, mut dt) = (be.alloc(n).unwrap(), be.alloc(n).unwrap());
        be.sobel_loss_backward(&xb, &tb, &s, form, 3.0, Some(&mut dp), Some(&mut dt))
            .unwrap();
        let (mut wp, mut wt) = (vec![0.0; n], vec![0.0; n]);
        or.sobel_loss_backward(&x, &t, &s, form, 3.0, Some(&mut wp), Some(&mut wt))
            .unwrap();
        assert!(rel_err(&download(be, &dp), &wp) < TOL, "sobel loss dpred");
        assert!(rel_err(&download(be, &dt), &wt) < TOL, "sobel loss dtarget");
    }

    // 3·2·30·35 inputs, 2× up: 25 200 outputs (99 workgroups), 6 300 inputs (25).
    let u = UpsampleShape {
        batch: 3,
        channels: 2,
        height: 30,
        width: 35,
        factor: 2,
    };
    let (ub, uv) = rounded(be, &vals(u.input_len(), 0.45));
    let (dyb, dy) = rounded(be, &vals(u.output_len(), 0.8));
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        let mut yb = be.alloc(u.output_len()).unwrap();
        be.upsample_forward(mode, &u, &ub, &mut yb).unwrap();
        let mut y = vec![0.0; u.output_len()];
        or.upsample_forward(mode, &u, &uv, &mut y).unwrap();
        assert!(rel_err(&download(be, &yb), &y) < TOL, "upsample {mode:?}");
        let mut dxb = be.alloc(u.input_len()).unwrap();
        be.upsample_backward(mode, &u, &dyb, &mut dxb).unwrap();
        let mut dx = vec![0.0; u.input_len()];
        or.upsample_backward(mode, &u, &dy, &mut dx).unwrap();
        assert!(
            rel_err(&download(be, &dxb), &dx) < TOL,
            "upsample backward {mode:?}"
        );
    }

    let step = SchedulerStep {
        prediction: PredictionType::VPrediction,
        alpha_prod_t: 0.5,
        clip_sample: Some(1.0),
        coef_x0: 0.7,
        coef_eps: 0.4,
        coef_sample: -0.2,
        coef_noise: 0.1,
    };
    let (mut pb, mut x0b) = (be.alloc(n).unwrap(), be.alloc(n).unwrap());
    be.scheduler_step(&step, &xb, &tb, Some(&gb), &mut pb, Some(&mut x0b))
        .unwrap();
    let (mut pw, mut x0w) = (vec![0.0; n], vec![0.0; n]);
    or.scheduler_step(&step, &x, &t, Some(&g), &mut pw, Some(&mut x0w))
        .unwrap();
    assert!(rel_err(&download(be, &pb), &pw) < TOL, "scheduler_step");
    assert!(rel_err(&download(be, &x0b), &x0w) < TOL, "pred_x0");
    let (sa, sb) = ([0.9, 0.5, 0.1], [0.2, 0.6, 0.95]);
    let mut ob = be.alloc(n).unwrap();
    be.add_noise(&xb, &tb, &sa, &sb, &mut ob).unwrap();
    let mut ow = vec![0.0; n];
    or.add_noise(&x, &t, &sa, &sb, &mut ow).unwrap();
    assert!(rel_err(&download(be, &ob), &ow) < TOL, "add_noise");
    be.guidance_combine(&xb, &tb, 7.5, &mut ob).unwrap();
    or.guidance_combine(&x, &t, 7.5, &mut ow).unwrap();
    assert!(rel_err(&download(be, &ob), &ow) < TOL, "guidance_combine");
}

/// The sampling loop end to end on the device (conformance's diffusion_loop runs on
/// the reference backend only): DDIM η = 0 with the exact ε lands on x₀, plainly and
/// from an img2img start (add_noise) with classifier-free guidance.
#[test]
fn ddim_sampling_recovers_x0() {
    use brain_core::diffusion::{
        img2img_timesteps, noisy_start, sample, DdimConfig, DdimScheduler, Denoiser, Model,
        Sampler, ScheduleArithmetic,
    };

    /// ε = (x_t − √ᾱ_t·x₀)/√(1 − ᾱ_t) + bias, computed on the host.
    struct ExactEps {
        x0: Vec<f64>,
        alphas_cumprod: Vec<f64>,
        bias: f64,
    }
    impl Denoiser<WgpuBackend> for ExactEps {
        fn predict(
            &mut self,
            be: &WgpuBackend,
            latents: &backend_wgpu::WgpuBuffer,
            t: usize,
            out: &mut backend_wgpu::WgpuBuffer,
        ) -> brain_core::Result<()> {
            let a = self.alphas_cumprod[t];
            let e: Vec<f32> = be
                .download_vec(latents)?
                .iter()
                .zip(&self.x0)
                .map(|(&x, x0)| {
                    ((f64::from(x) - a.sqrt() * x0) / (1.0 - a).sqrt() + self.bias) as f32
                })
                .collect();
            be.write(out, &e)
        }
    }

    with("ddim_sampling_recovers_x0", |be| {
        let n = 120;
        let x0: Vec<f64> = (0..n).map(|i| (i as f64 * 0.61).sin()).collect();
        let z: Vec<f64> = (0..n).map(|i| 2.0 * (i as f64 * 1.3).cos()).collect();
        let mut s = DdimScheduler::new(DdimConfig {
            set_alpha_to_one: true,
            ..DdimConfig::versatile_diffusion(ScheduleArithmetic::DiffusersF32)
        })
        .unwrap();
        s.set_timesteps(50).unwrap();
        let exact = |bias: f64| ExactEps {
            x0: x0.clone(),
            alphas_cumprod: s.schedule().alphas_cumprod().to_vec(),
            bias,
        };
        let ddim = Sampler::Ddim {
            scheduler: &s,
            eta: 0.0,
        };
        let max_err = |b: &backend_wgpu::WgpuBuffer| rel_err(&download(be, b), &x0);

        let (mut latents, _) = rounded(be, &z);
        let mut den = exact(0.0);
        let plain = Model::Plain(&mut den);
        sample(be, ddim, s.timesteps(), &mut latents, plain, None, None).unwrap();
        // 50 steps of a few f32 roundings on O(1) values (measured 6e-8)
        assert!(max_err(&latents) < 1e-4, "plain: {:e}", max_err(&latents));

        let start = img2img_timesteps(s.timesteps(), 50, 0.75).unwrap();
        let t = start.start_timestep().unwrap();
        let (x0b, _) = rounded(be, &x0);
        let (eb, _) = rounded(be, &z);
        let mut latents = be.alloc(n).unwrap();
        noisy_start(be, s.schedule(), &x0b, &eb, t, &mut latents).unwrap();
        let g = 7.5;
        let (mut uncond, mut cond) = (exact(0.3), exact(0.3 - 0.3 / g));
        let guided = Model::Guided {
            uncond: &mut uncond,
            cond: &mut cond,
            scale: g,
        };
        sample(be, ddim, &start.timesteps, &mut latents, guided, None, None).unwrap();
        assert!(max_err(&latents) < 1e-4, "guided: {:e}", max_err(&latents));
    });
}

/// f32 values of a simple deterministic pattern in [lo, lo + span).
fn pattern(n: usize, seed: u64, lo: f64, span: f64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (lo + span * (s >> 11) as f64 / (1u64 << 53) as f64) as f32
        })
        .collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The loss reductions on more partial sums than one workgroup finishes: an MSE over
/// 4096² + 5 elements takes the partial pass, one reduce pass and the final one,
/// and stays within a tree's error (not N·u).
#[test]
fn loss_reduction_spans_several_passes() {
    with("loss_reduction_spans_several_passes", |be| {
        let n = 4096 * 4096 + 5;
        let a = pattern(n, 1, -2.0, 4.0);
        let b = pattern(n, 2, -2.0, 4.0);
        let mut want = 0.0f64;
        for (x, y) in a.iter().zip(&b) {
            let d = f64::from(*x) - f64::from(*y);
            want += d * d;
        }
        want /= n as f64;
        let (ab, bb) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
        let mut loss = be.alloc(1).unwrap();
        be.mse_forward(&ab, &bb, &mut loss).unwrap();
        let got = f64::from(be.download_vec(&loss).unwrap()[0]);
        let rel = (got - want).abs() / want;
        println!("mse over {n} elements: relative error {rel:.2e}");
        assert!(
            rel < 64.0 * f64::from(f32::EPSILON) / 2.0,
            "{got} vs {want}"
        );
    });
}

/// The loss kernels that decode a linear workgroup index give the same bits with the
/// per-dimension limit lowered to 5 (dispatches spread over x, y and z).
#[test]
fn loss_kernels_undo_the_split() {
    let (plain, mut split) = match (WgpuBackend::new(), WgpuBackend::new()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return println!("skipped: loss_kernels_undo_the_split: {e}"),
    };
    split.limit_workgroups_per_dimension(5);
    let run = |be: &WgpuBackend| -> Vec<f32> {
        let mut out = Vec::new();
        // MSE: 31 partial sums.
        let n = 31 * 4096 - 7;
        let (a, b) = (pattern(n, 3, -1.0, 2.0), pattern(n, 4, -1.0, 2.0));
        let (ab, bb) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
        let mut l = be.alloc(1).unwrap();
        be.mse_forward(&ab, &bb, &mut l).unwrap();
        out.extend(be.download_vec(&l).unwrap());
        // Sims: 6·7 = 42 token rows.
        let (batch, tokens, dim) = (6, 7, 33);
        let n = batch * tokens * dim;
        let (a, b) = (pattern(n, 5, -1.0, 2.0), pattern(n, 6, -1.0, 2.0));
        let (ab, bb) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
        be.sims_forward(&ab, &bb, batch, tokens, dim, &mut l)
            .unwrap();
        out.extend(be.download_vec(&l).unwrap());
        let (mut da, mut db) = (be.alloc(n).unwrap(), be.alloc(n).unwrap());
        be.sims_backward(
            &ab,
            &bb,
            batch,
            tokens,
            dim,
            1.0,
            Some(&mut da),
            Some(&mut db),
        )
        .unwrap();
        out.extend(be.download_vec(&da).unwrap());
        out.extend(be.download_vec(&db).unwrap());
        // CKA: 37 rows, both estimators.
        let m = 37;
        let (k, g) = (pattern(m * m, 7, -1.0, 2.0), pattern(m * m, 8, -1.0, 2.0));
        let (kb, gb) = (be.upload(&k).unwrap(), be.upload(&g).unwrap());
        for est in [
            brain_core::HsicEstimator::Biased,
            brain_core::HsicEstimator::Unbiased,
        ] {
            let mut o = be.alloc(4).unwrap();
            be.cka_grams_forward(&kb, &gb, m, est, &mut o).unwrap();
            out.extend(be.download_vec(&o).unwrap());
            let (mut dk, mut dl) = (be.alloc(m * m).unwrap(), be.alloc(m * m).unwrap());
            be.cka_grams_backward(&kb, &gb, m, est, 1.0, Some(&mut dk), Some(&mut dl))
                .unwrap();
            out.extend(be.download_vec(&dk).unwrap());
            out.extend(be.download_vec(&dl).unwrap());
        }
        out
    };
    let (want, got) = (run(&plain), run(&split));
    assert_eq!(want.len(), got.len());
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.to_bits(), g.to_bits(), "element {i}: {g} split vs {w}");
    }
}

/// CKA on Grams that are not symmetric (the contract treats K and L as general
/// matrices): the unbiased estimator's asymmetry correction and both gradients
/// against the f64 reference; and Grams of features with a large mean (20 ± 0.5),
/// where HSIC is a small difference of large uncentred sums: summing centred
/// entries keeps the forward within a few u of its value (the uncentred closed form
/// in f32 gives 4.2 for an HSIC of 0.32 on such data), and the gradient within a few
/// u of the uncentred entries' scale, the rounding of the f32 Grams themselves.
#[test]
fn cka_general_and_offset_grams() {
    with("cka_general_and_offset_grams", |be| {
        let or = brain_core::reference::ReferenceBackend::<f64>::new();
        let u = f64::from(f32::EPSILON) / 2.0;
        let gram = |x: &[f32], n: usize, p: usize| -> Vec<f32> {
            let mut g = vec![0.0f32; n * n];
            for i in 0..n {
                for j in 0..n {
                    let s: f64 = (0..p)
                        .map(|c| f64::from(x[i * p + c]) * f64::from(x[j * p + c]))
                        .sum();
                    g[i * n + j] = s as f32;
                }
            }
            g
        };
        let (n, p) = (23, 16);
        let fa = pattern(n * p, 11, -1.0, 2.0);
        let fb: Vec<f32> = fa
            .iter()
            .zip(pattern(n * p, 12, -1.0, 2.0))
            .map(|(x, y)| x + y)
            .collect();
        // Grams plus a non-symmetric perturbation.
        let skew = |g: Vec<f32>, seed: u64| -> Vec<f32> {
            g.iter()
                .zip(pattern(n * n, seed, -0.5, 1.0))
                .map(|(g, e)| g + e)
                .collect()
        };
        let off = |x: &[f32]| -> Vec<f32> { x.iter().map(|v| v + 20.0).collect() };
        let cases = [
            (
                "general",
                skew(gram(&fa, n, p), 9),
                skew(gram(&fb, n, p), 10),
            ),
            ("offset", gram(&off(&fa), n, p), gram(&off(&fb), n, p)),
        ];
        for (name, k, l) in cases {
            let (kb, lb) = (be.upload(&k).unwrap(), be.upload(&l).unwrap());
            let (k, l) = (to_f64(&k), to_f64(&l));
            let max_abs = |x: &[f64]| x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let (km, lm) = (max_abs(&k), max_abs(&l));
            for est in [
                brain_core::HsicEstimator::Biased,
                brain_core::HsicEstimator::Unbiased,
            ] {
                let mut ob = be.alloc(4).unwrap();
                be.cka_grams_forward(&kb, &lb, n, est, &mut ob).unwrap();
                let mut want = vec![0.0; 4];
                or.cka_grams_forward(&k, &l, n, est, &mut want).unwrap();
                let scale = 0.75;
                let (mut dkb, mut dlb) = (be.alloc(n * n).unwrap(), be.alloc(n * n).unwrap());
                be.cka_grams_backward(&kb, &lb, n, est, scale, Some(&mut dkb), Some(&mut dlb))
                    .unwrap();
                let (mut dk, mut dl) = (vec![0.0; n * n], vec![0.0; n * n]);
                or.cka_grams_backward(&k, &l, n, est, scale, Some(&mut dk), Some(&mut dl))
                    .unwrap();
                // Gradient scale: |scale|/norm·(α·max|L| + 2|β|·max|K|) (dk; dl swaps).
                let nf = n as f64;
                let norm = match est {
                    brain_core::HsicEstimator::Biased => (nf - 1.0) * (nf - 1.0),
                    brain_core::HsicEstimator::Unbiased => nf * (nf - 3.0),
                };
                let alpha = 1.0 / (want[2] * want[3]).sqrt();
                let cka = want[1] * alpha;
                let (beta, gamma) = (0.5 * cka / want[2], 0.5 * cka / want[3]);
                let f = scale / norm;
                let gk = f * (alpha * lm + 2.0 * beta.abs() * km);
                let gl = f * (alpha * km + 2.0 * gamma.abs() * lm);
                // Each output within 64·u of max(1, its magnitude).
                let out_tol: Vec<f64> = want.iter().map(|w| 64.0 * u * w.abs().max(1.0)).collect();
                for (what, got, want, tol) in [
                    ("out", to_f64(&be.download_vec(&ob).unwrap()), want, out_tol),
                    (
                        "dk",
                        to_f64(&be.download_vec(&dkb).unwrap()),
                        dk,
                        vec![64.0 * u * gk; n * n],
                    ),
                    (
                        "dl",
                        to_f64(&be.download_vec(&dlb).unwrap()),
                        dl,
                        vec![64.0 * u * gl; n * n],
                    ),
                ] {
                    assert!(want.iter().all(|v| v.is_finite()), "{name} {est:?} {what}");
                    // The largest error as a fraction of its tolerance.
                    let worst = got
                        .iter()
                        .zip(&want)
                        .zip(&tol)
                        .fold(0.0f64, |m, ((g, w), t)| m.max((g - w).abs() / t));
                    println!(
                        "cka {name} {est:?} {what}: worst error {worst:.3} of its tolerance, \
                         largest value {:.2e}",
                        max_abs(&want)
                    );
                    assert!(
                        worst <= 1.0,
                        "cka {name} {est:?} {what}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    });
}

/// Philox kernels (one invocation per block of four words) and the AdamW norm
/// reduction (one workgroup per 4096-element chunk, partials at per-tensor offsets)
/// under a split dispatch whose last layer is partly idle: the idle workgroups must
/// neither write nor corrupt the next tensor's partial sums.
#[test]
fn random_and_adamw_undo_the_split() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: random_and_adamw_undo_the_split: {e}"),
    };
    be.limit_workgroups_per_dimension(5);
    let or = brain_core::reference::ReferenceBackend::<f64>::new();
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    // 7·1024 − 5 blocks of four words: 7 workgroups, dispatched as 5×2.
    let words = 7 * 1024 * 4 - 17;
    let (seed, offset) = (0x0123_4567_89ab_cdef, u64::MAX - 3);
    let mut b = be.alloc(2 * words).unwrap();
    be.philox_bits(&mut b, seed, offset).unwrap();
    let mut want = vec![0.0; 2 * words];
    or.philox_bits(&mut want, seed, offset).unwrap();
    assert_eq!(down(&b), want, "philox_bits");
    let mut b = be.alloc(words).unwrap();
    be.fill_uniform(&mut b, seed, offset).unwrap();
    let mut want = vec![0.0; words];
    or.fill_uniform(&mut want, seed, offset).unwrap();
    assert_eq!(down(&b), want, "fill_uniform");
    let x: Vec<f32> = (0..words).map(|i| (i % 13) as f32 + 1.0).collect();
    let d = brain_core::Dropout {
        p: 0.25,
        seed,
        offset,
    };
    be.dropout_forward(&d, &be.upload(&x).unwrap(), &mut b)
        .unwrap();
    let mut want = vec![0.0; words];
    let xo: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    or.dropout_forward(&d, &xo, &mut want).unwrap();
    let got = down(&b);
    assert!(
        got.iter()
            .zip(&want)
            .all(|(g, w)| (g - w).abs() <= 1e-6 * w),
        "dropout"
    );

    // Tensor a: 8 chunks (5×2 workgroups), tensor b: 3 chunks right after it.
    let sizes = [7 * 4096 + 5, 3 * 4096];
    let grads: Vec<Vec<f32>> = sizes
        .iter()
        .enumerate()
        .map(|(t, &n)| (0..n).map(|i| ((i * 7 + t) % 11) as f32 - 5.0).collect())
        .collect();
    let want = grads
        .iter()
        .flatten()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    let mut bufs: Vec<_> = sizes
        .iter()
        .zip(&grads)
        .map(|(&n, g)| {
            (
                be.alloc(n).unwrap(),
                be.upload(g).unwrap(),
                be.alloc(n).unwrap(),
                be.alloc(n).unwrap(),
            )
        })
        .collect();
    let mut ts: Vec<_> = bufs
        .iter_mut()
        .map(|(p, g, m, v)| brain_core::AdamWTensor {
            param: p,
            grad: g,
            exp_avg: m,
            exp_avg_sq: v,
        })
        .collect();
    let mut norm = be.alloc(1).unwrap();
    be.adamw_step(&brain_core::AdamW::default(), &mut ts, Some(&mut norm))
        .unwrap();
    let got = f64::from(be.download_vec(&norm).unwrap()[0]);
    assert!(
        (got - want).abs() <= 1e-6 * want,
        "grad norm {got} vs {want}"
    );
}

/// More than 4096 partial sums (one per 4096-element chunk, at least one per tensor)
/// take a second reduction level before the finishing workgroup; the clip coefficient
/// it computes reaches every tensor's update.
#[test]
fn adamw_norm_over_many_tensors() {
    with("adamw_norm_over_many_tensors", |be| {
        let or = brain_core::reference::ReferenceBackend::<f64>::new();
        let sizes: Vec<usize> = (0..4200).map(|t| 1 + t % 5).chain([10_000]).collect();
        let grads: Vec<Vec<f64>> = sizes
            .iter()
            .enumerate()
            .map(|(t, &n)| {
                (0..n)
                    .map(|i| f64::from(((i * 13 + t * 7) % 17) as f32 / 16.0 - 0.5))
                    .collect()
            })
            .collect();
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let cfg = brain_core::AdamW {
            max_grad_norm: Some(1.0),
            ..brain_core::AdamW::default()
        };
        let mut mine: Vec<_> = sizes
            .iter()
            .zip(&grads)
            .map(|(&n, g)| {
                (
                    be.upload(&vec![0.5; n]).unwrap(),
                    be.upload(&f(g)).unwrap(),
                    be.alloc(n).unwrap(),
                    be.alloc(n).unwrap(),
                )
            })
            .collect();
        let mut ts: Vec<_> = mine
            .iter_mut()
            .map(|(p, g, m, v)| brain_core::AdamWTensor {
                param: p,
                grad: g,
                exp_avg: m,
                exp_avg_sq: v,
            })
            .collect();
        let mut norm = be.alloc(1).unwrap();
        be.adamw_step(&cfg, &mut ts, Some(&mut norm)).unwrap();
        let mut oracle: Vec<_> = sizes
            .iter()
            .zip(&grads)
            .map(|(&n, g)| (vec![0.5; n], g.clone(), vec![0.0; n], vec![0.0; n]))
            .collect();
        let mut ts: Vec<_> = oracle
            .iter_mut()
            .map(|(p, g, m, v)| brain_core::AdamWTensor {
                param: p,
                grad: &*g,
                exp_avg: m,
                exp_avg_sq: v,
            })
            .collect();
        let mut want_norm = vec![0.0];
        or.adamw_step(&cfg, &mut ts, Some(&mut want_norm)).unwrap();
        let got = f64::from(be.download_vec(&norm).unwrap()[0]);
        assert!(
            (got - want_norm[0]).abs() <= 1e-6 * want_norm[0],
            "grad norm {got} vs {}",
            want_norm[0]
        );
        // exp_avg = (1 − β1)·clip·g: the clip coefficient reached the tensors (a sample:
        // each download waits for the device).
        let sample = mine.iter().zip(&oracle).enumerate().step_by(97);
        for (k, ((_, _, m, _), (_, _, mo, _))) in sample.chain([(
            sizes.len() - 1,
            (&mine[sizes.len() - 1], &oracle[sizes.len() - 1]),
        )]) {
            let got = be.download_vec(m).unwrap();
            for (g, w) in got.iter().zip(mo) {
                assert!(
                    (f64::from(*g) - w).abs() <= 1e-6 * w.abs() + 1e-12,
                    "tensor {k}: exp_avg {g} vs {w}"
                );
            }
        }
    });
}

/// Empty buffers and an empty tensor list: nothing to draw, a norm of 0.
#[test]
fn random_and_adamw_on_empty_buffers() {
    with("random_and_adamw_on_empty_buffers", |be| {
        let mut e = be.alloc(0).unwrap();
        let d = brain_core::Dropout {
            p: 0.5,
            seed: 1,
            offset: 2,
        };
        be.fill_uniform(&mut e, 1, 2).unwrap();
        be.fill_normal(&mut e, 1, 2, 0.0, 1.0).unwrap();
        be.philox_bits(&mut e, 1, 2).unwrap();
        let x = be.alloc(0).unwrap();
        be.dropout_forward(&d, &x, &mut e).unwrap();
        be.dropout_backward(&d, &x, &mut e).unwrap();
        let mut norm = be.upload(&[f32::NAN]).unwrap();
        be.adamw_step(&brain_core::AdamW::default(), &mut [], Some(&mut norm))
            .unwrap();
        assert_eq!(be.download_vec(&norm).unwrap(), vec![0.0]);
        let (mut p, g, mut m, mut v) = (
            be.alloc(0).unwrap(),
            be.alloc(0).unwrap(),
            be.alloc(0).unwrap(),
            be.alloc(0).unwrap(),
        );
        let cfg = brain_core::AdamW {
            max_grad_norm: Some(1.0),
            ..brain_core::AdamW::default()
        };
        let mut ts = [brain_core::AdamWTensor {
            param: &mut p,
            grad: &g,
            exp_avg: &mut m,
            exp_avg_sq: &mut v,
        }];
        be.adamw_step(&cfg, &mut ts, Some(&mut norm)).unwrap();
        assert_eq!(be.download_vec(&norm).unwrap(), vec![0.0]);
        be.sync().unwrap();
    });
}

/// Norms and row reductions where the conformance shapes do not reach: rows longer
/// than a workgroup's chunked share (200 000 values), parameter gradients over enough
/// rows (40 000) for three levels of column sums, GroupNorm with one value per
/// channel (one invocation per channel segment) and with long channels. Constant data
/// is the worst case for a sequential f32 sum (the rounding errors all lean the same
/// way): the blocked orders stay within a few dozen u of the exact sum. Results are
/// also bit-identical from run to run (the summation order is fixed).
#[test]
fn norms_and_reductions_long_and_many_rows() {
    with("norms_and_reductions_long_and_many_rows", |be| {
        let u = f64::from(f32::EPSILON) / 2.0;
        let tenth = f64::from(0.1f32);
        let rel = |got: f32, want: f64| (f64::from(got) - want).abs() / want.abs();

        // reduce_rows: Σ over 200 000 copies of 0.1f32, and the mean.
        let cols = 200_000;
        let x = be.upload(&vec![0.1f32; 2 * cols]).unwrap();
        let mut out = be.alloc(2).unwrap();
        for (op, want) in [
            (RowReduce::Sum, tenth * cols as f64),
            (RowReduce::Mean, tenth),
            (
                RowReduce::SumSquares,
                f64::from(0.1f32 * 0.1f32) * cols as f64,
            ),
        ] {
            be.reduce_rows(op, &x, &mut out, 2, cols).unwrap();
            for got in be.download_vec(&out).unwrap() {
                assert!(rel(got, want) <= 80.0 * u, "{op:?}: {got} vs {want}");
            }
        }

        // LayerNorm over a 200 000-long row offset by 100: the mean to a few u.
        let xs: Vec<f32> = (0..cols).map(|i| 100.0 + (i % 7) as f32 * 0.25).collect();
        let want_mean = xs.iter().map(|&v| f64::from(v)).sum::<f64>() / cols as f64;
        let xb = be.upload(&xs).unwrap();
        let ones = be.upload(&vec![1.0; cols]).unwrap();
        let zeros = be.alloc(cols).unwrap();
        let (mut y, mut m, mut r) = (
            be.alloc(cols).unwrap(),
            be.alloc(1).unwrap(),
            be.alloc(1).unwrap(),
        );
        be.layernorm_forward(&xb, &ones, &zeros, &mut y, &mut m, &mut r, 1, cols, 1e-5)
            .unwrap();
        let got_mean = be.download_vec(&m).unwrap()[0];
        assert!(
            rel(got_mean, want_mean) <= 4.0 * u,
            "mean {got_mean} vs {want_mean}"
        );

        // LayerNorm backward over 40 000 rows of 3: dβ = Σ dy over the rows.
        let (rows, cols) = (40_000, 3);
        let xs: Vec<f32> = (0..rows * cols).map(|i| (i % 5) as f32 - 2.0).collect();
        let xb = be.upload(&xs).unwrap();
        let g = be.upload(&[1.0, 0.5, -1.0]).unwrap();
        let zeros = be.alloc(cols).unwrap();
        let (mut y, mut m, mut r) = (
            be.alloc(rows * cols).unwrap(),
            be.alloc(rows).unwrap(),
            be.alloc(rows).unwrap(),
        );
        be.layernorm_forward(&xb, &g, &zeros, &mut y, &mut m, &mut r, rows, cols, 1e-5)
            .unwrap();
        let dy = be.upload(&vec![0.1f32; rows * cols]).unwrap();
        let run = || {
            let mut dx = be.alloc(rows * cols).unwrap();
            let mut dg = be.alloc(cols).unwrap();
            let mut db = be.upload(&[1.0; 3]).unwrap();
            be.layernorm_backward(&dy, &xb, &g, &m, &r, &mut dx, &mut dg, &mut db, rows, cols)
                .unwrap();
            (
                be.download_vec(&dx).unwrap(),
                be.download_vec(&dg).unwrap(),
                be.download_vec(&db).unwrap(),
            )
        };
        let first = run();
        assert_eq!(first, run(), "layernorm_backward is not deterministic");
        let want = 1.0 + tenth * rows as f64;
        for &got in &first.2 {
            assert!(rel(got, want) <= 80.0 * u, "dbeta {got} vs {want}");
        }
        // x̂ per row, from the saved statistics, summed in f64.
        let (mh, rh) = (be.download_vec(&m).unwrap(), be.download_vec(&r).unwrap());
        for c in 0..cols {
            let (mut want, mut abs) = (0.0f64, 0.0f64);
            for row in 0..rows {
                let xhat = (xs[row * cols + c] - mh[row]) * rh[row];
                let t = f64::from(0.1f32 * xhat);
                want += t;
                abs += t.abs();
            }
            let err = (f64::from(first.1[c]) - want).abs();
            assert!(
                err <= 80.0 * u * abs,
                "dgamma[{c}] {} vs {want}",
                first.1[c]
            );
        }

        // GroupNorm backward, batch 300 (three levels would need more; two here) with
        // one value per channel, and batch 2 with 5000 values per channel.
        for (batch, channels, groups, spatial) in [(300, 12, 3, 1), (2, 6, 2, 5000)] {
            let s = brain_core::GroupNormShape {
                batch,
                channels,
                spatial,
                groups,
            };
            let n = batch * channels * spatial;
            let xs: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 * 0.5 - 2.0).collect();
            let xb = be.upload(&xs).unwrap();
            let gamma = be.upload(&vec![1.0; channels]).unwrap();
            let zeros = be.alloc(channels).unwrap();
            let (mut y, mut m, mut r) = (
                be.alloc(n).unwrap(),
                be.alloc(batch * groups).unwrap(),
                be.alloc(batch * groups).unwrap(),
            );
            be.groupnorm_forward(&xb, &gamma, &zeros, &mut y, &mut m, &mut r, &s, 1e-5)
                .unwrap();
            let dy = be.upload(&vec![0.1f32; n]).unwrap();
            let (mut dx, mut dg, mut db) = (
                be.alloc(n).unwrap(),
                be.alloc(channels).unwrap(),
                be.alloc(channels).unwrap(),
            );
            be.groupnorm_backward(&dy, &xb, &gamma, &m, &r, &mut dx, &mut dg, &mut db, &s)
                .unwrap();
            let want = tenth * (batch * spatial) as f64;
            for got in be.download_vec(&db).unwrap() {
                assert!(
                    rel(got, want) <= 80.0 * u,
                    "groupnorm dbeta {got} vs {want}"
                );
            }
            // dy constant and γ = 1: dx = rstd·(0.1 − 0.1 − x̂·mean(0.1·x̂)) ≈ 0.
            let worst = be
                .download_vec(&dx)
                .unwrap()
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()));
            assert!(worst < 1e-5, "groupnorm dx should vanish, got {worst}");
        }
    });
}

/// The norm and reduction kernels under a dispatch split over x, y and z (the
/// per-dimension limit lowered to 5, so 26 to 125 workgroups reach z), against the f64
/// reference: long rows (one per workgroup) and short rows (several per workgroup).
#[test]
fn norms_and_reductions_undo_the_split() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: norms_and_reductions_undo_the_split: {e}"),
    };
    be.limit_workgroups_per_dimension(5);
    let or = brain_core::reference::ReferenceBackend::<f64>::new();
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap()
    };
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let close = |what: &str, got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    };
    let vals = |n: usize, m: usize| -> Vec<f64> {
        (0..n).map(|i| ((i * 7) % m) as f64 * 0.25 - 1.0).collect()
    };

    // LayerNorm: 110 rows of 300 (a workgroup each: 5×5×5, the last layer partly
    // idle), and 7000 rows of 3 (64 per workgroup: 110 workgroups; the parameter
    // gradients' 55 blocks of 128 rows).
    for (rows, cols) in [(110, 300), (7000, 3)] {
        let (x, g, b, dy) = (
            vals(rows * cols, 13),
            vals(cols, 5),
            vals(cols, 3),
            vals(rows * cols, 9),
        );
        let (xb, gb, bb) = (up(&x), up(&g), up(&b));
        let (mut yb, mut mb, mut rb) = (
            be.alloc(rows * cols).unwrap(),
            be.alloc(rows).unwrap(),
            be.alloc(rows).unwrap(),
        );
        be.layernorm_forward(&xb, &gb, &bb, &mut yb, &mut mb, &mut rb, rows, cols, 1e-5)
            .unwrap();
        let (mut y, mut m, mut r) = (vec![0.0; rows * cols], vec![0.0; rows], vec![0.0; rows]);
        or.layernorm_forward(&x, &g, &b, &mut y, &mut m, &mut r, rows, cols, 1e-5)
            .unwrap();
        close("layernorm y", &down(&yb), &y);
        close("layernorm rstd", &down(&rb), &r);
        let (mut dxb, mut dgb, mut dbb) = (
            be.alloc(rows * cols).unwrap(),
            be.alloc(cols).unwrap(),
            be.alloc(cols).unwrap(),
        );
        be.layernorm_backward(
            &up(&dy),
            &xb,
            &gb,
            &mb,
            &rb,
            &mut dxb,
            &mut dgb,
            &mut dbb,
            rows,
            cols,
        )
        .unwrap();
        let (mut dx, mut dg, mut db) = (vec![0.0; rows * cols], vec![0.0; cols], vec![0.0; cols]);
        or.layernorm_backward(&dy, &x, &g, &m, &r, &mut dx, &mut dg, &mut db, rows, cols)
            .unwrap();
        close("layernorm dx", &down(&dxb), &dx);
        close("layernorm dgamma", &down(&dgb), &dg);
        close("layernorm dbeta", &down(&dbb), &db);
    }

    // GroupNorm: 37·3 = 111 groups of 2·128 values, a workgroup each.
    let s = brain_core::GroupNormShape {
        batch: 37,
        channels: 6,
        spatial: 128,
        groups: 3,
    };
    let (n, ng) = (37 * 6 * 128, 37 * 3);
    let (x, g, b, dy) = (vals(n, 13), vals(6, 5), vals(6, 3), vals(n, 9));
    let (xb, gb, bb) = (up(&x), up(&g), up(&b));
    let (mut yb, mut mb, mut rb) = (
        be.alloc(n).unwrap(),
        be.alloc(ng).unwrap(),
        be.alloc(ng).unwrap(),
    );
    be.groupnorm_forward(&xb, &gb, &bb, &mut yb, &mut mb, &mut rb, &s, 1e-5)
        .unwrap();
    let (mut y, mut m, mut r) = (vec![0.0; n], vec![0.0; ng], vec![0.0; ng]);
    or.groupnorm_forward(&x, &g, &b, &mut y, &mut m, &mut r, &s, 1e-5)
        .unwrap();
    close("groupnorm y", &down(&yb), &y);
    let (mut dxb, mut dgb, mut dbb) = (
        be.alloc(n).unwrap(),
        be.alloc(6).unwrap(),
        be.alloc(6).unwrap(),
    );
    be.groupnorm_backward(
        &up(&dy),
        &xb,
        &gb,
        &mb,
        &rb,
        &mut dxb,
        &mut dgb,
        &mut dbb,
        &s,
    )
    .unwrap();
    let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; 6], vec![0.0; 6]);
    or.groupnorm_backward(&dy, &x, &g, &m, &r, &mut dx, &mut dg, &mut db, &s)
        .unwrap();
    close("groupnorm dx", &down(&dxb), &dx);
    close("groupnorm dgamma", &down(&dgb), &dg);
    close("groupnorm dbeta", &down(&dbb), &db);

    // reduce_rows: 120 rows of 300 (a workgroup each) and 7000 rows of 3 (64 per
    // workgroup: 110 workgroups).
    for (rows, cols) in [(120, 300), (7000, 3)] {
        let x = vals(rows * cols, 17);
        let xb = up(&x);
        for op in [RowReduce::Sum, RowReduce::Max, RowReduce::LogSumExp] {
            let mut ob = be.alloc(rows).unwrap();
            be.reduce_rows(op, &xb, &mut ob, rows, cols).unwrap();
            let mut want = vec![0.0; rows];
            or.reduce_rows(op, &x, &mut want, rows, cols).unwrap();
            close("reduce_rows", &down(&ob), &want);
        }
    }
}

/// The contrastive family past the sizes the shared suite reaches, with the dispatch
/// split over x, y and z (8 workgroups per dimension): rows longer than one 4096-value
/// chunk of the row sums (partials, then a second tree), a Gram pass split over many
/// depth chunks and over several tiles, and n = 300 logits (more than one value per
/// invocation in every per-index reduction) at τ = 0.005.
#[test]
fn contrastive_long_rows_and_many_logits() {
    use brain_core::ContrastiveLoss::{InfoNce, SoftClip};
    use conformance::data::{Oracle, Rng};
    use conformance::tolerance::{check_close, check_close_with, Tol};
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: contrastive_long_rows_and_many_logits: {e}"),
    };
    be.limit_workgroups_per_dimension(8);
    let or = Oracle::new();
    let u = f64::from(f32::EPSILON) / 2.0;
    let f32s = |v: Vec<f64>| -> Vec<f64> { v.iter().map(|&x| f64::from(x as f32)).collect() };
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap()
    };
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let ok = |r: Result<(), String>| r.unwrap_or_else(|m| panic!("{m}"));
    let mut r = Rng::new(7);

    // Row normalisation over 3 rows of 3·4096 + 17: trees of trees, error ~30·u.
    const TREE: &str = "tree sums: ~(16 + 8 + 2)·u of the row's scale";
    let (rows, cols) = (3, 3 * 4096 + 17);
    let x = f32s(r.vec(rows * cols, -1.0, 1.0));
    let dy = f32s(r.vec(rows * cols, -1.0, 1.0));
    let (mut yb, mut nb, mut dxb) = (
        be.alloc(rows * cols).unwrap(),
        be.alloc(rows).unwrap(),
        be.alloc(rows * cols).unwrap(),
    );
    let xb = up(&x);
    be.l2_normalize_rows_forward(&xb, &mut yb, &mut nb, rows, cols)
        .unwrap();
    be.l2_normalize_rows_backward(&up(&dy), &xb, &nb, &mut dxb, rows, cols)
        .unwrap();
    let (mut y, mut nr, mut dx) = (
        vec![0.0; rows * cols],
        vec![0.0; rows],
        vec![0.0; rows * cols],
    );
    or.l2_normalize_rows_forward(&x, &mut y, &mut nr, rows, cols)
        .unwrap();
    or.l2_normalize_rows_backward(&dy, &x, &nr, &mut dx, rows, cols)
        .unwrap();
    let t = Tol::new(0.0, 64.0 * u, TREE);
    ok(check_close("norms", &down(&nb), &nr, t));
    ok(check_close(
        "y",
        &down(&yb),
        &y,
        Tol::new(64.0 * u, 64.0 * u, TREE),
    ));
    let scale = 1.0 / nr.iter().fold(f64::INFINITY, |m, &v| m.min(v));
    ok(check_close(
        "dx",
        &down(&dxb),
        &dx,
        Tol::new(64.0 * u * scale, 64.0 * u, TREE),
    ));

    // Gram pass: 5 rows of 20 000 (20 depth chunks, one tile) and 70 rows of 3 000
    // (SoftCLIP: 140 stacked rows, 3×2 tiles, 3 chunks).
    const GRAM: &str = "sequential f32 sums within a depth chunk of ≤ 1024, then across \
        the chunks: ≤ (1024 + chunks)·u of Σ|products|; squared norms are trees";
    for (n, d, kind) in [(5, 20_000, InfoNce), (70, 3_000, SoftClip)] {
        let soft = kind == SoftClip;
        let p = f32s(r.vec(n * d, -1.0, 1.0));
        let t = f32s(r.vec(n * d, -1.0, 1.0));
        let (mut psb, mut tsb) = (be.alloc(n).unwrap(), be.alloc(n).unwrap());
        let (mut gpb, mut gtb) = (up(&vec![7.0; n * n]), up(&vec![7.0; n * n]));
        be.clip_grams_forward(
            kind,
            &up(&p),
            &up(&t),
            n,
            d,
            &mut psb,
            &mut tsb,
            &mut gpb,
            soft.then_some(&mut gtb),
        )
        .unwrap();
        let (mut ps, mut ts) = (vec![0.0; n], vec![0.0; n]);
        let (mut gp, mut gt) = (vec![0.0; n * n], vec![0.0; n * n]);
        or.clip_grams_forward(
            kind,
            &p,
            &t,
            n,
            d,
            &mut ps,
            &mut ts,
            &mut gp,
            soft.then_some(&mut gt),
        )
        .unwrap();
        let abs = |a: &[f64], i: usize, b: &[f64], j: usize| -> f64 {
            (0..d).map(|k| (a[i * d + k] * b[j * d + k]).abs()).sum()
        };
        let k = (1024.0 + d as f64 / 1024.0 + 2.0) * u;
        ok(check_close(
            "p_sq",
            &down(&psb),
            &ps,
            Tol::new(0.0, 64.0 * u, GRAM),
        ));
        ok(check_close(
            "t_sq",
            &down(&tsb),
            &ts,
            Tol::new(0.0, 64.0 * u, GRAM),
        ));
        ok(check_close_with("g_pt", &down(&gpb), &gp, |x| {
            Tol::new(k * abs(&p, x / n, &t, x % n), 0.0, GRAM)
        }));
        if soft {
            ok(check_close_with("g_tt", &down(&gtb), &gt, |x| {
                Tol::new(k * abs(&t, x / n, &t, x % n), 0.0, GRAM)
            }));
        }
    }

    // n = 300 logits at τ = 0.005 (±200), both losses, forward and backward.
    const LOGITS: &str = "the conformance suite's bound: 16·u·(1 + max|C| + n)";
    let n = 300;
    let tau = 0.005;
    let pt = f32s(r.vec(n * n, -1.0 / tau, 1.0 / tau));
    let mut tt = r.vec(n * n, -1.0 / tau, 1.0 / tau);
    for i in 0..n {
        tt[i * n + i] = 1.0 / tau;
    }
    let tt = f32s(tt);
    let (ptb, ttb) = (up(&pt), up(&tt));
    let k = 16.0 * u * (1.0 + 1.0 / tau + n as f64);
    for kind in [SoftClip, InfoNce] {
        let soft = kind == SoftClip;
        let mut lb = be.alloc(1).unwrap();
        be.contrastive_forward(kind, &ptb, soft.then_some(&ttb), n, &mut lb)
            .unwrap();
        let mut l = vec![0.0];
        or.contrastive_forward(kind, &pt, soft.then_some(&tt), n, &mut l)
            .unwrap();
        ok(check_close("loss", &down(&lb), &l, Tol::new(k, k, LOGITS)));
        let (mut dpb, mut dtb) = (be.alloc(n * n).unwrap(), up(&vec![3.0; n * n]));
        be.contrastive_backward(
            kind,
            &ptb,
            soft.then_some(&ttb),
            n,
            1.5,
            &mut dpb,
            Some(&mut dtb),
        )
        .unwrap();
        let (mut dp, mut dt) = (vec![0.0; n * n], vec![0.0; n * n]);
        or.contrastive_backward(
            kind,
            &pt,
            soft.then_some(&tt),
            n,
            1.5,
            &mut dp,
            Some(&mut dt),
        )
        .unwrap();
        let gs = 1.5 / n as f64;
        ok(check_close(
            "dlogits_pt",
            &down(&dpb),
            &dp,
            Tol::new(k * gs, k, LOGITS),
        ));
        let cmax = 1.0 + 1.0 / tau + n as f64;
        ok(check_close(
            "dlogits_tt",
            &down(&dtb),
            &dt,
            Tol::new(k * gs * cmax, k, LOGITS),
        ));
    }
}

/// NaN and ±Inf through the contrastive kernels as through the oracle: a NaN or +Inf
/// logit makes the loss NaN; a NaN row of the normalisation stays NaN; the Gram of a
/// NaN input is NaN where the oracle's is.
#[test]
fn contrastive_nonfinite() {
    use brain_core::ContrastiveLoss::{InfoNce, SoftClip};
    with("contrastive_nonfinite", |be| {
        let n = 4;
        let base: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 - 2.0).collect();
        for bad in [f32::NAN, f32::INFINITY] {
            for kind in [SoftClip, InfoNce] {
                let mut pt = base.clone();
                pt[6] = bad;
                let (ptb, ttb) = (be.upload(&pt).unwrap(), be.upload(&base).unwrap());
                let mut lb = be.alloc(1).unwrap();
                be.contrastive_forward(kind, &ptb, Some(&ttb), n, &mut lb)
                    .unwrap();
                let l = be.download_vec(&lb).unwrap()[0];
                assert!(l.is_nan(), "{kind:?} loss with a {bad} logit: {l}");
                let mut dpb = be.alloc(n * n).unwrap();
                be.contrastive_backward(kind, &ptb, Some(&ttb), n, 1.0, &mut dpb, None)
                    .unwrap();
                let dp = be.download_vec(&dpb).unwrap();
                // Row 1 and column 2 of the softmaxes hold the bad logit.
                assert!(
                    dp[6].is_nan(),
                    "{kind:?} dlogits at the {bad} logit: {}",
                    dp[6]
                );
            }
        }
        // −Inf is an ordinary zero probability.
        let mut pt = base.clone();
        pt[6] = f32::NEG_INFINITY;
        let mut lb = be.alloc(1).unwrap();
        be.contrastive_forward(InfoNce, &be.upload(&pt).unwrap(), None, n, &mut lb)
            .unwrap();
        assert!(be.download_vec(&lb).unwrap()[0].is_finite());

        let mut x = vec![1.0f32; 12];
        x[5] = f32::NAN;
        let (mut yb, mut nb) = (be.alloc(12).unwrap(), be.alloc(3).unwrap());
        be.l2_normalize_rows_forward(&be.upload(&x).unwrap(), &mut yb, &mut nb, 3, 4)
            .unwrap();
        let y = be.download_vec(&yb).unwrap();
        let nr = be.download_vec(&nb).unwrap();
        assert!(nr[1].is_nan() && y[4..8].iter().all(|v| v.is_nan()));
        assert!(y[..4].iter().chain(&y[8..]).all(|&v| v == 0.5));
    });
}

/// Dropped buffers go back to the device's pool: a step that allocates the same
/// temporaries again costs no driver allocation; a reused buffer comes back
/// zero-filled although queued kernels wrote it after the host dropped it; an upload
/// into a reused buffer holds its data; the pool stays within its capacity.
#[test]
fn buffers_are_pooled() {
    with("buffers_are_pooled", |be| {
        let x = be.upload(&[1.5; 1000]).unwrap();
        // Temporaries written by queued kernels and dropped before they ran.
        let step = || -> Vec<f32> {
            let mut t = be.alloc(1000).unwrap();
            be.axpy(2.0, &x, &mut t).unwrap();
            let mut u = be.alloc(3000).unwrap();
            be.fill(&mut u, 7.0).unwrap();
            let mut y = be.alloc(1000).unwrap();
            be.add(&t, &x, &mut y).unwrap();
            drop((t, u));
            be.download_vec(&y).unwrap()
        };
        assert_eq!(step(), vec![4.5; 1000]);
        let warm = be.pool_stats();
        for _ in 0..5 {
            assert_eq!(step(), vec![4.5; 1000]);
        }
        let after = be.pool_stats();
        println!("pool after 6 steps: {after:?} (after the first: {warm:?})");
        assert_eq!(after.driver_allocations, warm.driver_allocations);
        assert_eq!(after.reuses, warm.reuses + 15);

        // Reuse is zero-filled, also for a smaller request of the same size class,
        // with no sync between the fill, the drop and the reuse.
        for len in [1000, 995] {
            let mut t = be.alloc(1000).unwrap();
            be.fill(&mut t, 5.0).unwrap();
            drop(t);
            let n = be.pool_stats().driver_allocations;
            let z = be.alloc(len).unwrap();
            assert_eq!(be.pool_stats().driver_allocations, n, "reused");
            assert_eq!(be.download_vec(&z).unwrap(), vec![0.0; len]);
        }
        // An upload into a reused buffer, then a write after queued work.
        let mut t = be.alloc(1000).unwrap();
        be.fill(&mut t, 5.0).unwrap();
        drop(t);
        let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut u = be.upload(&data).unwrap();
        assert_eq!(be.download_vec(&u).unwrap(), data);
        be.fill(&mut u, 3.0).unwrap();
        be.write(&mut u, &data).unwrap();
        assert_eq!(be.download_vec(&u).unwrap(), data);

        // Bounded: 8 KiB held at most, the least recently freed evicted first.
        be.set_pool_capacity(8 << 10);
        let bufs: Vec<_> = (0..10).map(|_| be.alloc(1000).unwrap()).collect();
        drop(bufs);
        let s = be.pool_stats();
        assert!(s.pooled_bytes <= 8 << 10 && s.pooled_buffers == 2, "{s:?}");
        // Capacity 0: nothing is kept.
        be.set_pool_capacity(0);
        drop(be.alloc(10).unwrap());
        let s = be.pool_stats();
        assert_eq!((s.pooled_buffers, s.pooled_bytes), (0, 0), "{s:?}");
        be.sync().unwrap();
    });
}

/// The chunked paths for tensors larger than one storage binding, reached with small
/// tensors by lowering the binding limit to 1 KiB (256 floats): element-wise kernels,
/// activations, bias add and gradient, every GEMM layout (batched, padded strides that
/// misalign the ranges, beta = 0 and not) and Linear, against the f64 reference.
/// Small integers keep every sum exact, so the comparisons are exact (activations
/// excepted).
#[test]
fn chunked_bindings_match_the_reference() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: chunked_bindings_match_the_reference: {e}"),
    };
    be.limit_storage_binding_size(1024);
    let or = brain_core::reference::ReferenceBackend::<f64>::new();
    let up = |v: &[f64]| {
        be.upload(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())
            .unwrap()
    };
    let down = |b: &backend_wgpu::WgpuBuffer| -> Vec<f64> {
        be.download_vec(b)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let vals = |n: usize, m: usize, s: usize| -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7 + s) % m) as f64 - (m / 2) as f64)
            .collect()
    };

    // Element-wise: 1000 elements, 4 chunks.
    let (a, b) = (vals(1000, 7, 0), vals(1000, 5, 3));
    let (ab, bb) = (up(&a), up(&b));
    let mut out = be.alloc(1000).unwrap();
    be.fill(&mut out, 0.5).unwrap();
    assert_eq!(down(&out), vec![0.5; 1000], "fill");
    be.add(&ab, &bb, &mut out).unwrap();
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_eq!(down(&out), sum, "add");
    be.axpy(-2.0, &ab, &mut out).unwrap();
    be.scale(&mut out, 3.0).unwrap();
    let want: Vec<f64> = sum
        .iter()
        .zip(&a)
        .map(|(s, x)| 3.0 * (s - 2.0 * x))
        .collect();
    assert_eq!(down(&out), want, "axpy, scale");
    let x: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) / 97.0).collect();
    let xb = up(&x);
    for act in [Activation::GeluErf, Activation::GeluTanh, Activation::Silu] {
        be.activation_forward(act, &xb, &mut out).unwrap();
        let mut want = vec![0.0; 1000];
        or.activation_forward(act, &x, &mut want).unwrap();
        let got = down(&out);
        be.activation_backward(act, &xb, &bb, &mut out).unwrap();
        let mut want_dx = vec![0.0; 1000];
        or.activation_backward(act, &x, &b, &mut want_dx).unwrap();
        let got_dx = down(&out);
        for i in 0..1000 {
            assert!(
                (got[i] - want[i]).abs() <= 1e-6 * (1.0 + want[i].abs()),
                "{act:?} {i}"
            );
            assert!(
                (got_dx[i] - want_dx[i]).abs() <= 1e-5 * (1.0 + want_dx[i].abs()),
                "{act:?}' {i}"
            );
        }
    }

    // Bias add over 3·7·50 = 1050 elements (channels cross the chunk boundaries).
    let (outer, ch, inner) = (3, 7, 50);
    let y0 = vals(outer * ch * inner, 9, 1);
    let bias = vals(ch, 11, 2);
    let mut yb = up(&y0);
    be.bias_add(&mut yb, &up(&bias), outer, ch, inner).unwrap();
    let mut want = y0.clone();
    or.bias_add(&mut want, &bias, outer, ch, inner).unwrap();
    assert_eq!(down(&yb), want, "bias_add");
    // Bias gradient over 40 rows of 3·5: chunks of 16 rows.
    let dy = vals(40 * 15, 13, 4);
    let mut db = up(&[1.0, 2.0, 3.0]);
    be.bias_backward(&up(&dy), &mut db, 40, 3, 5).unwrap();
    let mut want = vec![1.0, 2.0, 3.0];
    or.bias_backward(&dy, &mut want, 40, 3, 5).unwrap();
    assert_eq!(down(&db), want, "bias_backward");
    // One row wider than a binding: refused with a typed error.
    let wide = be.alloc(2 * 300).unwrap();
    let mut db = be.alloc(300).unwrap();
    assert!(matches!(
        be.bias_backward(&wide, &mut db, 2, 300, 1),
        Err(BrainError::Unsupported(_))
    ));

    // GEMM: every layout, one matrix and batches (dense, and padded strides that put
    // the matrices at misaligned offsets), beta = 0 (C starts as NaN) and beta ≠ 0.
    let (m, n, k) = (21, 26, 30);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for (batch, pad) in [(1, 0), (3, 0), (3, 5)] {
            for beta in [0.0, -1.0] {
                let g = Gemm::new(m, n, k).trans(ta, tb).scale(2.0, beta).batched(
                    batch,
                    m * k + pad,
                    k * n + pad,
                    m * n + pad,
                );
                let (la, lb, lc) = (
                    (batch - 1) * g.stride_a + m * k,
                    (batch - 1) * g.stride_b + k * n,
                    (batch - 1) * g.stride_c + m * n,
                );
                let (a, b) = (vals(la, 7, 1), vals(lb, 5, 2));
                let c = if beta == 0.0 {
                    vec![f64::NAN; lc]
                } else {
                    vals(lc, 3, 0)
                };
                let mut cb = up(&c);
                be.gemm(&g, &up(&a), &up(&b), &mut cb).unwrap();
                let mut want = c.clone();
                or.gemm(&g, &a, &b, &mut want).unwrap();
                let got = down(&cb);
                // Padding between matrices is left alone (NaN stays NaN).
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()));
                assert!(
                    same,
                    "gemm ta={ta} tb={tb} batch={batch} pad={pad} beta={beta}"
                );
            }
        }
    }

    // Linear with a 40×30 weight (1200 floats) and 6 rows.
    let (rows, inf, outf) = (6, 30, 40);
    let (x, w, bias, dy) = (
        vals(rows * inf, 5, 0),
        vals(outf * inf, 7, 1),
        vals(outf, 3, 2),
        vals(rows * outf, 5, 3),
    );
    let (xb, wb, bb, dyb) = (up(&x), up(&w), up(&bias), up(&dy));
    let mut yb = be.alloc(rows * outf).unwrap();
    be.linear_forward(&xb, &wb, Some(&bb), &mut yb, rows, inf, outf)
        .unwrap();
    let mut want = vec![0.0; rows * outf];
    or.linear_forward(&x, &w, Some(&bias), &mut want, rows, inf, outf)
        .unwrap();
    assert_eq!(down(&yb), want, "linear_forward");
    let (dw0, db0) = (vals(outf * inf, 3, 1), vals(outf, 3, 2));
    let (mut dxb, mut dwb, mut dbb) = (be.alloc(rows * inf).unwrap(), up(&dw0), up(&db0));
    be.linear_backward(
        &dyb,
        &xb,
        &wb,
        Some(&mut dxb),
        Some(&mut dwb),
        Some(&mut dbb),
        rows,
        inf,
        outf,
    )
    .unwrap();
    let (mut dx, mut dw, mut db) = (vec![0.0; rows * inf], dw0.clone(), db0.clone());
    or.linear_backward(
        &dy,
        &x,
        &w,
        Some(&mut dx),
        Some(&mut dw),
        Some(&mut db),
        rows,
        inf,
        outf,
    )
    .unwrap();
    assert_eq!(down(&dxb), dx, "linear dx");
    assert_eq!(down(&dwb), dw, "linear dweight");
    assert_eq!(down(&dbb), db, "linear dbias");
    be.sync().unwrap();
}

/// Tensors over 128 MiB, the storage binding limit of lavapipe (lowered to it on
/// adapters that allow more): add, axpy, an activation, bias add and gradient over
/// 40 M floats (160 MB, two chunks), and a Linear layer forward and backward (weight
/// and bias gradients) with a 4100×8200 weight (134.5 MB), against plain CPU loops.
/// Small integers keep every sum exact. The input gradient (dx = dy·W, which splits
/// W along k) costs as much as the forward on lavapipe, ~64·|W| multiply-adds, so it
/// is left to `chunked_bindings_match_the_reference`, which runs the same code.
#[test]
fn tensors_beyond_the_binding_limit() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: tensors_beyond_the_binding_limit: {e}"),
    };
    const LIMIT: u64 = 128 << 20;
    be.limit_storage_binding_size(LIMIT);
    let t = std::time::Instant::now();
    let n = 40_000_000;
    assert!(n as u64 * 4 > LIMIT);
    // Periods 13 and 7 do not divide the chunk length (a power of two): an element
    // read from the wrong chunk offset shows.
    let a: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
    let (ab, bb) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
    let mut out = be.alloc(n).unwrap();
    be.add(&ab, &bb, &mut out).unwrap();
    be.axpy(2.0, &ab, &mut out).unwrap();
    let got = be.download_vec(&out).unwrap();
    let bad = (0..n).find(|&i| got[i] != 3.0 * a[i] + b[i]);
    assert_eq!(bad, None, "add, axpy");

    be.activation_forward(Activation::Silu, &ab, &mut out)
        .unwrap();
    let silu: Vec<f64> = (0..13)
        .map(|v| {
            let x = v as f64 - 6.0;
            x / (1.0 + (-x).exp())
        })
        .collect();
    let got = be.download_vec(&out).unwrap();
    let bad = (0..n).find(|&i| (f64::from(got[i]) - silu[i % 13]).abs() > 1e-6);
    assert_eq!(bad, None, "silu");

    // [4, 1000, 10000]: bias over the 1000 channels.
    let (outer, ch, inner) = (4, 1000, 10_000);
    let bias: Vec<f32> = (0..ch).map(|c| (c % 17) as f32).collect();
    be.bias_add(&mut out, &be.upload(&bias).unwrap(), outer, ch, inner)
        .unwrap();
    let got2 = be.download_vec(&out).unwrap();
    let bad = (0..n).find(|&i| got2[i] != got[i] + bias[(i / inner) % ch]);
    assert_eq!(bad, None, "bias_add");
    let mut db = be.alloc(ch).unwrap();
    be.bias_backward(&ab, &mut db, outer, ch, inner).unwrap();
    let mut want = vec![0.0f64; ch];
    for (i, v) in a.iter().enumerate() {
        want[(i / inner) % ch] += f64::from(*v);
    }
    let got: Vec<f64> = be
        .download_vec(&db)
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(got, want, "bias_backward");
    drop((a, b, ab, bb, out, got2));
    println!("element-wise and bias over {n} floats: {:?}", t.elapsed());

    // Linear: y[3, 4100] = x[3, 8200]·W[4100, 8200]ᵀ + b, then dW (+=), db (+=).
    let t = std::time::Instant::now();
    let (rows, inf, outf) = (3, 8200, 4100);
    assert!((inf * outf) as u64 * 4 > LIMIT);
    let w: Vec<f32> = (0..outf * inf).map(|i| (i % 7) as f32 - 3.0).collect();
    let x: Vec<f32> = (0..rows * inf).map(|i| (i % 5) as f32 - 2.0).collect();
    let bias: Vec<f32> = (0..outf).map(|i| (i % 3) as f32).collect();
    let dy: Vec<f32> = (0..rows * outf).map(|i| (i % 5) as f32 - 2.0).collect();
    let (wb, xb, bb, dyb) = (
        be.upload(&w).unwrap(),
        be.upload(&x).unwrap(),
        be.upload(&bias).unwrap(),
        be.upload(&dy).unwrap(),
    );
    let mut yb = be.alloc(rows * outf).unwrap();
    be.linear_forward(&xb, &wb, Some(&bb), &mut yb, rows, inf, outf)
        .unwrap();
    let (mut dwb, mut dbb) = (be.alloc(outf * inf).unwrap(), be.upload(&bias).unwrap());
    be.fill(&mut dwb, 1.0).unwrap();
    be.linear_backward(
        &dyb,
        &xb,
        &wb,
        None,
        Some(&mut dwb),
        Some(&mut dbb),
        rows,
        inf,
        outf,
    )
    .unwrap();
    let y = be.download_vec(&yb).unwrap();
    for r in 0..rows {
        for o in 0..outf {
            let xr = &x[r * inf..][..inf];
            let wo = &w[o * inf..][..inf];
            let want: f32 = xr.iter().zip(wo).map(|(a, b)| a * b).sum::<f32>() + bias[o];
            assert_eq!(y[r * outf + o], want, "y[{r}, {o}]");
        }
    }
    let dw = be.download_vec(&dwb).unwrap();
    let bad = (0..outf * inf).find(|&e| {
        let (o, i) = (e / inf, e % inf);
        let want: f32 = (0..rows).map(|r| dy[r * outf + o] * x[r * inf + i]).sum();
        dw[e] != 1.0 + want
    });
    assert_eq!(bad, None, "dweight");
    let db = be.download_vec(&dbb).unwrap();
    let want: Vec<f32> = (0..outf)
        .map(|o| bias[o] + (0..rows).map(|r| dy[r * outf + o]).sum::<f32>())
        .collect();
    assert_eq!(db, want, "dbias");
    println!(
        "linear with a {}-byte weight: {:?}",
        inf * outf * 4,
        t.elapsed()
    );
    be.sync().unwrap();
}

/// Device timestamps around the dispatches of a closure, where the adapter has them.
#[test]
fn kernels_are_timed_on_the_device() {
    with("kernels_are_timed_on_the_device", |be| {
        let g = Gemm::new(256, 256, 256);
        let a = be.upload(&vec![1.0; 256 * 256]).unwrap();
        let mut c = be.alloc(256 * 256).unwrap();
        let (got, time) = be
            .time_on_device(|be| {
                for _ in 0..3 {
                    be.gemm(&g, &a, &a, &mut c)?;
                }
                be.scale(&mut c, 0.5)?;
                be.download_vec(&c)
            })
            .unwrap();
        assert_eq!(got, vec![128.0; 256 * 256]);
        match time {
            None => println!("no timestamp queries on this adapter"),
            Some(t) => {
                println!("3 GEMMs 256³ and a scale: {t:?}");
                assert_eq!((t.dispatches, t.untimed), (4, 0));
                assert!(t.kernels > std::time::Duration::ZERO && t.span >= t.kernels);
            }
        }
        // Outside the closure nothing is timed.
        be.scale(&mut c, 2.0).unwrap();
        be.sync().unwrap();
    });
}

/// Every kernel chunked by the families beyond the element-wise ones (AdamW's sum of
/// squares and update, the Philox streams and dropout, MSE, the diffusion kernels,
/// row L2 normalisation, row reductions, LayerNorm, the GroupNorm forward) gives,
/// with the binding limit lowered to 256 KiB, bit for bit what one dispatch gives
/// (not lower: ranges of rows start at aligned offsets of every binding, e.g. every
/// 4096·align/4 elements for MSE's partial sums, every align/4 rows of 5000).
#[test]
fn chunked_kernels_match_one_dispatch() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: chunked_kernels_match_one_dispatch: {e}"),
    };
    const LIMIT: u64 = 256 << 10;
    let whole = chunked_family_outputs(&be, LIMIT);
    be.limit_storage_binding_size(LIMIT);
    let chunked = chunked_family_outputs(&be, LIMIT);
    assert_eq!(whole.len(), chunked.len());
    for ((name, w), (_, c)) in whole.iter().zip(&chunked) {
        assert_eq!(w.len(), c.len(), "{name}");
        let bad = (0..w.len()).find(|&i| w[i].to_bits() != c[i].to_bits());
        assert_eq!(
            bad,
            None,
            "{name}: {:?} vs {:?}",
            bad.map(|i| w[i]),
            bad.map(|i| c[i])
        );
    }
    // The GroupNorm backward does not split its tensors: a typed refusal.
    let shape = brain_core::GroupNormShape {
        batch: 100,
        channels: 8,
        spatial: 100,
        groups: 4,
    };
    let n = 100 * 8 * 100;
    let x = be.upload(&pattern(n, 3, -2.0, 4.0)).unwrap();
    let gamma = be.upload(&pattern(8, 4, 0.5, 1.0)).unwrap();
    let (mut y, mut mean, mut rstd) = (
        be.alloc(n).unwrap(),
        be.alloc(400).unwrap(),
        be.alloc(400).unwrap(),
    );
    be.groupnorm_forward(
        &x, &gamma, &gamma, &mut y, &mut mean, &mut rstd, &shape, 1e-5,
    )
    .unwrap();
    let (mut dg, mut db) = (be.alloc(8).unwrap(), be.alloc(8).unwrap());
    let r = be.groupnorm_backward(
        &x, &x, &gamma, &mean, &rstd, &mut y, &mut dg, &mut db, &shape,
    );
    assert!(matches!(r, Err(BrainError::Unsupported(_))), "{r:?}");
    be.sync().unwrap();
}

/// The outputs of the chunked kernels of `chunked_kernels_match_one_dispatch`, each
/// over more than `limit` bytes.
fn chunked_family_outputs(be: &WgpuBackend, limit: u64) -> Vec<(&'static str, Vec<f32>)> {
    let mut out: Vec<(&'static str, Vec<f32>)> = Vec::new();
    let big = |n: usize| assert!(n as u64 * 4 > limit, "{n} elements fit one binding");
    let up = |v: &[f32]| be.upload(v).unwrap();
    let mut keep = |name: &'static str, b: &backend_wgpu::WgpuBuffer| {
        out.push((name, be.download_vec(b).unwrap()));
    };

    // AdamW, clipped, over two tensors (21 and 17 gradient CHUNKs); the second starts at
    // a partial slot that is no multiple of anything.
    let sizes = [20 * 4096 + 17, 17 * 4096 - 3];
    let mut bufs: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(t, &n)| {
            big(n);
            (
                up(&pattern(n, 10 + t as u64, -1.0, 2.0)),
                up(&pattern(n, 20 + t as u64, -3.0, 6.0)),
                up(&pattern(n, 30 + t as u64, -0.1, 0.2)),
                up(&pattern(n, 40 + t as u64, 0.0, 0.01)),
            )
        })
        .collect();
    let mut ts: Vec<_> = bufs
        .iter_mut()
        .map(|(p, g, m, v)| brain_core::AdamWTensor {
            param: p,
            grad: g,
            exp_avg: m,
            exp_avg_sq: v,
        })
        .collect();
    let cfg = brain_core::AdamW {
        max_grad_norm: Some(1.0),
        step: 3,
        ..Default::default()
    };
    let mut norm = be.alloc(1).unwrap();
    be.adamw_step(&cfg, &mut ts, Some(&mut norm)).unwrap();
    drop(ts);
    keep("adamw grad_norm", &norm);
    for (p, _, m, v) in &bufs {
        keep("adamw param", p);
        keep("adamw exp_avg", m);
        keep("adamw exp_avg_sq", v);
    }
    drop(bufs);

    // Philox streams and dropout: chunks of whole blocks, counters from the absolute
    // block index.
    let n = 140_001;
    big(n);
    let (seed, offset) = (0x0123_4567_89ab_cdef, u64::MAX - 3);
    let mut b = be.alloc(n).unwrap();
    be.fill_uniform(&mut b, seed, offset).unwrap();
    keep("fill_uniform", &b);
    be.fill_normal(&mut b, seed, offset, 0.5, 2.0).unwrap();
    keep("fill_normal", &b);
    let mut bits = be.alloc(n + 1).unwrap();
    be.philox_bits(&mut bits, seed, offset).unwrap();
    keep("philox_bits", &bits);
    let x = up(&pattern(n, 5, -4.0, 8.0));
    let d = brain_core::Dropout {
        p: 0.3,
        seed,
        offset: 7,
    };
    be.dropout_forward(&d, &x, &mut b).unwrap();
    keep("dropout_forward", &b);
    be.dropout_backward(&d, &x, &mut b).unwrap();
    keep("dropout_backward", &b);

    // MSE: partial sums per CHUNK, in ranges of whole CHUNKs; the gradients.
    let y = up(&pattern(n, 6, -4.0, 8.0));
    let mut loss = be.alloc(1).unwrap();
    be.mse_forward(&x, &y, &mut loss).unwrap();
    keep("mse_forward", &loss);
    let (mut da, mut db) = (up(&pattern(n, 7, -1.0, 2.0)), up(&pattern(n, 8, -1.0, 2.0)));
    be.mse_backward(&x, &y, 0.7, Some(&mut da), Some(&mut db))
        .unwrap();
    be.mse_backward(&x, &y, 0.3, Some(&mut da), None).unwrap();
    be.mse_backward(&x, &y, 0.2, None, Some(&mut db)).unwrap();
    keep("mse_backward da", &da);
    keep("mse_backward db", &db);

    // Diffusion: the step (noise, clipping, x̂₀), add_noise over 7 samples, guidance.
    let step = brain_core::SchedulerStep {
        prediction: brain_core::PredictionType::VPrediction,
        alpha_prod_t: 0.6,
        clip_sample: Some(1.5),
        coef_x0: 0.4,
        coef_eps: 0.3,
        coef_sample: 0.2,
        coef_noise: 0.1,
    };
    let noise = up(&pattern(n, 9, -3.0, 6.0));
    let (mut prev, mut px) = (be.alloc(n).unwrap(), be.alloc(n).unwrap());
    be.scheduler_step(&step, &x, &y, Some(&noise), &mut prev, Some(&mut px))
        .unwrap();
    keep("scheduler_step prev", &prev);
    keep("scheduler_step pred_x0", &px);
    let sa: Vec<f64> = (0..7).map(|s| 0.9 - 0.1 * s as f64).collect();
    let sb: Vec<f64> = (0..7).map(|s| 0.1 + 0.13 * s as f64).collect();
    let mut noisy = be.alloc(140_000).unwrap();
    let (x7, n7) = (
        up(&pattern(140_000, 11, -1.0, 2.0)),
        up(&pattern(140_000, 12, -1.0, 2.0)),
    );
    be.add_noise(&x7, &n7, &sa, &sb, &mut noisy).unwrap();
    keep("add_noise", &noisy);
    be.guidance_combine(&x, &y, 7.5, &mut prev).unwrap();
    keep("guidance_combine", &prev);

    // Row L2 normalisation: short rows, and rows of two sum chunks (> 4096 values).
    for (rows, cols) in [(700, 100), (17, 5000)] {
        let n = rows * cols;
        big(n);
        let x = up(&pattern(n, 13, -2.0, 4.0));
        let dy = up(&pattern(n, 14, -2.0, 4.0));
        let (mut y, mut norms, mut dx) = (
            be.alloc(n).unwrap(),
            be.alloc(rows).unwrap(),
            be.alloc(n).unwrap(),
        );
        be.l2_normalize_rows_forward(&x, &mut y, &mut norms, rows, cols)
            .unwrap();
        be.l2_normalize_rows_backward(&dy, &x, &norms, &mut dx, rows, cols)
            .unwrap();
        keep("l2_normalize_rows y", &y);
        keep("l2_normalize_rows norms", &norms);
        keep("l2_normalize_rows dx", &dx);
    }

    // Row reductions, every op.
    let (rows, cols) = (3000, 33);
    big(rows * cols);
    let x = up(&pattern(rows * cols, 15, -3.0, 6.0));
    let mut r = be.alloc(rows).unwrap();
    for op in [
        RowReduce::Sum,
        RowReduce::Mean,
        RowReduce::Max,
        RowReduce::LogSumExp,
        RowReduce::SumSquares,
    ] {
        be.reduce_rows(op, &x, &mut r, rows, cols).unwrap();
        keep("reduce_rows", &r);
    }

    // LayerNorm forward and backward (dx; dγ, dβ from blocks of 128 rows).
    let (rows, cols) = (2000, 40);
    let n = rows * cols;
    big(n);
    let x = up(&pattern(n, 16, 5.0, 3.0));
    let dy = up(&pattern(n, 17, -1.0, 2.0));
    let gamma = up(&pattern(cols, 18, 0.5, 1.0));
    let beta = up(&pattern(cols, 19, -0.5, 1.0));
    let (mut y, mut mean, mut rstd, mut dx) = (
        be.alloc(n).unwrap(),
        be.alloc(rows).unwrap(),
        be.alloc(rows).unwrap(),
        be.alloc(n).unwrap(),
    );
    be.layernorm_forward(
        &x, &gamma, &beta, &mut y, &mut mean, &mut rstd, rows, cols, 1e-5,
    )
    .unwrap();
    let (mut dg, mut db) = (up(&pattern(cols, 20, 0.0, 1.0)), be.alloc(cols).unwrap());
    be.layernorm_backward(
        &dy, &x, &gamma, &mean, &rstd, &mut dx, &mut dg, &mut db, rows, cols,
    )
    .unwrap();
    for (name, b) in [
        ("layernorm y", &y),
        ("layernorm mean", &mean),
        ("layernorm rstd", &rstd),
        ("layernorm dx", &dx),
        ("layernorm dgamma", &dg),
        ("layernorm dbeta", &db),
    ] {
        keep(name, b);
    }

    // GroupNorm forward: ranges of whole batch items.
    let shape = brain_core::GroupNormShape {
        batch: 100,
        channels: 8,
        spatial: 100,
        groups: 4,
    };
    let n = 100 * 8 * 100;
    big(n);
    let x = up(&pattern(n, 21, -2.0, 4.0));
    let gamma = up(&pattern(8, 22, 0.5, 1.0));
    let beta = up(&pattern(8, 23, -0.5, 1.0));
    let (mut y, mut mean, mut rstd) = (
        be.alloc(n).unwrap(),
        be.alloc(400).unwrap(),
        be.alloc(400).unwrap(),
    );
    be.groupnorm_forward(
        &x, &gamma, &beta, &mut y, &mut mean, &mut rstd, &shape, 1e-5,
    )
    .unwrap();
    keep("groupnorm y", &y);
    keep("groupnorm mean", &mean);
    keep("groupnorm rstd", &rstd);
    out
}

/// AdamW (clipped, with the gradient norm) and dropout on a tensor beyond the real
/// 128 MiB binding limit (BrainMCLIP's largest weight is 442M floats), against the
/// same arithmetic on the CPU: the norm within a tree sum's error of the f64 one, the
/// update within an ulp or two (the driver may fuse multiply-adds), dropout exactly.
#[test]
fn adamw_and_dropout_beyond_the_binding_limit() {
    let mut be = match WgpuBackend::new() {
        Ok(be) => be,
        Err(e) => return println!("skipped: adamw_and_dropout_beyond_the_binding_limit: {e}"),
    };
    const LIMIT: u64 = 128 << 20;
    be.limit_storage_binding_size(LIMIT);
    let t = std::time::Instant::now();
    let sizes = [(LIMIT / 4) as usize + 400_003, 1000];
    assert!(sizes[0] as u64 * 4 > LIMIT);
    let host: Vec<[Vec<f32>; 4]> = sizes
        .iter()
        .enumerate()
        .map(|(t, &n)| {
            let s = 100 + 4 * t as u64;
            [
                pattern(n, s, -1.0, 2.0),
                pattern(n, s + 1, -0.01, 0.02),
                pattern(n, s + 2, -0.001, 0.002),
                pattern(n, s + 3, 0.0, 1e-5),
            ]
        })
        .collect();
    let mut bufs: Vec<_> = host
        .iter()
        .map(|[p, g, m, v]| {
            (
                be.upload(p).unwrap(),
                be.upload(g).unwrap(),
                be.upload(m).unwrap(),
                be.upload(v).unwrap(),
            )
        })
        .collect();
    let mut ts: Vec<_> = bufs
        .iter_mut()
        .map(|(p, g, m, v)| brain_core::AdamWTensor {
            param: p,
            grad: g,
            exp_avg: m,
            exp_avg_sq: v,
        })
        .collect();
    let cfg = brain_core::AdamW {
        max_grad_norm: Some(1.0),
        step: 5,
        ..Default::default()
    };
    let mut norm = be.alloc(1).unwrap();
    be.adamw_step(&cfg, &mut ts, Some(&mut norm)).unwrap();
    drop(ts);
    let got_norm = be.download_vec(&norm).unwrap()[0];
    let want_norm = host
        .iter()
        .flat_map(|[_, g, _, _]| g.iter().map(|&x| f64::from(x) * f64::from(x)))
        .sum::<f64>()
        .sqrt();
    let rel = (f64::from(got_norm) - want_norm).abs() / want_norm;
    assert!(rel < 1e-5, "grad norm {got_norm} vs {want_norm}");
    assert!(want_norm > 1.0, "the clip must be active");
    use brain_core::reference::adamw::{adamw_element, clip_coefficient, AdamWScalars};
    let clip: f32 = clip_coefficient(got_norm, cfg.max_grad_norm);
    let s = AdamWScalars::<f32>::new(&cfg);
    for ((p, _, m, v), [hp, hg, hm, hv]) in bufs.iter().zip(&host) {
        let (gp, gm, gv) = (
            be.download_vec(p).unwrap(),
            be.download_vec(m).unwrap(),
            be.download_vec(v).unwrap(),
        );
        let close = |g: f32, w: f32| (g - w).abs() <= 2.5e-7 * w.abs().max(1e-3);
        let bad = (0..hp.len()).find(|&i| {
            let (wp, wm, wv) = adamw_element(&s, hp[i], hg[i] * clip, hm[i], hv[i]);
            !(close(gp[i], wp) && close(gm[i], wm) && close(gv[i], wv))
        });
        assert_eq!(
            bad.map(|i| (i, gp[i], gm[i], gv[i])),
            None,
            "adamw over {} elements",
            hp.len()
        );
    }
    println!("adamw over {} floats: {:?}", sizes[0], t.elapsed());

    let t = std::time::Instant::now();
    let d = brain_core::Dropout {
        p: 0.1,
        seed: 0xfeed_beef,
        offset: 3,
    };
    let x = &bufs[0].1;
    let mut y = be.alloc(sizes[0]).unwrap();
    be.dropout_forward(&d, x, &mut y).unwrap();
    let got = be.download_vec(&y).unwrap();
    let (threshold, scale) = (d.threshold(), d.keep_scale() as f32);
    let hx = &host[0][1];
    let bad = (0..hx.len()).find(|&i| {
        let keep = brain_core::philox::bits24(brain_core::philox::word(d.seed, d.offset, i as u64))
            >= threshold;
        got[i].to_bits() != (hx[i] * if keep { scale } else { 0.0 }).to_bits()
    });
    assert_eq!(bad, None, "dropout");
    println!("dropout over {} floats: {:?}", sizes[0], t.elapsed());
    be.sync().unwrap();
}

/// Host cost of a dispatch: many small element-wise kernels (and a few row
/// reductions), timed on the host from the first call to the end of a `sync`.
/// `cargo test -p backend-wgpu --test wgpu dispatch_cost -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: run it by name"]
fn dispatch_cost() {
    with("dispatch_cost", |be| {
        let n = 1024;
        let x = be.upload(&pattern(n, 1, -1.0, 2.0)).unwrap();
        let mut y = be.upload(&pattern(n, 2, -1.0, 2.0)).unwrap();
        let mut r = be.alloc(8).unwrap();
        // Warm up: pipelines compiled, pool filled.
        for _ in 0..20 {
            be.axpy(0.5, &x, &mut y).unwrap();
            be.scale(&mut y, 0.5).unwrap();
            be.reduce_rows(RowReduce::Sum, &y, &mut r, 8, 128).unwrap();
        }
        be.sync().unwrap();
        for round in 0..3 {
            let reps = 1000;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                be.axpy(0.5, &x, &mut y).unwrap();
                be.scale(&mut y, 0.5).unwrap();
                be.reduce_rows(RowReduce::Sum, &y, &mut r, 8, 128).unwrap();
            }
            let record = t.elapsed();
            be.sync().unwrap();
            let total = t.elapsed();
            println!(
                "round {round}: {} dispatches: {:.1} µs/dispatch recorded, {:.1} µs/dispatch \
                 until synced",
                3 * reps,
                record.as_secs_f64() * 1e6 / (3 * reps) as f64,
                total.as_secs_f64() * 1e6 / (3 * reps) as f64
            );
        }
        // Temporaries: alloc + kernel + drop, as inside a training step.
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            let mut tmp = be.alloc(n).unwrap();
            be.add(&x, &y, &mut tmp).unwrap();
            be.axpy(-0.5, &tmp, &mut y).unwrap();
        }
        be.sync().unwrap();
        println!(
            "alloc + add + axpy + drop: {:.1} µs per iteration",
            t.elapsed().as_secs_f64() * 1e6 / 1000.0
        );
        let got = be.download_vec(&y).unwrap();
        assert!(got.iter().all(|v| v.is_finite()));
    });
}
