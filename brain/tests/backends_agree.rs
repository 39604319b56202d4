//! The main job on the wgpu backend trains the same models as on the CPU: `brain demo`
//! for two epochs on each, the same seed, compared epoch by epoch. Both compute in f32
//! with different summation orders (workgroup trees against SIMD lanes), so losses
//! agree to rounding, not bit for bit: measured 1e-8 relative after three epochs on
//! lavapipe; 1e-5 leaves room for a GPU's own exp/sqrt rounding while still failing
//! on any wrong kernel (a wrong gradient moves the loss in the 2nd or 3rd digit).
//! Without a Vulkan adapter the test prints its skip.

use brain::cli::{run, BackendChoice, Cli, Command};
use std::path::Path;

fn demo(backend: BackendChoice, out: &Path) -> Result<(), String> {
    run(Cli {
        backend,
        command: Command::Demo {
            seed: 5,
            epochs: 2,
            out: out.to_path_buf(),
        },
    })
    .map_err(|e| e.to_string())
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn wgpu_training_matches_cpu() {
    if let Err(e) = backend_wgpu::WgpuBackend::new() {
        println!("skipped: wgpu_training_matches_cpu: {e}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cpu, gpu) = (dir.path().join("cpu"), dir.path().join("wgpu"));
    demo(BackendChoice::Cpu, &cpu).unwrap();
    demo(BackendChoice::Wgpu, &gpu).unwrap();
    for model in ["brainmclip", "havir"] {
        let (a, b) = (metrics(&cpu.join(model)), metrics(&gpu.join(model)));
        let (ha, hb) = (
            a["history"].as_array().unwrap(),
            b["history"].as_array().unwrap(),
        );
        assert_eq!(ha.len(), 2, "{model}");
        assert_eq!(ha.len(), hb.len(), "{model}");
        for (ea, eb) in ha.iter().zip(hb) {
            for key in ["train_loss", "eval_loss"] {
                let (x, y) = (ea[key].as_f64().unwrap(), eb[key].as_f64().unwrap());
                let rel = (x - y).abs() / x.abs().max(1e-12);
                println!(
                    "{model} epoch {} {key}: cpu {x} wgpu {y} (rel {rel:.1e})",
                    ea["epoch"]
                );
                assert!(rel < 1e-5, "{model} {key}: cpu {x} vs wgpu {y}");
            }
        }
        // Retrieval metrics are ranks of 100 held-out items: near ties may swap.
        for (ma, mb) in a["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["metrics"].as_array().unwrap())
        {
            assert_eq!(ma["name"], mb["name"]);
            let (x, y) = (ma["value"].as_f64().unwrap(), mb["value"].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 0.03,
                "{model} {}: cpu {x} vs wgpu {y}",
                ma["name"]
            );
        }
    }
}
