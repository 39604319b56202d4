//! The report: every case on every device present, one Markdown table, one JSON file
//! and one PNG chart, devices side by side on the same shapes.
//!
//! ```text
//! cargo run --release -p benches --bin report -- [--shapes small|paper|both] \
//!     [--backends cpu,reference,wgpu,cuda] [--torch] [--out DIR] [--filter TEXT]
//! ```
//!
//! [`run`] is the whole command as a library call (the test in `tests/report.rs` runs
//! it at the `tiny` shapes). Per device: floors first ([`crate::floors`]), then every
//! case: buffers prepared outside the timed region, warm-up, median over samples
//! timed by the device's [`DeviceClock`]. A case that fails (a kernel a backend does
//! not implement yet, out of memory) is recorded with its error and the run goes on.

use crate::case::{cases, Case};
use crate::clock::{measure, DeviceClock, Policy};
use crate::devices::{DeviceKind, DeviceVisitor, DEFAULT_BACKENDS, KNOWN_BACKENDS};
use crate::floors::{measure_floors, Bound, FloorConfig, Floors};
use crate::prepare::prepare;
use crate::shapes::ShapeSet;
use brain_core::{Backend, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the JSON layout.
pub const SCHEMA: u32 = 1;

/// What to run and where to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Shape sets, in order.
    pub sets: Vec<ShapeSet>,
    /// Backends: `cpu`, `reference`, `wgpu`, `cuda`.
    pub backends: Vec<String>,
    /// Add the PyTorch column(s) (`benches/pytorch/time_kernels.py`).
    pub torch: bool,
    /// Output folder (created).
    pub out: PathBuf,
    /// Only cases whose id contains one of these (empty: all).
    pub filter: Vec<String>,
    /// Leave out the model training steps.
    pub skip_models: bool,
    /// Scale of each case's sampling budget (1 = [`Policy::kernels`]).
    pub budget: f64,
    /// CPU backend threads (default: all hardware threads).
    pub threads: Option<usize>,
    /// The command line, recorded in the report.
    pub command: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sets: vec![ShapeSet::Small],
            backends: DEFAULT_BACKENDS.iter().map(|s| s.to_string()).collect(),
            torch: false,
            out: PathBuf::from("target/bench-report"),
            filter: Vec::new(),
            skip_models: false,
            budget: 1.0,
            threads: None,
            command: String::new(),
        }
    }
}

/// One device (or the PyTorch column on one) in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Column key: `cpu`, `reference`, `wgpu:0`, `cuda:0`, `torch-cpu`, ….
    pub id: String,
    /// Backend or framework: `cpu`, `reference`, `wgpu`, `cuda`, `torch`.
    pub backend: String,
    /// Human-readable name with the device (`Backend::name`).
    pub name: String,
    /// How its times were taken ([`DeviceClock::describe`]).
    pub clock: String,
    /// Its floors.
    pub floors: Floors,
    /// Where the floors come from: `measured` (this device, this run) or the id of the
    /// device whose floors are used (PyTorch on the CPU uses the `cpu` floors).
    pub floors_from: String,
}

