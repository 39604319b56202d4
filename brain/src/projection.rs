//! CLIP's vision output head, to bring raw hidden states into Versatile Diffusion's
//! token space (SPEC §5): `z = visual_projection(post_layernorm(h))` for every token of
//! a hidden state `h [257, 1024]`, then every token divided by ‖z[0]‖ (the CLS token).
//! The weights come from the CLIP vision model's safetensors file.

use crate::error::{Error, Result};
use backend_cpu::CpuBackend;
use brain_core::Backend;
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// LayerNorm eps of CLIP's post_layernorm (Hugging Face `layer_norm_eps`).
pub const CLIP_LN_EPS: f64 = 1e-5;

/// Keys tried for each tensor, with and without the `vision_model.` prefix.
const LN_WEIGHT: [&str; 2] = [
    "vision_model.post_layernorm.weight",
    "post_layernorm.weight",
];
const LN_BIAS: [&str; 2] = ["vision_model.post_layernorm.bias", "post_layernorm.bias"];
const PROJ: [&str; 2] = [
    "visual_projection.weight",
    "vision_model.visual_projection.weight",
];

/// post_layernorm (γ, β over `d_in`) and visual_projection (`[d_out, d_in]`, no bias).
pub struct ClipProjection {
    /// The file the weights came from.
    pub path: PathBuf,
    /// Hidden width (1024 for ViT-L/14).
    pub d_in: usize,
    /// Embedding width (768).
    pub d_out: usize,
    ln_weight: Vec<f32>,
    ln_bias: Vec<f32>,
    proj: Vec<f32>,
}

fn tensor(path: &Path, st: &SafeTensors<'_>, keys: &[&str]) -> Result<(Vec<usize>, Vec<f32>)> {
    let (key, t) = keys
        .iter()
        .find_map(|k| st.tensor(k).ok().map(|t| (*k, t)))
        .ok_or_else(|| Error::format(path, format!("no tensor named {}", keys.join(" or "))))?;
    let d = t.data();
    let data: Vec<f32> = match t.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::format(
                path,
                format!("`{key}` is {other:?}; expected F32, F16 or BF16"),
            ))
        }
    };
    Ok((t.shape().to_vec(), data))
}

impl ClipProjection {
    /// Read the two tensors of `path` (a CLIP vision `model.safetensors`).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
        let (ws, ln_weight) = tensor(path, &st, &LN_WEIGHT)?;
        let (bs, ln_bias) = tensor(path, &st, &LN_BIAS)?;
        let (ps, proj) = tensor(path, &st, &PROJ)?;
        match (ws.as_slice(), bs.as_slice(), ps.as_slice()) {
            ([a], [b], [o, i]) if a == b && b == i => Ok(ClipProjection {
                path: path.to_path_buf(),
                d_in: *i,
                d_out: *o,
                ln_weight,
                ln_bias,
                proj,
            }),
            _ => Err(Error::format(
                path,
                format!(
                    "post_layernorm {ws:?}/{bs:?} and visual_projection {ps:?} do not fit together"
                ),
            )),
        }
    }

    /// `[n, tokens, d_in]` hidden states → `[n, tokens, d_out]` tokens, each sample
    /// divided by the norm of its projected first token.
    pub fn apply(&self, hidden: &[f32], n: usize, tokens: usize) -> Result<Vec<f32>> {
        let rows = n * tokens;
        let be = CpuBackend::new();
        let x = be.upload(hidden)?;
        let (g, b, w) = (
            be.upload(&self.ln_weight)?,
            be.upload(&self.ln_bias)?,
            be.upload(&self.proj)?,
        );
        let (mut ln, mut mean, mut rstd) = (
            be.alloc(rows * self.d_in)?,
            be.alloc(rows)?,
            be.alloc(rows)?,
        );
        be.layernorm_forward(
            &x,
            &g,
            &b,
            &mut ln,
            &mut mean,
            &mut rstd,
            rows,
            self.d_in,
            CLIP_LN_EPS,
        )?;
        let mut z = be.alloc(rows * self.d_out)?;
        be.linear_forward(&ln, &w, None, &mut z, rows, self.d_in, self.d_out)?;
        let mut out = be.download_vec(&z)?;
        let d = self.d_out;
        for sample in out.chunks_exact_mut(tokens * d) {
            let norm = sample[..d]
                .iter()
                .map(|v| (*v as f64) * (*v as f64))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 {
                return Err(Error::format(
                    &self.path,
                    "a projected CLS token is zero: cannot normalise",
                ));
            }
            let inv = (1.0 / norm) as f32;
            sample.iter_mut().for_each(|v| *v *= inv);
        }
        Ok(out)
    }
}
