//! `brain demo` end to end (few epochs): both run folders hold the config, the
//! checkpoint (loadable), metrics.json and the PNG of the training curves, and the
//! table names every metric.

use brain::checkpoint::Checkpoint;
use brain::cli::{run, BackendChoice, Cli, Command};

#[test]
fn demo_writes_complete_run_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    run(Cli {
        backend: BackendChoice::Cpu,
        command: Command::Demo {
            seed: 3,
            epochs: 4,
            out: out.clone(),
        },
    })
    .unwrap();
    for model in ["brainmclip", "havir"] {
        let d = out.join(model);
        for f in [
            "config.json",
            "checkpoint.safetensors",
            "metrics.json",
            "training.png",
        ] {
            assert!(d.join(f).is_file(), "{model}/{f} missing");
        }
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(m["epochs_run"], 4);
        assert!(m["metrics"].as_array().unwrap().len() >= 3);
        let png = std::fs::read(d.join("training.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(
            Checkpoint::open(&d.join("checkpoint.safetensors"))
                .unwrap()
                .train_state()
                .unwrap()
                .epoch,
            4
        );
        // Nothing temporary is left behind.
        for e in std::fs::read_dir(&d).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "leftover {name}");
        }
    }
}

/// `--backend cuda` without a CUDA driver is a clear error naming the backend, not a
/// panic (this machine and CI have no GPU; on a GPU machine the test says so).
#[test]
fn missing_cuda_driver_is_a_clear_error() {
    let r = run(Cli {
        backend: BackendChoice::Cuda,
        command: Command::Demo {
            seed: 1,
            epochs: 1,
            out: tempfile::tempdir().unwrap().path().join("demo"),
        },
    });
    match r {
        Ok(()) => println!("a CUDA driver is present here: the demo ran on it"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("cuda") && e.contains("driver"), "{e}");
        }
    }
}
