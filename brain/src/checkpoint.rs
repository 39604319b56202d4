//! Safetensors checkpoints: every parameter under its PyTorch `state_dict` key
//! (docs/models.md), the AdamW moments under `optimizer.<key>.exp_avg` /
//! `optimizer.<key>.exp_avg_sq`, and in the metadata the model config, the optimizer
//! settings and the training state as JSON.
//!
//! Files are written to a temporary sibling, flushed to disk and renamed, so a crash
//! never leaves a half-written checkpoint under the real name.

use crate::error::{Error, Result};
use brain_core::model::{Model, ModelConfig};
use brain_core::train::{AdamWState, TrainState};
use brain_core::{AdamW, Backend, Element};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// `format` metadata value of files this module writes.
pub const FORMAT: &str = "brain-decode checkpoint v1";

fn to_bytes<T: Element>(v: &[T]) -> (Dtype, Vec<u8>) {
    if std::mem::size_of::<T>() == 4 {
        let b = v
            .iter()
            .flat_map(|x| (Element::to_f64(*x) as f32).to_le_bytes())
            .collect();
        (Dtype::F32, b)
    } else {
        let b = v
            .iter()
            .flat_map(|x| Element::to_f64(*x).to_le_bytes())
            .collect();
        (Dtype::F64, b)
    }
}

fn from_view<T: Element>(path: &Path, name: &str, t: &TensorView<'_>) -> Result<Vec<T>> {
    let d = t.data();
    match t.dtype() {
        Dtype::F32 => Ok(d
            .chunks_exact(4)
            .map(|c| T::from_f64(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect()),
        Dtype::F64 => Ok(d
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                T::from_f64(f64::from_le_bytes(a))
            })
            .collect()),
        other => Err(Error::format(
            path,
            format!("tensor `{name}` is {other:?}; checkpoints hold F32 or F64"),
        )),
    }
}

fn optimizer_json(cfg: &AdamW, step: u64) -> serde_json::Value {
    serde_json::json!({
        "lr": cfg.lr, "beta1": cfg.beta1, "beta2": cfg.beta2, "eps": cfg.eps,
        "weight_decay": cfg.weight_decay, "max_grad_norm": cfg.max_grad_norm, "step": step,
    })
}

/// Write `bytes` to `path` atomically (temporary sibling, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::format(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Save the model (and, for training, its optimizer and state) to `path`.
pub fn save<B: Backend, M: Model<B>>(
    path: &Path,
    be: &B,
    model: &M,
    opt: Option<&AdamWState<B>>,
    state: &TrainState,
) -> Result<()> {
    let ps = model.params();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, info) in ps.infos().iter().enumerate() {
        let host = be.download_vec(&ps.values()[i])?;
        let (dt, b) = to_bytes(&host);
        tensors.push((info.name.clone(), dt, info.shape.clone(), b));
        if let Some(opt) = opt {
            let (m, v) = opt.moments();
            for (suffix, buf) in [("exp_avg", &m[i]), ("exp_avg_sq", &v[i])] {
                let (dt, b) = to_bytes(&be.download_vec(buf)?);
                tensors.push((
                    format!("optimizer.{}.{suffix}", info.name),
                    dt,
                    info.shape.clone(),
                    b,
                ));
            }
        }
    }
    let views = tensors
        .iter()
        .map(|(n, dt, shape, b)| {
            TensorView::new(*dt, shape.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::format(path, format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    let json = |e: serde_json::Error| Error::format(path, format!("cannot encode metadata: {e}"));
    meta.insert(
        "config".into(),
        serde_json::to_string(&model.config()).map_err(json)?,
    );
    meta.insert(
        "train_state".into(),
        serde_json::to_string(state).map_err(json)?,
    );
    if let Some(opt) = opt {
        meta.insert(
            "optimizer".into(),
            optimizer_json(&opt.cfg, opt.step).to_string(),
        );
    }
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::format(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)
}

/// A checkpoint read into memory.
pub struct Checkpoint {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
}

impl Checkpoint {
    /// Read and validate the header of `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "metadata `format` is not \"{FORMAT}\": not a checkpoint of this library"
                    ),
                ))
            }
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            bytes,
            meta,
        })
    }

    fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T> {
        let s = self
            .meta
            .get(key)
            .ok_or_else(|| Error::format(&self.path, format!("metadata has no `{key}`")))?;
        serde_json::from_str(s)
            .map_err(|e| Error::format(&self.path, format!("metadata `{key}`: {e}")))
    }

    /// The model configuration.
    pub fn config(&self) -> Result<ModelConfig> {
        self.meta_json("config")
    }

    /// The training state.
    pub fn train_state(&self) -> Result<TrainState> {
        self.meta_json("train_state")
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| Error::format(&self.path, format!("not a safetensors file: {e}")))
    }

    /// Load every parameter of `model` (names and shapes must match).
    pub fn load_params<B: Backend, M: Model<B>>(&self, be: &B, model: &mut M) -> Result<()> {
        if self.config()? != model.config() {
            return Err(Error::format(
                &self.path,
                "the checkpoint's config differs from the model's",
            ));
        }
        let st = self.tensors()?;
        let infos = model.params().infos().to_vec();
        for info in &infos {
            let t = st.tensor(&info.name).map_err(|_| {
                Error::format(&self.path, format!("missing parameter `{}`", info.name))
            })?;
            let data = from_view::<B::Elem>(&self.path, &info.name, &t)?;
            model
                .params_mut()
                .load(be, &info.name, t.shape(), &data)
                .map_err(|e| Error::format(&self.path, e.to_string()))?;
        }
        Ok(())
    }

    /// Load the parameters, the optimizer moments and step, and return the training
    /// state: everything a bit-identical resume needs.
    pub fn load_training<B: Backend, M: Model<B>>(
        &self,
        be: &B,
        model: &mut M,
        opt: &mut AdamWState<B>,
    ) -> Result<TrainState> {
        self.load_params(be, model)?;
        let o: serde_json::Value = self.meta_json("optimizer")?;
        opt.step = o["step"]
            .as_u64()
            .ok_or_else(|| Error::format(&self.path, "optimizer.step is missing"))?;
        let st = self.tensors()?;
        let infos = model.params().infos().to_vec();
        let (m, v) = opt.moments_mut();
        for (i, info) in infos.iter().enumerate() {
            for (suffix, buf) in [("exp_avg", &mut m[i]), ("exp_avg_sq", &mut v[i])] {
                let key = format!("optimizer.{}.{suffix}", info.name);
                let t = st
                    .tensor(&key)
                    .map_err(|_| Error::format(&self.path, format!("missing `{key}`")))?;
                if t.shape() != info.shape.as_slice() {
                    return Err(Error::format(
                        &self.path,
                        format!("`{key}` has the wrong shape"),
                    ));
                }
                be.write(buf, &from_view::<B::Elem>(&self.path, &key, &t)?)?;
            }
        }
        self.train_state()
    }
}
