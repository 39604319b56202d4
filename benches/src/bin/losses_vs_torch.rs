//! Every fused loss (forward + backward), the Sobel loss and one DDIM step on the CPU
//! backend against PyTorch eager on this machine, in one run, same shapes and thread
//! count, each beside its floor:
//!
//!     cargo run --release -p benches --bin losses_vs_torch
//!
//! The PyTorch side is `benches/pytorch/time_losses.py`, started by this program after
//! the Rust timings (`--torch-json FILE` reads a saved run instead, `--no-torch` skips
//! it). Prints a Markdown table for BENCHMARKS.md.
//!
//! Floors: `max(bytes / copy bandwidth, flops / FMA peak, pixels / sqrt-div rate)`
//! with all three measured in this run (`benches::peak`). Bytes are the least any implementation moves: every input
//! read once, every gradient written once (4 bytes each). The bandwidth is measured
//! with buffers of the case's own tensor size (25 MiB tokens, 2 MiB latents): on a
//! machine whose last-level cache holds part of the working set, a DRAM-sized
//! measurement would not be a floor. Flops count the GEMMs of the Gram/logit products
//! at 2·m·n·k each; other elementwise work is not counted, except the Sobel loss's
//! square roots and divisions: per pixel 2 square roots in the forward, 2 again and
//! 1 division in the backward (`peak::sobel_sqrt_div_pixels_per_sec` times that exact
//! mix at full AVX width on all threads). Its stencil adds and multiplies (~35 per
//! pixel) are left out, so that floor is still below reach.

use benches::cases::{data, median_time};
use benches::peak::{memory_bandwidth_gbs, sobel_sqrt_div_pixels_per_sec, MachinePeak};
use brain_core::diffusion::{DdimConfig, DdimScheduler, ScheduleArithmetic};
use brain_core::loss::cka::CkaLoss;
use brain_core::loss::contrastive::ClipLoss;
use brain_core::loss::multi_granularity::MultiGranularityLoss;
use brain_core::{Backend, ContrastiveLoss, HsicEstimator, ImageShape, Result, SobelLossForm};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// Tokens `[32, 257, 768]` (CLIP ViT-L/14 hidden states of a batch of 32).
const TOK: (usize, usize, usize) = (32, 257, 768);
/// Latents `[32, 4, 64, 64]` (Stable/Versatile Diffusion VAE latents of a batch of 32).
const LAT: ImageShape = ImageShape {
    batch: 32,
    channels: 4,
    height: 64,
    width: 64,
};

/// One benchmarked case: its name (as in the PyTorch script), what it runs, the
/// bytes and flops its floor counts, and the Rust median.
struct Case {
    name: &'static str,
    what: &'static str,
    /// Bytes of one tensor (the size the bandwidth is measured at).
    tensor_bytes: usize,
    bytes: f64,
    flops: f64,
    /// Pixels of the Sobel loss's square roots and divisions (0 elsewhere).
    sqrt_div_pixels: f64,
    rust: Duration,
}

/// Floors of one case: copy bandwidth at its tensor size, GB/s, the FMA peak and the
/// Sobel square-root/division mix in pixels per second.
struct Floors {
    copy_gbs: f64,
    fma_gflops: f64,
    sqrt_div_pps: f64,
}

impl Case {
    fn floors(&self, f: &Floors) -> [(f64, &'static str); 3] {
        [
            (self.bytes / (f.copy_gbs * 1e9), "memory"),
            (self.flops / (f.fma_gflops * 1e9), "FMA"),
            (self.sqrt_div_pixels / f.sqrt_div_pps, "sqrt/div"),
        ]
    }
    fn floor_secs(&self, f: &Floors) -> f64 {
        self.floors(f).iter().map(|x| x.0).fold(0.0, f64::max)
    }
    fn bound(&self, f: &Floors) -> &'static str {
        let fl = self.floors(f);
        fl.iter()
            .fold(fl[0], |a, &b| if b.0 > a.0 { b } else { a })
            .1
    }
}