/// One figure: a case on a device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cell {
    /// Median seconds per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_s: Option<f64>,
    /// Fastest sample, seconds per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_s: Option<f64>,
    /// Slowest sample, seconds per call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_s: Option<f64>,
    /// Samples.
    pub samples: usize,
    /// Calls per sample.
    pub calls_per_sample: usize,
    /// GFLOP/s achieved (0 where flops are not counted).
    pub gflops: f64,
    /// GB/s achieved (least bytes / median).
    pub gbs: f64,
    /// Floor seconds on this device.
    pub floor_s: f64,
    /// floor / median: 1 is the floor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// What sets the floor.
    pub bound: Option<Bound>,
    /// Why there is no figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Cell {
    /// A cell from a median, judged against `floors`.
    pub fn from_median(
        cost: &crate::case::Cost,
        floors: &Floors,
        median_s: f64,
        min_s: f64,
        max_s: f64,
        samples: usize,
        calls_per_sample: usize,
    ) -> Self {
        let (floor_s, bound) = floors.floor(cost);
        Cell {
            median_s: Some(median_s),
            min_s: Some(min_s),
            max_s: Some(max_s),
            samples,
            calls_per_sample,
            gflops: cost.flops / median_s / 1e9,
            gbs: cost.bytes / median_s / 1e9,
            floor_s,
            fraction: Some(floor_s / median_s),
            bound: Some(bound),
            error: None,
        }
    }

    /// Judge the figure again against other floors (nothing for a failed cell).
    pub fn rejudge(&mut self, cost: &crate::case::Cost, floors: &Floors) {
        if let (Some(m), None) = (self.median_s, &self.error) {
            *self = Cell::from_median(
                cost,
                floors,
                m,
                self.min_s.unwrap_or(m),
                self.max_s.unwrap_or(m),
                self.samples,
                self.calls_per_sample,
            );
        }
    }

    /// A cell with no figure.
    pub fn failed(reason: impl Into<String>) -> Self {
        Cell {
            error: Some(reason.into()),
            ..Cell::default()
        }
    }
}

/// One case across devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `set/kernel/shape`.
    pub id: String,
    /// Shape set.
    pub set: String,
    /// Kernel name.
    pub kernel: String,
    /// Shape.
    pub shape: String,
    /// Flops per call.
    pub flops: f64,
    /// Least bytes per call.
    pub bytes: f64,
    /// Figure per device id.
    pub results: BTreeMap<String, Cell>,
}

/// The whole report, as written to `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// UTC date and time of the run.
    pub date: String,
    /// `git describe`-like commit of the working tree, when known.
    pub commit: Option<String>,
    /// CPU model and hardware threads of the host.
    pub machine: String,
    /// The command line.
    pub command: String,
    /// Shape sets run.
    pub sets: Vec<String>,
    /// Devices, in column order.
    pub devices: Vec<Device>,
    /// One row per case, in case-list order.
    pub rows: Vec<Row>,
    /// `skipped: …` lines (devices or columns not run, and why).
    pub skipped: Vec<String>,
}

/// Seconds as `1.23 ms`, `45.6 µs`, `2.35 s`.
pub fn fmt_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Runs cases on devices and gathers the report.
pub struct Runner<'o> {
    opts: &'o Options,
    cases: Vec<Case>,
    floor_cfg: FloorConfig,
    devices: Vec<Device>,
    results: BTreeMap<String, BTreeMap<String, Cell>>,
    skipped: Vec<String>,
}

impl<'o> Runner<'o> {
    /// The cases of `opts` (sets, filter, models) and floor probes sized for the
    /// largest set.
    pub fn new(opts: &'o Options) -> Self {
        let mut list = Vec::new();
        for &set in &opts.sets {
            list.extend(cases(set).into_iter().filter(|c| {
                (opts.filter.is_empty() || opts.filter.iter().any(|f| c.id().contains(f.as_str())))
                    && !(opts.skip_models && c.is_model_step())
            }));
        }
        let largest = opts.sets.iter().copied().max().unwrap_or(ShapeSet::Small);
        Runner {
            opts,
            cases: list,
            floor_cfg: FloorConfig::for_set(largest),
            devices: Vec::new(),
            results: BTreeMap::new(),
            skipped: Vec::new(),
        }
    }

    /// The cases that will run.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    /// Record (and print on stderr) that something was not run.
    pub fn skip(&mut self, line: impl Into<String>) {
        let line = line.into();
        eprintln!("{line}");
        self.skipped.push(line);
    }

