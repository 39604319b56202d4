//! The shape sets every case is run at: `tiny` (tests and CI), `small` (a laptop in
//! seconds) and `paper` (NSD scale, SPEC §4–5).
//!
//! | set | GEMM | Linear rows×in→out | tokens [n, T, D] | latents [n, C, H, W] | models (batch) |
//! |---|---|---|---|---|---|
//! | tiny | 32³ | 4×64→32 | [4, 9, 16] | [2, 4, 8, 8] | `small` presets, few voxels (4) |
//! | small | 512³ | 16×2048→512 | [16, 65, 256] | [16, 4, 32, 32] | `small` presets, synthetic subject (16) |
//! | paper | 2048³ | 32×15724→2240 | [32, 257, 768] | [32, 4, 64, 64] | `paper` presets (16) |
//!
//! In `paper`, the Linear is BrainMCLIP's detail encoder (all 15,724 nsdgeneral voxels
//! of subject 1 into its hidden width), the token tensors are CLIP ViT-L/14 hidden
//! states (SPEC: losses at (32, 257, 768)), the latents Versatile Diffusion's VAE
//! latents (Sobel loss, DDIM step), GroupNorm and upsampling are HAVIR's structural
//! generator ([32, 64, 16, 16] → ×4), and the row kernels (LayerNorm, bias,
//! reductions) run over the 32·257 token rows of width 768.

use brain_core::model::{Align, BrainMclipConfig, HavirConfig};
use brain_core::{GroupNormShape, ImageShape, UpsampleShape};
use std::fmt;
use std::str::FromStr;

/// A named shape set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShapeSet {
    /// Smallest valid shapes: the report's own test, CI.
    Tiny,
    /// Moderate shapes and the `small` model presets.
    Small,
    /// NSD scale and the `paper` model presets.
    Paper,
}

impl ShapeSet {
    /// The sets in increasing size.
    pub const ALL: [ShapeSet; 3] = [ShapeSet::Tiny, ShapeSet::Small, ShapeSet::Paper];

    /// `tiny`, `small` or `paper`.
    pub fn name(self) -> &'static str {
        match self {
            ShapeSet::Tiny => "tiny",
            ShapeSet::Small => "small",
            ShapeSet::Paper => "paper",
        }
    }

    /// The shapes of this set.
    pub fn shapes(self) -> Shapes {
        match self {
            ShapeSet::Tiny => Shapes::tiny(),
            ShapeSet::Small => Shapes::small(),
            ShapeSet::Paper => Shapes::paper(),
        }
    }

    /// Parse `small`, `paper`, `tiny` or `both` (small and paper).
    pub fn parse_list(s: &str) -> Result<Vec<ShapeSet>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "both" {
                out.extend([ShapeSet::Small, ShapeSet::Paper]);
            } else if part == "all" {
                out.extend(ShapeSet::ALL);
            } else {
                out.push(part.parse()?);
            }
        }
        out.sort_unstable();
        out.dedup();
        if out.is_empty() {
            return Err("no shape set given".into());
        }
        Ok(out)
    }
}

impl fmt::Display for ShapeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ShapeSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tiny" => Ok(ShapeSet::Tiny),
            "small" => Ok(ShapeSet::Small),
            "paper" => Ok(ShapeSet::Paper),
            other => Err(format!(
                "unknown shape set {other:?} (tiny, small, paper, both)"
            )),
        }
    }
}

/// Every dimension the cases of one set use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shapes {
    /// Which set.
    pub set: ShapeSet,
    /// Square-ish GEMM `m, n, k` (all three transposes).
    pub gemm: (usize, usize, usize),
    /// Linear `rows, in_features, out_features`.
    pub linear: (usize, usize, usize),
    /// Row kernels (LayerNorm, bias, reductions): `rows, cols`.
    pub rows_cols: (usize, usize),
    /// Element-wise kernels, activations, dropout and the random fills: elements.
    pub elems: usize,
    /// GroupNorm.
    pub groupnorm: GroupNormShape,
    /// Upsampling (nearest and bilinear).
    pub upsample: UpsampleShape,
    /// Token tensors `[batch, tokens, dim]` of the losses.
    pub tokens: (usize, usize, usize),
    /// Latents of the Sobel kernels and the diffusion arithmetic.
    pub latents: ImageShape,
    /// AdamW: number of tensors and parameters in all.
    pub adamw: (usize, usize),
    /// BrainMCLIP's configuration.
    pub brainmclip: BrainMclipConfig,
    /// HAVIR's configuration.
    pub havir: HavirConfig,
    /// Batch of the model training steps.
    pub model_batch: usize,
}