fn time<F: FnMut() -> Result<()>>(mut f: F) -> Result<Duration> {
    f()?; // surface errors before timing
    let mut err = None;
    let t = median_time(
        || {
            if let Err(e) = f() {
                err = Some(e);
            }
        },
        Duration::from_secs(3),
        10,
        200,
    );
    match err {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

fn rust_cases<B: Backend<Elem = f32>>(be: &B) -> Result<Vec<Case>> {
    let (n, m, d) = TOK;
    let len = n * m * d;
    let width = m * d;
    let a = be.upload(&data(len, 1))?;
    let b = be.upload(&data(len, 2))?;
    let (mut da, mut db) = (be.alloc(len)?, be.alloc(len)?);
    let mut loss = be.alloc(1)?;
    let io = 4.0 * 4.0 * len as f64; // read a, b; write da, db
    let gram = 2.0 * (n * n * width) as f64; // one n×n×(m·d) product
    let mut out = Vec::new();

    let t = time(|| {
        be.mse_forward(&a, &b, &mut loss)?;
        be.mse_backward(&a, &b, 1.0, Some(&mut da), Some(&mut db))?;
        be.sync()
    })?;
    out.push(Case {
        name: "mse",
        tensor_bytes: 4 * len,
        what: "MSE",
        bytes: io,
        flops: 0.0,
        sqrt_div_pixels: 0.0,
        rust: t,
    });

    for (name, what, est) in [
        ("cka_biased", "1 − CKA, biased HSIC", HsicEstimator::Biased),
        (
            "cka_unbiased",
            "1 − CKA, unbiased HSIC",
            HsicEstimator::Unbiased,
        ),
    ] {
        let mut cka = CkaLoss::new(be, n, width, width, est)?;
        let t = time(|| {
            cka.forward(be, &a, &b, &mut loss)?;
            cka.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))?;
            be.sync()
        })?;
        // K, L forward; dK·A, dL·B backward.
        out.push(Case {
            name,
            what,
            tensor_bytes: 4 * len,
            bytes: io,
            flops: 4.0 * gram,
            sqrt_div_pixels: 0.0,
            rust: t,
        });
    }

    let t = time(|| {
        be.sims_forward(&a, &b, n, m, d, &mut loss)?;
        be.sims_backward(&a, &b, n, m, d, 1.0, Some(&mut da), Some(&mut db))?;
        be.sync()
    })?;
    out.push(Case {
        name: "sims",
        tensor_bytes: 4 * len,
        what: "Sims (token cosine profile)",
        bytes: io,
        flops: 0.0,
        sqrt_div_pixels: 0.0,
        rust: t,
    });

    let mut mg = MultiGranularityLoss::new(be, n, m, d)?;
    let t = time(|| {
        mg.forward(be, &a, &b, &mut loss)?;
        mg.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))?;
        be.sync()
    })?;
    out.push(Case {
        name: "mg",
        tensor_bytes: 4 * len,
        what: "multi-granularity (1 − CKA) + Sims",
        bytes: io,
        flops: 4.0 * gram,
        sqrt_div_pixels: 0.0,
        rust: t,
    });

    for (name, what, kind, products) in [
        (
            "softclip_tau0.005",
            "SoftCLIP, τ = 0.005, rows of 257·768",
            ContrastiveLoss::SoftClip,
            // C_pt, C_tt forward; dC_pt·T̂, dC_ptᵀ·P̂, (dC_tt + dC_ttᵀ)·T̂ backward.
            5.0,
        ),
        (
            "infonce_tau0.005",
            "InfoNCE, τ = 0.005, rows of 257·768",
            ContrastiveLoss::InfoNce,
            // C_pt forward; dC_pt·T̂, dC_ptᵀ·P̂ backward.
            3.0,
        ),
    ] {
        let mut clip = ClipLoss::new(be, n, width, kind, 0.005)?;
        let t = time(|| {
            clip.forward(be, &a, &b, &mut loss)?;
            clip.backward(be, &a, &b, 1.0, Some(&mut da), Some(&mut db))?;
            be.sync()
        })?;
        out.push(Case {
            name,
            what,
            tensor_bytes: 4 * len,
            bytes: io,
            flops: products * gram,
            sqrt_div_pixels: 0.0,
            rust: t,
        });
    }

    // The Sobel loss with the gradient of pred only, as the PyTorch script (target is
    // a fixed latent there).
    let s = LAT;
    let nl = s.len();
    let p = be.upload(&data(nl, 3))?;
    let q = be.upload(&data(nl, 4))?;
    let mut dp = be.alloc(nl)?;
    let t = time(|| {
        be.sobel_loss_forward(&p, &q, &s, SobelLossForm::Magnitude, &mut loss)?;
        be.sobel_loss_backward(
            &p,
            &q,
            &s,
            SobelLossForm::Magnitude,
            1.0,
            Some(&mut dp),
            None,
        )?;
        be.sync()
    })?;
    out.push(Case {
        name: "sobel_loss",
        tensor_bytes: 4 * nl,
        what: "Sobel loss (magnitude), grad of pred",
        bytes: 3.0 * 4.0 * nl as f64,
        flops: 0.0,
        sqrt_div_pixels: nl as f64,
        rust: t,
    });

    // One DDIM step of Versatile Diffusion's scheduler (η = 0, ε prediction).
    let mut ddim = DdimScheduler::new(DdimConfig::versatile_diffusion(
        ScheduleArithmetic::DiffusersF32,
    ))?;
    ddim.set_timesteps(50)?;
    let t_step = ddim.timesteps()[10];
    let mut prev = be.alloc(nl)?;
    let t = time(|| {
        ddim.step(be, &q, t_step, &p, 0.0, None, &mut prev, None)?;
        be.sync()
    })?;
    out.push(Case {
        name: "ddim_step",
        tensor_bytes: 4 * nl,
        what: "DDIM step, η = 0, ε prediction",
        bytes: 3.0 * 4.0 * nl as f64,
        flops: 0.0,
        sqrt_div_pixels: 0.0,
        rust: t,
    });
    Ok(out)
}

