//! Runs kernel families without a GPU: each `tests/emu/<family>.cpp` includes
//! `kernels/<family>.cu` through the CUDA-on-CPU shim `tests/emu/cuda_shim.h` (one
//! cooperative fiber per CUDA thread, emulated `__syncthreads` and warp shuffles),
//! launches the kernels as `src/ops/<family>.rs` does, and compares with brain-core's
//! formulas (bit for bit where the kernels promise it). This checks indexing, bounds,
//! synchronisation and reduction structure on every machine; the device's memory model,
//! timing and math-library rounding are left to the conformance suite on a GPU.
//!
//! Needs a C++17 compiler with `<ucontext.h>` (`$CXX`, else `c++`) on Linux; without
//! one each test prints `skipped: emulate_<family>: <reason>`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn compiler() -> Result<String, String> {
    if !cfg!(target_os = "linux") {
        return Err("the CPU emulation needs Linux (ucontext)".into());
    }
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(cxx),
        _ => Err(format!("no C++ compiler ({cxx} not found; set CXX)")),
    }
}

fn emulate(family: &str) {
    let cxx = match compiler() {
        Ok(c) => c,
        Err(why) => {
            println!("skipped: emulate_{family}: {why}");
            return;
        }
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/emu")
        .join(format!("{family}.cpp"));
    let exe: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("emulate_{family}"));
    let out = Command::new(&cxx)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-w"])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cxx}: {e}"));
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    print!("{text}");
    assert!(
        run.status.success(),
        "emulated {family} kernels failed:\n{text}"
    );
}

#[test]
fn emulate_dropout_random() {
    emulate("random");
}

#[test]
fn emulate_upsample() {
    emulate("upsample");
}

#[test]
fn emulate_norm() {
    emulate("norm");
}

#[test]
fn emulate_adamw() {
    emulate("adamw");
}