    /// Measure `be`'s floors, then every case on it (see [`DeviceKind`] for how a
    /// scalar backend and the host probes are handled).
    pub fn run_device<B: Backend<Elem = f32>>(
        &mut self,
        kind: DeviceKind<'_>,
        be: &B,
        clock: &dyn DeviceClock,
    ) {
        let (id, backend, host_probes, scalar) =
            (kind.id, kind.backend, kind.host_probes, kind.scalar);
        eprintln!("== {id}: {} ({})", be.name(), clock.describe());
        // A scalar backend runs on the CPU: it is judged against the CPU's floors (the
        // hardware's) when the CPU backend measured them, not against what its own
        // scalar copy and GEMM reach.
        let borrowed = if scalar {
            self.floors_of("cpu").cloned()
        } else {
            None
        };
        let floors_from = if borrowed.is_some() {
            "cpu"
        } else {
            "measured"
        };
        let floors = match borrowed {
            Some(f) => f,
            None => match measure_floors(be, clock, &self.floor_cfg, host_probes, &mut |l| {
                eprintln!("   {l}")
            }) {
                Ok(f) => f,
                Err(e) => {
                    self.skip(format!("skipped: {id}: floors could not be measured: {e}"));
                    return;
                }
            },
        };
        let total = self.cases.len();
        for (i, case) in self.cases.iter().enumerate() {
            let cell = if scalar && case.set == ShapeSet::Paper {
                Cell::failed("not run: scalar backend at paper shapes")
            } else {
                self.measure_case(be, clock, case, &floors)
            };
            let what = match (&cell.error, cell.median_s, cell.fraction) {
                (Some(e), _, _) => format!("error: {e}"),
                (None, Some(m), Some(f)) => format!(
                    "{} ({:.1}% of the first floor, {})",
                    fmt_secs(m),
                    100.0 * f,
                    cell.bound.map_or("", |b| b.name())
                ),
                _ => "no figure".into(),
            };
            eprintln!("[{}/{total}] {id} {}: {what}", i + 1, case.id());
            self.results
                .entry(case.id())
                .or_default()
                .insert(id.to_string(), cell);
        }
        // Measured floors are taken again after the cases and the best of each figure
        // kept (a floor depressed by other load at one moment must not flatter the
        // kernels); every figure is then judged against the final floors.
        let floors = if floors_from == "measured" {
            match measure_floors(be, clock, &self.floor_cfg, host_probes, &mut |l| {
                eprintln!("   after the cases: {l}")
            }) {
                Ok(after) => floors.best(&after),
                Err(_) => floors,
            }
        } else {
            floors
        };
        for case in &self.cases {
            if let Some(cell) = self.results.get_mut(&case.id()).and_then(|r| r.get_mut(id)) {
                cell.rejudge(&case.cost(), &floors);
            }
        }
        self.devices.push(Device {
            id: id.to_string(),
            backend: backend.to_string(),
            name: be.name(),
            clock: clock.describe(),
            floors,
            floors_from: floors_from.into(),
        });
    }

    fn measure_case<B: Backend<Elem = f32>>(
        &self,
        be: &B,
        clock: &dyn DeviceClock,
        case: &Case,
        floors: &Floors,
    ) -> Cell {
        let policy = self.policy(case);
        let r = (|| -> Result<crate::clock::Timing> {
            let mut call = prepare(be, &case.op)?;
            measure(clock, &mut *call, &policy)
        })();
        match r {
            Ok(t) => Cell::from_median(
                &case.cost(),
                floors,
                t.median.as_secs_f64(),
                t.min.as_secs_f64(),
                t.max.as_secs_f64(),
                t.samples,
                t.calls_per_sample,
            ),
            Err(e) => Cell::failed(e.to_string()),
        }
    }

    fn policy(&self, case: &Case) -> Policy {
        let base = match (case.set, case.is_model_step()) {
            (ShapeSet::Tiny, false) => Policy::quick(),
            (ShapeSet::Tiny, true) => Policy {
                budget: std::time::Duration::from_millis(50),
                ..Policy::steps()
            },
            (_, true) => Policy::steps(),
            (_, false) => Policy::kernels(),
        };
        base.scaled(self.opts.budget)
    }

    /// Add a column measured elsewhere (PyTorch): `cells` by case id.
    pub fn add_external(&mut self, device: Device, cells: BTreeMap<String, Cell>) {
        for case in &self.cases {
            let id = case.id();
            let cell = cells
                .get(&id)
                .cloned()
                .unwrap_or_else(|| Cell::failed("not timed"));
            self.results
                .entry(id)
                .or_default()
                .insert(device.id.clone(), cell);
        }
        self.devices.push(device);
    }

