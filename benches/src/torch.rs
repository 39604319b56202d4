//! The PyTorch column(s): `benches/pytorch/time_kernels.py` times the same cases
//! (the report hands it the case list as JSON, shapes and all) on the CPU with the
//! CPU backend's thread count, and on every CUDA device PyTorch sees, and prints
//! JSON; each of its devices becomes a column. PyTorch on the CPU is judged against
//! the floors measured for the `cpu` device; on CUDA against the `cuda:N` floors when
//! the CUDA backend ran, otherwise against the copy and matmul the script measures.
//!
//! No python3, or no PyTorch: a `skipped: torch column: …` line, and the report goes
//! on without the column.

use crate::floors::{CopyPoint, Floors, GemmPoint};
use crate::report::{Cell, Device, Runner};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Path of the script.
pub fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/pytorch/time_kernels.py")
}

/// Exit status with which the script says PyTorch is not installed.
pub const NO_TORCH_EXIT: i32 = 3;

/// The case list as the script reads it.
pub fn cases_json(runner: &Runner<'_>, threads: usize, budget: f64) -> Value {
    let cases: Vec<Value> = runner
        .cases()
        .iter()
        .map(|c| {
            json!({
                "id": c.id(),
                "set": c.set.name(),
                "kernel": c.name(),
                "shape": c.shape(),
                "params": c.op.params(),
            })
        })
        .collect();
    json!({"threads": threads, "budget": budget, "cases": cases})
}

/// Run the script on the runner's cases and add its columns.
pub fn add_columns(runner: &mut Runner<'_>, out_dir: &Path, threads: usize) {
    let budget = 1.0;
    let spec = cases_json(runner, threads, budget);
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        return runner.skip(format!("skipped: torch column: {}: {e}", out_dir.display()));
    }
    let path = out_dir.join("torch_cases.json");
    if let Err(e) = std::fs::write(&path, spec.to_string()) {
        return runner.skip(format!("skipped: torch column: {}: {e}", path.display()));
    }
    eprintln!("== torch: {} --cases {}", script(), path.display());
    let out = match Command::new("python3")
        .arg(script())
        .arg("--cases")
        .arg(&path)
        .stderr(std::process::Stdio::inherit())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            return runner.skip(format!(
                "skipped: torch column: python3 could not be started ({e})"
            ))
        }
    };
    if out.status.code() == Some(NO_TORCH_EXIT) {
        return runner.skip("skipped: torch column: PyTorch not installed");
    }
    if !out.status.success() {
        return runner.skip(format!(
            "skipped: torch column: {} failed ({})",
            script(),
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::write(out_dir.join("torch_results.json"), text.as_bytes());
    match parse(&text) {
        Ok(devices) => {
            for (mut dev, cells) in devices {
                let matching = if dev.id == "torch-cpu" {
                    Some("cpu".to_string())
                } else {
                    dev.id.strip_prefix("torch-").map(str::to_string)
                };
                if let Some(floors) = matching.as_deref().and_then(|m| runner.floors_of(m)) {
                    dev.floors = floors.clone();
                    dev.floors_from = matching.unwrap_or_default();
                }
                // Judge every figure against the floors chosen.
                let cells = judge(runner, &dev.floors, cells);
                runner.add_external(dev, cells);
            }
        }
        Err(e) => runner.skip(format!("skipped: torch column: {e}")),
    }
}

/// Cells (medians only) judged against `floors` with each case's cost.
fn judge(runner: &Runner<'_>, floors: &Floors, medians: Medians) -> BTreeMap<String, Cell> {
    let mut out = BTreeMap::new();
    for case in runner.cases() {
        let id = case.id();
        let cell = match medians.get(&id) {
            Some(Ok((med, min, max, n))) => {
                Cell::from_median(&case.cost(), floors, *med, *min, *max, *n, 1)
            }
            Some(Err(e)) => Cell::failed(e.clone()),
            None => Cell::failed("no PyTorch equivalent timed"),
        };
        out.insert(id, cell);
    }
    out
}

/// Per case id: `(median, min, max, samples)` seconds, or why there is none.
type Medians = BTreeMap<String, Result<(f64, f64, f64, usize), String>>;

/// Parse the script's output: one device per entry of `devices`.
pub fn parse(text: &str) -> Result<Vec<(Device, Medians)>, String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("PyTorch output is not JSON: {e}"))?;
    let version = v["torch"].as_str().unwrap_or("?").to_string();
    let devices = v["devices"]
        .as_array()
        .ok_or("PyTorch output has no devices")?;
    let mut out = Vec::new();
    for d in devices {
        let id = d["id"].as_str().ok_or("a device without id")?.to_string();
        let name = format!(
            "PyTorch {version} {}",
            d["name"].as_str().unwrap_or(id.as_str())
        );
        let f = &d["floors"];
        let gemm_n = f["matmul_n"].as_u64().unwrap_or(0) as usize;
        let gemm_s = f["matmul_s"].as_f64().unwrap_or(f64::NAN);
        let copy_bytes = f["copy_bytes"].as_f64().unwrap_or(0.0);
        let copy_s = f["copy_s"].as_f64().unwrap_or(f64::NAN);
        let floors = Floors {
            gemm: GemmPoint {
                n: gemm_n,
                secs: gemm_s,
                gflops: 2.0 * (gemm_n as f64).powi(3) / gemm_s / 1e9,
            },
            copy: vec![CopyPoint {
                bytes: copy_bytes,
                secs: copy_s,
                gbs: copy_bytes / copy_s / 1e9,
            }],
            host: None,
        };
        let mut medians = BTreeMap::new();
        if let Some(res) = d["results"].as_object() {
            for (case, r) in res {
                let entry = match (r["median_s"].as_f64(), r["error"].as_str()) {
                    (Some(m), _) => Ok((
                        m,
                        r["min_s"].as_f64().unwrap_or(m),
                        r["max_s"].as_f64().unwrap_or(m),
                        r["samples"].as_u64().unwrap_or(0) as usize,
                    )),
                    (None, Some(e)) => Err(e.to_string()),
                    (None, None) => Err("no figure".to_string()),
                };
                medians.insert(case.clone(), entry);
            }
        }
        out.push((
            Device {
                id,
                backend: "torch".into(),
                name,
                clock: d["clock"].as_str().unwrap_or("?").to_string(),
                floors,
                floors_from: "measured by the script".into(),
            },
            medians,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_output() {
        let text = r#"{"torch": "2.5.0", "devices": [{"id": "torch-cpu", "name": "cpu (2 threads)",
            "clock": "time.perf_counter", "floors": {"matmul_n": 1024, "matmul_s": 0.01,
            "copy_bytes": 1e8, "copy_s": 0.005},
            "results": {"tiny/add/4096": {"median_s": 1e-5, "samples": 7},
                        "tiny/adamw/4096/4t": {"error": "not supported"}}}]}"#;
        let d = parse(text).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0.id, "torch-cpu");
        assert!((d[0].0.floors.copy[0].gbs - 20.0).abs() < 1e-9);
        assert_eq!(d[0].1["tiny/add/4096"], Ok((1e-5, 1e-5, 1e-5, 7)));
        assert!(d[0].1["tiny/adamw/4096/4t"].is_err());
    }
}
