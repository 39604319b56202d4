//! A synthetic subject: stimuli with a two-level latent structure (a semantic code
//! and a detail code), "CLIP-like" token targets built from them, early-visual voxels
//! driven by the detail code and high-level voxels by the semantic one, with NSD-like
//! noise (voxel reliability well below 1) and a held-out test split.
//!
//! Deterministic from its seed (Philox normals), so tests and the demo see the same
//! subject on every machine.

use brain_core::philox;
use brain_core::train::Dataset;
use brain_core::Result;

/// Sizes and noise of a synthetic subject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticConfig {
    /// Training stimuli.
    pub n_train: usize,
    /// Held-out stimuli.
    pub n_test: usize,
    /// Early visual (low-level) voxels.
    pub n_low: usize,
    /// High-level voxels.
    pub n_high: usize,
    /// Semantic code size.
    pub semantic_dim: usize,
    /// Detail code size.
    pub detail_dim: usize,
    /// CLIP text tokens.
    pub text_tokens: usize,
    /// CLIP image tokens.
    pub image_tokens: usize,
    /// CLIP width.
    pub embed_dim: usize,
    /// Latent side (latents are `[4, side, side]`).
    pub latent_size: usize,
    /// Share of each voxel's variance that is signal (NSD's is often 0.1–0.4).
    pub reliability: f64,
    /// Seed of everything.
    pub seed: u64,
}

impl SyntheticConfig {
    /// Small enough for tests and the demo, with the shapes of the `small` presets.
    pub fn small(seed: u64) -> Self {
        SyntheticConfig {
            n_train: 480,
            n_test: 100,
            n_low: 96,
            n_high: 64,
            semantic_dim: 12,
            detail_dim: 12,
            text_tokens: 5,
            image_tokens: 9,
            embed_dim: 16,
            latent_size: 16,
            reliability: 0.3,
            seed,
        }
    }

    /// F_D width: low-level and high-level voxels (all of "nsdgeneral").
    pub fn n_detail(&self) -> usize {
        self.n_low + self.n_high
    }
}

/// Train and test splits with arrays `f_s`, `f_d`, `f_low`, `f_high` (voxels),
/// `e_t`, `e_is`, `e_id` (BrainMCLIP targets), `e_img`, `e_cap`, `z` (HAVIR targets).
pub struct SyntheticSubject {
    /// Training split.
    pub train: Dataset,
    /// Held-out split.
    pub test: Dataset,
}

/// Standard normals from Philox stream `(seed, stream)`.
fn normals(seed: u64, stream: u64, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|k| {
            let (a, _) = philox::box_muller::<f64>(
                philox::word(seed, stream, 2 * k),
                philox::word(seed, stream, 2 * k + 1),
            );
            a
        })
        .collect()
}

/// `out[n, rows] = codes[n, k] · W[k, rows]`, W standard normal / √k.
fn project(codes: &[f64], n: usize, k: usize, w: &[f64], rows: usize) -> Vec<f64> {
    let s = 1.0 / (k as f64).sqrt();
    let mut out = vec![0.0; n * rows];
    for i in 0..n {
        for j in 0..k {
            let c = codes[i * k + j] * s;
            for r in 0..rows {
                out[i * rows + r] += c * w[j * rows + r];
            }
        }
    }
    out
}

