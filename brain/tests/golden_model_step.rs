//! Point 7 of the models issue: one training step of each model matches the same step
//! in PyTorch on identical weights and batch. Golden data: `conformance/golden/models/`,
//! written by `conformance/golden/make_models.py` (float64 PyTorch autograd).
//!
//! Checked on the f64 reference backend (tight: only summation order differs) and the
//! f32 CPU backend (float32 rounding through ~10 layers and the losses).

use backend_cpu::CpuBackend;
use brain_core::model::{BrainMclip, Havir, Model, ModelConfig};
use brain_core::nn::Mode;
use brain_core::reference::ReferenceBackend;
use brain_core::{Backend, Element};
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/golden/models")
}

fn f64s(st: &SafeTensors<'_>, key: &str) -> Vec<f64> {
    let t = st
        .tensor(key)
        .unwrap_or_else(|_| panic!("golden file lacks `{key}`"));
    assert_eq!(t.dtype(), Dtype::F64, "{key}");
    t.data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// max |a − b| / (atol + rtol·max|b|) must be ≤ 1, over the whole tensor.
fn assert_close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f64, f64::max);
    assert!(
        worst <= atol + rtol * scale,
        "{what}: max abs error {worst:e} over a tensor of max magnitude {scale:e} (atol {atol:e}, rtol {rtol:e})"
    );
}

fn run_step<B: Backend, M: Model<B>>(
    be: &B,
    model: &mut M,
    st: &SafeTensors<'_>,
    atol: f64,
    rtol: f64,
) {
    // Weights.
    let infos = model.params().infos().to_vec();
    for info in &infos {
        let v: Vec<B::Elem> = f64s(st, &format!("param.{}", info.name))
            .into_iter()
            .map(B::Elem::from_f64)
            .collect();
        model
            .params_mut()
            .load(be, &info.name, &info.shape, &v)
            .unwrap();
    }
    let mut acts = model.acts(be, batch_of(st, model)).unwrap();
    for (i, slot) in model.slots().iter().enumerate() {
        let prefix = if slot.target { "target" } else { "input" };
        let v: Vec<B::Elem> = f64s(st, &format!("{prefix}.{}", slot.name))
            .into_iter()
            .map(B::Elem::from_f64)
            .collect();
        be.write(model.slot_mut(&mut acts, i), &v).unwrap();
    }
    let mode = Mode::Train { seed: 0, step: 0 }; // dropout is 0 in the golden configs
    model.forward(be, &mut acts, mode).unwrap();
    let loss = model.loss(be, &mut acts).unwrap();
    assert_close("loss", &[loss.total], &f64s(st, "loss"), atol, rtol);
    for (name, buf) in model.outputs(&acts) {
        let key = format!("output.{name}");
        if st.tensor(&key).is_err() {
            continue;
        }
        let got: Vec<f64> = be
            .download_vec(buf)
            .unwrap()
            .iter()
            .map(|v| v.to_f64())
            .collect();
        assert_close(&key, &got, &f64s(st, &key), atol, rtol);
    }
    model.backward(be, &mut acts, mode).unwrap();
    for info in &infos {
        let id = model.params().find(&info.name).unwrap();
        let got: Vec<f64> = be
            .download_vec(model.params().grad(id))
            .unwrap()
            .iter()
            .map(|v| v.to_f64())
            .collect();
        assert_close(
            &format!("grad.{}", info.name),
            &got,
            &f64s(st, &format!("grad.{}", info.name)),
            atol,
            rtol,
        );
    }
}

fn batch_of<B: Backend, M: Model<B>>(st: &SafeTensors<'_>, model: &M) -> usize {
    let first = &model.slots()[0];
    f64s(st, &format!("input.{}", first.name)).len() / first.width
}

fn check_file(file: &str) {
    let bytes = std::fs::read(golden_dir().join(file)).expect("golden file");
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let cfg: ModelConfig =
        serde_json::from_str(&header.metadata().as_ref().unwrap()["config"]).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    // f64 reference: same maths, different summation order → ~1e-13 relative.
    let r = ReferenceBackend::<f64>::new();
    // f32 CPU: float32 rounding (ε ≈ 6e-8) through ~10 layers and reductions over
    // ≤ 320 terms; 1e-4 of the tensor's scale is ~10³ ε, far below any real error.
    let c = CpuBackend::new();
    match cfg {
        ModelConfig::BrainMclip(cfg) => {
            run_step(
                &r,
                &mut BrainMclip::new(&r, cfg, 0).unwrap(),
                &st,
                1e-12,
                1e-10,
            );
            run_step(
                &c,
                &mut BrainMclip::new(&c, cfg, 0).unwrap(),
                &st,
                1e-6,
                1e-4,
            );
        }
        ModelConfig::Havir(cfg) => {
            run_step(&r, &mut Havir::new(&r, cfg, 0).unwrap(), &st, 1e-12, 1e-10);
            run_step(&c, &mut Havir::new(&c, cfg, 0).unwrap(), &st, 1e-6, 1e-4);
        }
    }
}

#[test]
fn brainmclip_full_mg_matches_pytorch() {
    check_file("brainmclip_full_mg.safetensors");
}

#[test]
fn brainmclip_full_mse_infonce_matches_pytorch() {
    check_file("brainmclip_full_mse_infonce.safetensors");
}

#[test]
fn brainmclip_semantic_lowrank_softclip_matches_pytorch() {
    check_file("brainmclip_semantic_lowrank_softclip.safetensors");
}

#[test]
fn havir_matches_pytorch() {
    check_file("havir.safetensors");
}
