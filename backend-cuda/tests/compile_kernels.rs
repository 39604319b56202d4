//! Compiles every kernel family with NVRTC to PTX for sm_80 and sm_90, with the options
//! the runtime uses, and, where `ptxas` is found (`$PTXAS`, else `PATH`), assembles
//! each PTX to SASS with `ptxas -arch=sm_XX -v`, printing registers, stack and spills
//! per kernel. Any compile or assembly error fails the test. Needs no GPU and no
//! driver: CI runs it with the PyPI wheels `.ci/cuda-toolchain` installs. Without
//! NVRTC it prints `skipped: compile_kernels: <reason>` (CI treats that as a failure).

use backend_cuda::{compile_options, compile_ptx, nvrtc_available, nvrtc_version, Family};
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCHS: [u32; 2] = [80, 90];

fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PTXAS") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("ptxas"))
        .find(|p| p.is_file())
}

/// Per-kernel resource usage from `ptxas -v`.
#[derive(Debug, Default)]
struct Usage {
    kernel: String,
    registers: u32,
    stack: u32,
    spill_stores: u32,
    spill_loads: u32,
    smem: u32,
}

/// The number before `unit` in `line` (e.g. "12 registers").
fn number_before(line: &str, unit: &str) -> Option<u32> {
    let head = &line[..line.find(unit)?];
    head.split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())?
        .parse()
        .ok()
}

fn parse_ptxas(log: &str) -> Vec<Usage> {
    let mut out: Vec<Usage> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("?");
            out.push(Usage {
                kernel: name.to_string(),
                ..Usage::default()
            });
        } else if let Some(u) = out.last_mut() {
            if line.contains("bytes stack frame") {
                u.stack = number_before(line, "bytes stack frame").unwrap_or(0);
                u.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
                u.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
            } else if line.contains("Used") && line.contains("registers") {
                u.registers = number_before(line, "registers").unwrap_or(0);
                u.smem = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    out
}

fn assemble(ptxas: &Path, ptx: &Path, arch: u32) -> Result<Vec<Usage>, String> {
    let cubin = ptx.with_extension("cubin");
    let out = Command::new(ptxas)
        .arg(format!("-arch=sm_{arch}"))
        .arg("-v")
        .arg(ptx)
        .arg("-o")
        .arg(&cubin)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("ptxas failed ({}):\n{log}", out.status));
    }
    Ok(parse_ptxas(&log))
}

#[test]
fn compile_kernels() {
    if let Err(e) = nvrtc_available() {
        println!("skipped: compile_kernels: {e}");
        return;
    }
    let (major, minor) = nvrtc_version().expect("NVRTC version");
    println!(
        "NVRTC {major}.{minor}, options: {}",
        compile_options("compute_XX").join(" ")
    );
    let ptxas = find_ptxas();
    match &ptxas {
        Some(p) => println!("ptxas: {}", p.display()),
        None => println!("skipped: compile_kernels_ptxas: ptxas not found ($PTXAS or PATH)"),
    }
    let dir = std::env::temp_dir().join(format!("backend-cuda-ptx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let mut failures = Vec::new();
    let mut kernels = 0;
    for arch in ARCHS {
        println!("--- sm_{arch}");
        for family in Family::ALL {
            let ptx = match compile_ptx(family, arch) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{}.cu for compute_{arch}: {e}", family.name()));
                    continue;
                }
            };
            let Some(ptxas) = &ptxas else {
                println!("sm_{arch} {:<15} PTX {} bytes", family.name(), ptx.len());
                continue;
            };
            let path = dir.join(format!("{}_sm{arch}.ptx", family.name()));
            std::fs::write(&path, &ptx).expect("write PTX");
            match assemble(ptxas, &path, arch) {
                Ok(usage) if usage.is_empty() => {
                    println!("sm_{arch} {:<15} (no kernels yet)", family.name())
                }
                Ok(usage) => {
                    for u in usage {
                        kernels += 1;
                        println!(
                            "sm_{arch} {:<15} {:<32} {:>3} registers, {:>4} B stack, {:>4} B spill stores, {:>4} B spill loads, {:>5} B smem",
                            family.name(),
                            u.kernel,
                            u.registers,
                            u.stack,
                            u.spill_stores,
                            u.spill_loads,
                            u.smem
                        );
                    }
                }
                Err(e) => failures.push(format!("{}.cu for sm_{arch}: {e}", family.name())),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    if ptxas.is_some() {
        println!("assembled {kernels} kernels for {ARCHS:?} with no error");
    }
}

#[test]
fn ptxas_log_is_parsed() {
    let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'add_f32' for 'sm_80'\n\
ptxas info    : Function properties for add_f32\n\
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 10 registers, 128 bytes smem, 380 bytes cmem[0]\n";
    let u = parse_ptxas(log);
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].kernel, "add_f32");
    assert_eq!(
        (
            u[0].registers,
            u[0].stack,
            u[0].spill_stores,
            u[0].spill_loads,
            u[0].smem
        ),
        (10, 8, 4, 12, 128)
    );
}
