//! Checkpoint files: PyTorch loads what Rust writes (forward outputs agree to 1e-5),
//! damaged or mismatched files give errors naming the file, and writing leaves no
//! temporary files behind.

use backend_cpu::CpuBackend;
use brain::checkpoint::{save, write_atomic, Checkpoint};
use brain::cli::output_shape;
use brain::synthetic::{generate, SyntheticConfig};
use brain::Error;
use brain_core::model::{BrainMclip, BrainMclipConfig, Havir, HavirConfig, Model};
use brain_core::train::{predict, Dataset, TrainState};
use brain_core::Backend;
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;
use std::process::Command;

fn torch_available() -> bool {
    Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Inputs and Rust outputs of `model` on the first samples of `data`, as the IO file
/// of `pytorch/check_checkpoint.py`.
fn write_io<M: Model<CpuBackend>>(be: &CpuBackend, model: &M, data: &Dataset, path: &Path) {
    let n = 8;
    let sub = data.select(&(0..n).collect::<Vec<_>>()).unwrap();
    let outs = predict(be, model, &sub, n).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for slot in model.slots().iter().filter(|s| !s.target) {
        let (d, w) = sub.get(slot.name).unwrap();
        tensors.push((format!("input.{}", slot.name), vec![n, w], bytes(d)));
    }
    for (name, v) in &outs {
        tensors.push((
            format!("output.{name}"),
            output_shape(&model.config(), name, n),
            bytes(v),
        ));
    }
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn pytorch_loads_rust_checkpoint() {
    if !torch_available() {
        println!("skipped: pytorch_loads_rust_checkpoint: PyTorch is not installed (optional; CI has no PyTorch)");
        return;
    }
    let be = CpuBackend::new();
    let syn = SyntheticConfig::small(9);
    let subject = generate(&syn).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pytorch/check_checkpoint.py");
    let mut low_rank = BrainMclipConfig::small(syn.n_high, syn.n_detail());
    low_rank.head_rank = Some(4);
    let run = |ck: &Path, io: &Path| {
        let out = Command::new("python3")
            .arg(&script)
            .arg("--checkpoint")
            .arg(ck)
            .arg("--io")
            .arg(io)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        println!("{text}");
        assert!(
            out.status.success(),
            "PyTorch disagrees with the Rust checkpoint:\n{text}"
        );
    };
    for (i, cfg) in [
        BrainMclipConfig::small(syn.n_high, syn.n_detail()),
        low_rank,
    ]
    .into_iter()
    .enumerate()
    {
        let m = BrainMclip::new(&be, cfg, 10 + i as u64).unwrap();
        let (ck, io) = (
            dir.path().join(format!("m{i}.safetensors")),
            dir.path().join(format!("m{i}_io.safetensors")),
        );
        save(&ck, &be, &m, None, &TrainState::default()).unwrap();
        write_io(&be, &m, &subject.test, &io);
        run(&ck, &io);
    }
    let h = Havir::new(&be, HavirConfig::small(syn.n_low, syn.n_high), 12).unwrap();
    let (ck, io) = (
        dir.path().join("h.safetensors"),
        dir.path().join("h_io.safetensors"),
    );
    save(&ck, &be, &h, None, &TrainState::default()).unwrap();
    write_io(&be, &h, &subject.test, &io);
    run(&ck, &io);
}

#[test]
fn damaged_or_mismatched_checkpoints_are_errors_naming_the_file() {
    let be = CpuBackend::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let cfg = BrainMclipConfig::small(8, 20);
    let m = BrainMclip::new(&be, cfg, 1).unwrap();
    save(&path, &be, &m, None, &TrainState::default()).unwrap();
    // Only the checkpoint is left in the directory: no temporary file.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::open(&cut)
        .err()
        .expect("a truncated file must not open");
    assert!(
        matches!(e, Error::Format { .. }) && e.to_string().contains("cut.safetensors"),
        "{e}"
    );

    // Another model's config.
    let mut other = BrainMclip::new(&be, BrainMclipConfig::small(8, 21), 1).unwrap();
    let e = Checkpoint::open(&path)
        .unwrap()
        .load_params(&be, &mut other)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("ck.safetensors") && e.to_string().contains("config"),
        "{e}"
    );

    // No optimizer state in a weights-only file.
    let mut same = BrainMclip::new(&be, cfg, 2).unwrap();
    let mut opt =
        brain_core::train::AdamWState::new(&be, same.params(), Default::default()).unwrap();
    let e = Checkpoint::open(&path)
        .unwrap()
        .load_training(&be, &mut same, &mut opt)
        .err()
        .unwrap();
    assert!(e.to_string().contains("optimizer"), "{e}");

    // Missing file.
    let e = Checkpoint::open(&dir.path().join("none.safetensors"))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("none.safetensors"));

    // Weights-only load restores the exact parameters.
    Checkpoint::open(&path)
        .unwrap()
        .load_params(&be, &mut same)
        .unwrap();
    for (a, b) in same.params().values().iter().zip(m.params().values()) {
        assert!(be.download_vec(a).unwrap() == be.download_vec(b).unwrap());
    }
}

#[test]
fn atomic_write_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no/such/dir/x.bin");
    let e = write_atomic(&bad, b"abc").err().unwrap();
    assert!(e.to_string().contains("x.bin"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
