//! The subject-folder commands end to end on the synthetic subject written to disk:
//! synth → inspect → train (both models) → eval → predict → explain.

use brain::cli::{run, BackendChoice, Cli, Command, ModelKind, Preset};
use brain::io::nifti::read_volume;
use brain::io::npy::read_info;
use std::path::Path;

fn cli(command: Command) -> brain::Result<()> {
    run(Cli {
        backend: BackendChoice::Cpu,
        command,
    })
}

fn train(data: &Path, model: ModelKind, out: &Path) -> brain::Result<()> {
    cli(Command::Train {
        data: data.into(),
        model,
        preset: Preset::Small,
        epochs: 3,
        batch: 32,
        lr: 3e-3,
        seed: 2,
        out: out.into(),
        no_zscore: false,
    })
}

#[test]
fn subject_folder_to_trained_runs_predictions_and_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("subj");
    cli(Command::Synth {
        out: data.clone(),
        seed: 4,
    })
    .unwrap();
    cli(Command::Inspect { data: data.clone() }).unwrap();

    let (mclip, havir) = (tmp.path().join("mclip"), tmp.path().join("havir"));
    train(&data, ModelKind::Brainmclip, &mclip).unwrap();
    train(&data, ModelKind::Havir, &havir).unwrap();
    for run_dir in [&mclip, &havir] {
        cli(Command::Eval {
            run: run_dir.clone(),
            data: data.clone(),
        })
        .unwrap();
        assert!(run_dir.join("eval.json").is_file());
    }

    let pred = tmp.path().join("pred");
    cli(Command::Predict {
        run: mclip.clone(),
        data: data.clone(),
        split: "test".into(),
        out: pred.clone(),
    })
    .unwrap();
    assert_eq!(
        read_info(&pred.join("e_i_hat.npy")).unwrap().shape,
        vec![100, 9, 16]
    );
    assert_eq!(
        read_info(&pred.join("e_t_hat.npy")).unwrap().shape,
        vec![100, 5, 16]
    );
    cli(Command::Predict {
        run: havir.clone(),
        data: data.clone(),
        split: "test".into(),
        out: pred.clone(),
    })
    .unwrap();
    assert_eq!(
        read_info(&pred.join("z_prime.npy")).unwrap().shape,
        vec![100, 4, 16, 16]
    );

    let maps = tmp.path().join("maps");
    cli(Command::Explain {
        run: havir.clone(),
        data: data.clone(),
        out: maps.clone(),
    })
    .unwrap();
    let v = read_volume(&maps.join("structural_contributions.nii.gz")).unwrap();
    // One non-zero value per low-level voxel of the synthetic subject (96).
    assert_eq!(v.values.iter().filter(|&&x| x > 0.0).count(), 96);
    assert!(maps.join("structural_contributions.png").is_file());
    assert!(maps.join("semantic_contributions.nii.gz").is_file());

    // explain is HAVIR's: a BrainMCLIP run is refused with the file named.
    let e = cli(Command::Explain {
        run: mclip.clone(),
        data: data.clone(),
        out: maps.clone(),
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("checkpoint.safetensors") && e.to_string().contains("HAVIR"),
        "{e}"
    );
    // A split that does not exist.
    let e = cli(Command::Predict {
        run: mclip,
        data: data.clone(),
        split: "val".into(),
        out: pred,
    })
    .unwrap_err();
    assert!(e.to_string().contains("val"), "{e}");
}

#[test]
fn havir_without_latents_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("subj");
    cli(Command::Synth {
        out: data.clone(),
        seed: 5,
    })
    .unwrap();
    for split in ["train", "test"] {
        std::fs::remove_file(data.join(format!("targets/{split}/latents.npy"))).unwrap();
    }
    let out = tmp.path().join("run");
    let e = train(&data, ModelKind::Havir, &out).unwrap_err();
    assert!(e.to_string().contains("latents.npy"), "{e}");
    assert!(!out.exists(), "a failed start must not leave a run folder");
}

#[test]
fn fuse_targets_writes_detail_semantic_and_averaged_captions() {
    use brain::io::npy::{read_f32, write_f32, Int16Scale};
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    std::fs::create_dir_all(&layers).unwrap();
    let shape = [6, 5, 4];
    for k in 1..=24usize {
        let data: Vec<f32> = (0..120).map(|i| (i as f32) + k as f32).collect();
        write_f32(
            &layers.join(format!("clip_vision_layer{k}.npy")),
            &shape,
            &data,
        )
        .unwrap();
    }
    let caps: Vec<f32> = (0..6 * 3 * 5 * 4).map(|i| (i % 7) as f32).collect();
    let cap_path = tmp.path().join("captions.npy");
    write_f32(&cap_path, &[6, 3, 5, 4], &caps).unwrap();
    let out = tmp.path().join("targets");
    cli(Command::FuseTargets {
        layers,
        out: out.clone(),
        first: 11,
        last: 20,
        semantic: 24,
        captions: Some(cap_path),
        projection: None,
    })
    .unwrap();
    let detail = read_f32(&out.join("clip_image_detail.npy"), Int16Scale::AsIs).unwrap();
    assert_eq!(detail.shape, vec![6, 5, 4]);
    // mean over k = 11..=20 of (i + k) = i + 15.5
    assert!(detail
        .data
        .iter()
        .enumerate()
        .all(|(i, &v)| v == i as f32 + 15.5));
    let semantic = read_f32(&out.join("clip_image_semantic.npy"), Int16Scale::AsIs).unwrap();
    assert_eq!(semantic.data[0], 24.0);
    let text = read_f32(&out.join("clip_text.npy"), Int16Scale::AsIs).unwrap();
    assert_eq!(text.shape, vec![6, 5, 4]);
    let want = (caps[0] + caps[20] + caps[40]) / 3.0;
    assert!((text.data[0] - want).abs() < 1e-6);
}