impl Shapes {
    /// Test and CI shapes: every kernel valid (n > 3 for the unbiased HSIC), nothing
    /// larger than a few thousand elements.
    pub fn tiny() -> Self {
        let mut brainmclip = BrainMclipConfig::small(16, 32);
        brainmclip.hidden = 32;
        let mut havir = HavirConfig::small(24, 16);
        havir.hidden = 32;
        Shapes {
            set: ShapeSet::Tiny,
            gemm: (32, 32, 32),
            linear: (4, 64, 32),
            rows_cols: (16, 64),
            elems: 4096,
            groupnorm: GroupNormShape {
                batch: 2,
                channels: 8,
                spatial: 16,
                groups: 4,
            },
            upsample: UpsampleShape {
                batch: 2,
                channels: 4,
                height: 4,
                width: 4,
                factor: 4,
            },
            tokens: (4, 9, 16),
            latents: ImageShape {
                batch: 2,
                channels: 4,
                height: 8,
                width: 8,
            },
            adamw: (4, 4096),
            brainmclip,
            havir,
            model_batch: 4,
        }
    }

    /// Moderate shapes; the models at their `small` presets with the synthetic
    /// subject's voxel counts (64 high-level, 96 early-visual, 160 in all).
    pub fn small() -> Self {
        Shapes {
            set: ShapeSet::Small,
            gemm: (512, 512, 512),
            linear: (16, 2048, 512),
            rows_cols: (16 * 65, 256),
            elems: 16 * 65 * 256,
            groupnorm: GroupNormShape {
                batch: 16,
                channels: 64,
                spatial: 256,
                groups: 32,
            },
            upsample: UpsampleShape {
                batch: 16,
                channels: 16,
                height: 16,
                width: 16,
                factor: 4,
            },
            tokens: (16, 65, 256),
            latents: ImageShape {
                batch: 16,
                channels: 4,
                height: 32,
                width: 32,
            },
            adamw: (8, 1 << 20),
            brainmclip: BrainMclipConfig::small(64, 160),
            havir: HavirConfig::small(96, 64),
            model_batch: 16,
        }
    }

    /// NSD scale (see the module table). The models are the `paper` presets as they
    /// are (BrainMCLIP 0.74B parameters aligned with MSE + CKA + Sims, HAVIR 0.60B),
    /// batch 16 as `benches/pytorch/time_model_step.py` and BENCHMARKS.md use.
    pub fn paper() -> Self {
        let (n, t, d) = (32, 257, 768);
        Shapes {
            set: ShapeSet::Paper,
            gemm: (2048, 2048, 2048),
            linear: (n, 15724, 2240),
            rows_cols: (n * t, d),
            elems: n * t * d,
            groupnorm: GroupNormShape {
                batch: n,
                channels: 64,
                spatial: 16 * 16,
                groups: 32,
            },
            upsample: UpsampleShape {
                batch: n,
                channels: 64,
                height: 16,
                width: 16,
                factor: 4,
            },
            tokens: (n, t, d),
            latents: ImageShape {
                batch: n,
                channels: 4,
                height: 64,
                width: 64,
            },
            adamw: (8, 64 << 20),
            brainmclip: BrainMclipConfig {
                align: Align::MseCkaSims,
                ..BrainMclipConfig::paper()
            },
            havir: HavirConfig::paper(),
            model_batch: 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_parse() {
        assert_eq!(
            ShapeSet::parse_list("both").unwrap(),
            vec![ShapeSet::Small, ShapeSet::Paper]
        );
        assert_eq!(
            ShapeSet::parse_list("paper,tiny").unwrap(),
            vec![ShapeSet::Tiny, ShapeSet::Paper]
        );
        assert!(ShapeSet::parse_list("huge").is_err());
    }

    #[test]
    fn model_configs_are_valid() {
        for s in ShapeSet::ALL {
            let sh = s.shapes();
            sh.brainmclip.validate().unwrap();
            sh.havir.validate().unwrap();
        }
    }
}