    /// Floors of an already measured device.
    pub fn floors_of(&self, id: &str) -> Option<&Floors> {
        self.devices.iter().find(|d| d.id == id).map(|d| &d.floors)
    }

    /// The report of everything run so far.
    pub fn finish(mut self) -> Report {
        let rows = self
            .cases
            .iter()
            .map(|c| {
                let cost = c.cost();
                Row {
                    id: c.id(),
                    set: c.set.name().into(),
                    kernel: c.name(),
                    shape: c.shape(),
                    flops: cost.flops,
                    bytes: cost.bytes,
                    results: self.results.remove(&c.id()).unwrap_or_default(),
                }
            })
            .collect();
        Report {
            schema: SCHEMA,
            date: utc_now(),
            commit: git_commit(),
            machine: machine(),
            command: self.opts.command.clone(),
            sets: self.opts.sets.iter().map(|s| s.name().into()).collect(),
            devices: self.devices,
            rows,
            skipped: self.skipped,
        }
    }
}

impl DeviceVisitor for Runner<'_> {
    fn device<B: Backend<Elem = f32>>(
        &mut self,
        kind: DeviceKind<'_>,
        be: &B,
        clock: &dyn DeviceClock,
    ) {
        self.run_device(kind, be, clock);
    }
    fn skip(&mut self, line: String) {
        Runner::skip(self, line);
    }
}

/// Paths of the three files a run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// `report.png`.
    pub png: PathBuf,
}

/// The whole command: run every backend of `opts`, the PyTorch column when asked,
/// and write `report.md`, `report.json` and `report.png` into `opts.out`.
pub fn run(opts: &Options) -> std::result::Result<(Report, Written), String> {
    for b in &opts.backends {
        if !KNOWN_BACKENDS.contains(&b.as_str()) {
            return Err(format!(
                "unknown backend {b:?} (known: {})",
                KNOWN_BACKENDS.join(", ")
            ));
        }
    }
    let mut runner = Runner::new(opts);
    if runner.cases().is_empty() {
        return Err("no case matches the filter".into());
    }
    // The CPU first: the reference backend and PyTorch on the CPU are judged against
    // its floors (the hardware's), not against what a scalar copy or GEMM reaches.
    let mut backends = opts.backends.clone();
    backends.sort_by_key(|b| KNOWN_BACKENDS.iter().position(|k| k == b));
    backends.dedup();
    for b in &backends {
        crate::devices::visit(b, opts.threads, &mut runner);
    }
    if opts.torch {
        let threads = crate::devices::cpu_threads(opts.threads);
        crate::torch::add_columns(&mut runner, &opts.out, threads);
    }
    let report = runner.finish();
    let written = write(&report, &opts.out)?;
    Ok((report, written))
}

/// Write `report.md`, `report.json` and `report.png` into `dir`.
pub fn write(report: &Report, dir: &Path) -> std::result::Result<Written, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let w = Written {
        markdown: dir.join("report.md"),
        json: dir.join("report.json"),
        png: dir.join("report.png"),
    };
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::write(&w.markdown, crate::render::markdown(report)).map_err(|e| io(&w.markdown, e))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(&w.json, json + "\n").map_err(|e| io(&w.json, e))?;
    crate::render::chart(report, &w.png)?;
    Ok(w)
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

fn git_commit() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("git")
        .args(["-C", dir, "rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut c = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = std::process::Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        c.push_str("+dirty");
    }
    Some(c)
}

/// CPU model (from /proc/cpuinfo where there is one) and hardware threads.
pub fn machine() -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model}, {threads} hardware threads")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        let d = utc_now();
        assert_eq!(d.len(), "2026-11-23 17:00 UTC".len(), "{d}");
        assert!(d.starts_with("20"), "{d}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(2.345), "2.35 s");
        assert_eq!(fmt_secs(0.00123), "1.230 ms");
        assert_eq!(fmt_secs(4.5e-6), "4.5 µs");
    }
}
