//! Every kernel on every device present, side by side, against each device's floors:
//!
//! ```text
//! cargo run --release -p benches --bin report -- [--shapes small|paper|both|tiny]
//!     [--backends cpu,reference,wgpu,cuda] [--torch] [--out DIR] [--filter TEXT,...]
//!     [--skip-models] [--budget X] [--threads N]
//! ```
//!
//! Writes `report.md`, `report.json` and `report.png` into `--out` (default
//! `target/bench-report`); progress goes to stderr. See `benches::report`.

use benches::devices::KNOWN_BACKENDS;
use benches::report::{run, Options};
use benches::shapes::ShapeSet;
use std::path::PathBuf;

const USAGE: &str =
    "usage: report [--shapes small|paper|both|tiny] [--backends cpu,reference,wgpu,cuda] \
[--torch] [--out DIR] [--filter TEXT,...] [--skip-models] [--budget X] [--threads N]";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        command: std::iter::once("cargo run --release -p benches --bin report --".to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--shapes" => o.sets = ShapeSet::parse_list(&value()?)?,
            "--backends" => {
                o.backends = value()?
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(b) = o
                    .backends
                    .iter()
                    .find(|b| !KNOWN_BACKENDS.contains(&b.as_str()))
                {
                    return Err(format!(
                        "unknown backend {b:?} (known: {})",
                        KNOWN_BACKENDS.join(", ")
                    ));
                }
            }
            "--torch" => o.torch = true,
            "--out" => o.out = PathBuf::from(value()?),
            "--filter" => {
                o.filter = value()?
                    .split(',')
                    .map(str::to_string)
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "--skip-models" => o.skip_models = true,
            "--budget" => o.budget = value()?.parse().map_err(|e| format!("--budget: {e}"))?,
            "--threads" => {
                o.threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?)
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok((report, w)) => {
            eprintln!(
                "{} cases on {} device(s): wrote {}, {} and {}",
                report.rows.len(),
                report.devices.len(),
                w.markdown.display(),
                w.json.display(),
                w.png.display()
            );
        }
        Err(e) => {
            eprintln!("report failed: {e}");
            std::process::exit(1);
        }
    }
}