/// Raw hidden states through CLIP's head (post_layernorm, visual_projection, CLS
/// normalisation) before averaging, checked against a plain f64 computation.
#[test]
fn fuse_targets_projects_raw_hidden_states() {
    use brain::io::npy::{read_f32, write_f32, Int16Scale};
    use safetensors::tensor::{Dtype, TensorView};
    let tmp = tempfile::tempdir().unwrap();
    let (n, t, din, dout) = (3usize, 5usize, 6usize, 4usize);
    let val = |i: usize, k: usize| ((i * 7 + k * 13) % 11) as f32 * 0.3 - 1.4;
    let layers = tmp.path().join("layers");
    std::fs::create_dir_all(&layers).unwrap();
    for k in 1..=24usize {
        let data: Vec<f32> = (0..n * t * din).map(|i| val(i, k)).collect();
        write_f32(
            &layers.join(format!("clip_vision_layer{k}.npy")),
            &[n, t, din],
            &data,
        )
        .unwrap();
    }
    let gamma: Vec<f32> = (0..din).map(|i| 1.0 + 0.1 * i as f32).collect();
    let beta: Vec<f32> = (0..din).map(|i| 0.05 * i as f32 - 0.1).collect();
    let w: Vec<f32> = (0..dout * din)
        .map(|i| ((i * 5) % 9) as f32 * 0.2 - 0.8)
        .collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (gb, bb, wb) = (bytes(&gamma), bytes(&beta), bytes(&w));
    let views = vec![
        (
            "vision_model.post_layernorm.weight".to_string(),
            TensorView::new(Dtype::F32, vec![din], &gb).unwrap(),
        ),
        (
            "vision_model.post_layernorm.bias".to_string(),
            TensorView::new(Dtype::F32, vec![din], &bb).unwrap(),
        ),
        (
            "visual_projection.weight".to_string(),
            TensorView::new(Dtype::F32, vec![dout, din], &wb).unwrap(),
        ),
    ];
    let weights = tmp.path().join("clip_vision.safetensors");
    std::fs::write(&weights, safetensors::serialize(views, None).unwrap()).unwrap();
    let out = tmp.path().join("targets");
    cli(Command::FuseTargets {
        layers,
        out: out.clone(),
        first: 11,
        last: 20,
        semantic: 24,
        captions: None,
        projection: Some(weights),
    })
    .unwrap();
    // Plain f64: z = W·LN(h) per token, divided by ‖z of token 0‖, averaged over 11..=20.
    let project = |k: usize| -> Vec<f64> {
        let mut z = vec![0.0f64; n * t * dout];
        for s in 0..n {
            for tok in 0..t {
                let h: Vec<f64> = (0..din)
                    .map(|c| val((s * t + tok) * din + c, k) as f64)
                    .collect();
                let mean = h.iter().sum::<f64>() / din as f64;
                let var = h.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / din as f64;
                let ln: Vec<f64> = (0..din)
                    .map(|c| (h[c] - mean) / (var + 1e-5).sqrt() * gamma[c] as f64 + beta[c] as f64)
                    .collect();
                for o in 0..dout {
                    z[(s * t + tok) * dout + o] =
                        (0..din).map(|c| w[o * din + c] as f64 * ln[c]).sum();
                }
            }
            let norm = (0..dout)
                .map(|o| z[s * t * dout + o].powi(2))
                .sum::<f64>()
                .sqrt();
            for v in &mut z[s * t * dout..(s + 1) * t * dout] {
                *v /= norm;
            }
        }
        z
    };
    let mut want = vec![0.0f64; n * t * dout];
    for k in 11..=20 {
        for (a, b) in want.iter_mut().zip(project(k)) {
            *a += b / 10.0;
        }
    }
    let got = read_f32(&out.join("clip_image_detail.npy"), Int16Scale::AsIs).unwrap();
    assert_eq!(got.shape, vec![n, t, dout]);
    // f32 LayerNorm and GEMM against f64: a few float32 ulps on O(1) values.
    for (g, w) in got.data.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
    }
    let sem = read_f32(&out.join("clip_image_semantic.npy"), Int16Scale::AsIs).unwrap();
    for (g, w) in sem.data.iter().zip(project(24)) {
        assert!((*g as f64 - w).abs() < 1e-5);
    }
}