/// The subject of `cfg`.
pub fn generate(cfg: &SyntheticConfig) -> Result<SyntheticSubject> {
    let n = cfg.n_train + cfg.n_test;
    let (ks, kd) = (cfg.semantic_dim, cfg.detail_dim);
    let seed = cfg.seed;
    let sem = normals(seed, 1, n * ks);
    let det = normals(seed, 2, n * kd);
    // Detail code mixed with some semantics, as intermediate CLIP layers carry both.
    let mut mix = vec![0.0; n * kd];
    for i in 0..n {
        for j in 0..kd {
            mix[i * kd + j] = det[i * kd + j] * 0.8 + sem[i * ks + j % ks] * 0.6;
        }
    }
    let (tt, ti, d) = (cfg.text_tokens, cfg.image_tokens, cfg.embed_dim);
    let token_noise = |stream: u64, len: usize, scale: f64| -> Vec<f64> {
        normals(seed, stream, len)
            .into_iter()
            .map(|v| v * scale)
            .collect()
    };
    let add =
        |a: Vec<f64>, b: Vec<f64>| -> Vec<f64> { a.iter().zip(&b).map(|(x, y)| x + y).collect() };
    let e_t = add(
        project(&sem, n, ks, &normals(seed, 10, ks * tt * d), tt * d),
        token_noise(20, n * tt * d, 0.3),
    );
    let e_is = add(
        project(&sem, n, ks, &normals(seed, 11, ks * ti * d), ti * d),
        token_noise(21, n * ti * d, 0.3),
    );
    let e_id = add(
        project(&mix, n, kd, &normals(seed, 12, kd * ti * d), ti * d),
        token_noise(22, n * ti * d, 0.3),
    );
    // Latents: smooth images, a sum of low-frequency patterns weighted by the detail code.
    let l = cfg.latent_size;
    let freqs = normals(seed, 13, kd * 4 * 3);
    let mut z = vec![0.0; n * 4 * l * l];
    for i in 0..n {
        for j in 0..kd {
            let c = det[i * kd + j] / (kd as f64).sqrt();
            for ch in 0..4 {
                let f = &freqs[(j * 4 + ch) * 3..(j * 4 + ch) * 3 + 3];
                for y in 0..l {
                    for x in 0..l {
                        let (u, v) = (x as f64 / l as f64, y as f64 / l as f64);
                        z[((i * 4 + ch) * l + y) * l + x] +=
                            c * (3.0 * f[0] * u + 3.0 * f[1] * v + f[2]).sin();
                    }
                }
            }
        }
    }
    // Voxels: low-level from the detail code, high-level from the semantic code, each
    // standardised signal·√r + noise·√(1 − r).
    let r = cfg.reliability;
    let voxels = |codes: &[f64], k: usize, count: usize, ws: u64, ns: u64| -> Vec<f64> {
        let sig = project(codes, n, k, &normals(seed, ws, k * count), count);
        let noise = normals(seed, ns, n * count);
        sig.iter()
            .zip(&noise)
            .map(|(s, e)| s * r.sqrt() + e * (1.0 - r).sqrt())
            .collect()
    };
    let f_low = voxels(&det, kd, cfg.n_low, 14, 24);
    let f_high = voxels(&sem, ks, cfg.n_high, 15, 25);
    let f_d: Vec<f64> = (0..n)
        .flat_map(|i| {
            f_low[i * cfg.n_low..(i + 1) * cfg.n_low]
                .iter()
                .chain(&f_high[i * cfg.n_high..(i + 1) * cfg.n_high])
                .copied()
                .collect::<Vec<_>>()
        })
        .collect();
    let e_img: Vec<f64> = e_is.clone();
    let arrays: [(&str, usize, &[f64]); 10] = [
        ("f_s", cfg.n_high, &f_high),
        ("f_d", cfg.n_detail(), &f_d),
        ("f_low", cfg.n_low, &f_low),
        ("f_high", cfg.n_high, &f_high),
        ("e_t", tt * d, &e_t),
        ("e_is", ti * d, &e_is),
        ("e_id", ti * d, &e_id),
        ("e_img", ti * d, &e_img),
        ("e_cap", tt * d, &e_t),
        ("z", 4 * l * l, &z),
    ];
    let split = |from: usize, to: usize| -> Result<Dataset> {
        let mut ds = Dataset::new(to - from);
        for (name, w, data) in arrays {
            ds.insert(
                name,
                w,
                data[from * w..to * w].iter().map(|&v| v as f32).collect(),
            )?;
        }
        Ok(ds)
    };
    Ok(SyntheticSubject {
        train: split(0, cfg.n_train)?,
        test: split(cfg.n_train, n)?,
    })
}