/// PyTorch's medians, seconds, by case name.
struct Torch {
    version: String,
    threads: usize,
    median_s: BTreeMap<String, f64>,
}

fn parse_torch(json: &str) -> std::result::Result<Torch, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("PyTorch output is not JSON: {e}"))?;
    let median_s = v["median_s"]
        .as_object()
        .ok_or("PyTorch output has no median_s")?
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
        .collect();
    Ok(Torch {
        version: v["torch"].as_str().unwrap_or("?").to_string(),
        threads: v["threads"].as_u64().unwrap_or(0) as usize,
        median_s,
    })
}

fn run_torch(threads: usize) -> std::result::Result<Torch, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pytorch/time_losses.py");
    let out = Command::new("python3")
        .args([script, "--threads", &threads.to_string()])
        .output()
        .map_err(|e| format!("could not start python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_torch(&String::from_utf8_lossy(&out.stdout))
}

fn ms(d: f64) -> String {
    format!("{:.2}", d * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let torch_json = args
        .iter()
        .position(|a| a == "--torch-json")
        .and_then(|i| args.get(i + 1).cloned());
    let no_torch = args.iter().any(|a| a == "--no-torch");

    let be = benches::cpu_backend();
    let before = MachinePeak::measure();
    eprintln!("{before}");
    let sqrt_div = |threads| {
        (0..3)
            .map(|_| sobel_sqrt_div_pixels_per_sec(threads, 20_000_000))
            .fold(0.0, f64::max)
    };
    let sd_before = sqrt_div(before.threads);
    let cases = match rust_cases(&be) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    };
    let peak = before.best(MachinePeak::measure());
    let sqrt_div_pps = sd_before.max(sqrt_div(peak.threads));
    let torch = if no_torch {
        None
    } else {
        let r = match &torch_json {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{path}: {e}"))
                .and_then(|s| parse_torch(&s)),
            None => run_torch(peak.threads),
        };
        match r {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("PyTorch side not measured: {e}");
                None
            }
        }
    };

    // Copy bandwidth at each tensor size in use (best of 5, after one warm-up).
    let mut sizes: Vec<usize> = cases.iter().map(|c| c.tensor_bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let bw: BTreeMap<usize, f64> = sizes
        .iter()
        .map(|&b| {
            memory_bandwidth_gbs(peak.threads, b, 1);
            (b, memory_bandwidth_gbs(peak.threads, b, 5).0)
        })
        .collect();
    println!("floors: {peak}");
    println!(
        "Sobel loss sqrt/div mix (4 vsqrtps + 1 vdivps per 8 pixels): {:.0} Mpixel/s",
        sqrt_div_pps / 1e6
    );
    for (b, gbs) in &bw {
        println!(
            "copy bandwidth with {:.1} MiB buffers: {gbs:.1} GB/s",
            *b as f64 / (1 << 20) as f64
        );
    }
    if let Some(t) = &torch {
        println!(
            "PyTorch {} eager, float32, {} threads; Rust CPU backend, {} threads\n",
            t.version, t.threads, peak.threads
        );
    }
    println!("| case | Rust ms | PyTorch ms | PyTorch / Rust | floor ms (bound) | floor / Rust |");
    println!("|---|---:|---:|---:|---:|---:|");
    for c in &cases {
        let r = c.rust.as_secs_f64();
        let fl = Floors {
            copy_gbs: bw[&c.tensor_bytes].max(peak.copy_gbs),
            fma_gflops: peak.fma_gflops,
            sqrt_div_pps,
        };
        let f = c.floor_secs(&fl);
        let (tm, ratio) = match torch.as_ref().and_then(|t| t.median_s.get(c.name)) {
            Some(&t) => (ms(t), format!("{:.2}×", t / r)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} | {tm} | {ratio} | {} ({}) | {:.0}% |",
            c.what,
            ms(r),
            ms(f),
            c.bound(&fl),
            100.0 * f / r
        );
    }
}
