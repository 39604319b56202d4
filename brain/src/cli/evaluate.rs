//! Held-out metrics of a trained model: retrieval and two-way identification of the
//! predicted embeddings (as MindEye and Brain-Diffuser report them), PixCorr of the
//! predicted latents.

use crate::error::{Error, Result};
use brain_core::metrics::identification::two_way_identification;
use brain_core::metrics::pixcorr::pixcorr;
use brain_core::metrics::retrieval::retrieval_top1;
use brain_core::model::{Model, ModelConfig};
use brain_core::train::{predict, Dataset};
use brain_core::Backend;

/// One metric: name, value, what chance gives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    /// e.g. `image retrieval brain→image`.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Its value for an untrained model, for the table.
    pub chance: Option<f64>,
}

fn missing(name: &str) -> Error {
    Error::Core(brain_core::BrainError::InvalidArgument {
        op: "evaluate",
        reason: format!("the held-out data has no `{name}` array"),
    })
}

fn embedding_metrics(
    out: &mut Vec<Metric>,
    label: &str,
    pred: &[f32],
    target: &[f32],
    n: usize,
    d: usize,
) -> Result<()> {
    let r = retrieval_top1(pred, target, n, d)?;
    let two = two_way_identification(pred, target, n, d)?;
    let chance = 1.0 / n as f64;
    out.push(Metric {
        name: format!("{label} top-1 brain→stimulus"),
        value: r.forward,
        chance: Some(chance),
    });
    out.push(Metric {
        name: format!("{label} top-1 stimulus→brain"),
        value: r.backward,
        chance: Some(chance),
    });
    out.push(Metric {
        name: format!("{label} two-way identification"),
        value: two.mean,
        chance: Some(0.5),
    });
    Ok(())
}

/// Every metric of `model` on `data`.
pub fn held_out_metrics<B: Backend, M: Model<B>>(
    be: &B,
    model: &M,
    data: &Dataset,
    batch: usize,
) -> Result<Vec<Metric>> {
    let outputs = predict(be, model, data, batch)?;
    let get_out = |name: &str| {
        outputs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| missing(name))
    };
    let get = |name: &str| data.get(name).ok_or_else(|| missing(name));
    let n = data.len();
    let mut m = Vec::new();
    match model.config() {
        ModelConfig::BrainMclip(_) => {
            let (e_t, wt) = get("e_t")?;
            embedding_metrics(&mut m, "text Ê_T", get_out("e_t_hat")?, e_t, n, wt)?;
            if let Ok(e_i_hat) = get_out("e_i_hat") {
                let (e_is, wi) = get("e_is")?;
                let (e_id, _) = get("e_id")?;
                let e_i: Vec<f32> = e_is.iter().zip(e_id).map(|(a, b)| (a + b) / 2.0).collect();
                embedding_metrics(&mut m, "image Ê_I", e_i_hat, &e_i, n, wi)?;
            }
        }
        ModelConfig::Havir(_) => {
            let (z, wz) = get("z")?;
            let pc = pixcorr(get_out("z_prime")?, z, n, wz)?;
            m.push(Metric {
                name: "latent z' PixCorr".into(),
                value: pc.mean,
                chance: Some(0.0),
            });
            let (e_img, wi) = get("e_img")?;
            embedding_metrics(&mut m, "image e'_img", get_out("e_img")?, e_img, n, wi)?;
            let (e_cap, wc) = get("e_cap")?;
            embedding_metrics(&mut m, "text e'_cap", get_out("e_cap")?, e_cap, n, wc)?;
        }
    }
    Ok(m)
}
