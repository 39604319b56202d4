//! The report as Markdown and as a PNG chart (plotters, bitmap backend).
//!
//! Text in the chart needs a TrueType font: the first of a few common system fonts
//! is registered (as the `brain` crate's training plots do); without one the bars
//! are drawn without labels rather than not at all.

use crate::report::{fmt_secs, Cell, Report};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

fn rate(cell: &Cell) -> String {
    match cell.bound {
        Some(crate::floors::Bound::Compute) => format!("{:.1} GFLOP/s", cell.gflops),
        _ => format!("{:.1} GB/s", cell.gbs),
    }
}

/// The text of one table cell: `1.234 ms · 176.0 GFLOP/s · 87%c`.
pub fn cell_text(cell: Option<&Cell>) -> String {
    match cell {
        None => "—".into(),
        Some(c) => match (&c.error, c.median_s, c.fraction) {
            (Some(e), _, _) => {
                let short: String = e.chars().take(40).collect();
                format!("✗ {}", short.replace('|', "/"))
            }
            (None, Some(m), Some(f)) => {
                let b = match c.bound {
                    Some(crate::floors::Bound::Compute) => "c",
                    _ => "m",
                };
                format!("{} · {} · {}{b}", fmt_secs(m), rate(c), percent(f))
            }
            _ => "—".into(),
        },
    }
}

/// The report as Markdown: header, devices with their floors, one table of every case
/// with a column per device, and the skipped lines.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Kernel benchmark report\n");
    let _ = writeln!(o, "- Date: {}", r.date);
    let _ = writeln!(o, "- Commit: {}", r.commit.as_deref().unwrap_or("unknown"));
    let _ = writeln!(o, "- Machine: {}", r.machine);
    if !r.command.is_empty() {
        let _ = writeln!(o, "- Command: `{}`", r.command);
    }
    let _ = writeln!(o, "- Shape sets: {}\n", r.sets.join(", "));

    let _ = writeln!(o, "## Devices and floors\n");
    let _ = writeln!(
        o,
        "| device | name | clock | GEMM floor | copy floor (largest) | host FMA probe | host copy probe | floors from |"
    );
    let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---|");
    for d in &r.devices {
        let f = &d.floors;
        let top = f.copy.last();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.1} GFLOP/s ({}³) | {} | {} | {} | {} |",
            d.id,
            d.name,
            d.clock,
            f.gemm.gflops,
            f.gemm.n,
            top.map_or("—".into(), |c| format!(
                "{:.1} GB/s ({:.0} MiB)",
                c.gbs,
                c.bytes / (1u64 << 20) as f64
            )),
            f.host
                .map_or("—".into(), |h| format!("{:.1} GFLOP/s", h.fma_gflops)),
            f.host
                .map_or("—".into(), |h| format!("{:.1} GB/s", h.copy_gbs)),
            d.floors_from
        );
    }

    let _ = writeln!(o, "\n## Kernels\n");
    let _ = writeln!(
        o,
        "Each cell: median time per call · achieved rate · fraction of that device's \
         floor (`c`: compute-bound floor, flops / best FLOP rate; `m`: memory-bound, \
         least bytes / copy bandwidth at the case's size). 100% is the floor; `✗` a \
         case that did not run there.\n"
    );
    let mut head = String::from("| set | kernel | shape | GFLOP | MB |");
    let mut rule = String::from("|---|---|---|---:|---:|");
    for d in &r.devices {
        let _ = write!(head, " {} |", d.id);
        rule.push_str("---:|");
    }
    let _ = writeln!(o, "{head}\n{rule}");
    for row in &r.rows {
        let _ = write!(
            o,
            "| {} | {} | {} | {} | {} |",
            row.set,
            row.kernel,
            row.shape,
            if row.flops > 0.0 {
                sig(row.flops / 1e9)
            } else {
                "—".into()
            },
            sig(row.bytes / 1e6)
        );
        for d in &r.devices {
            let _ = write!(o, " {} |", cell_text(row.results.get(&d.id)));
        }
        o.push('\n');
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(o, "\n## Not run\n");
        for s in &r.skipped {
            let _ = writeln!(o, "- {s}");
        }
    }
    o
}

/// A fraction as a percentage with enough digits to tell small ones apart.
pub fn percent(f: f64) -> String {
    let p = 100.0 * f;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

/// Three significant digits, in plain notation from 0.001 up, else scientific.
fn sig(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 0.001 {
        let decimals = (2 - x.log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2e}")
    }
}

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Register a font once; false when none is available.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        FONTS.iter().any(|p| match std::fs::read(p) {
            Ok(bytes) => {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            }
            Err(_) => false,
        })
    })
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

const BAR: u32 = 8;
const GAP: u32 = 6;
const PANEL_EXTRA: u32 = 90;
const LABEL_W: u32 = 300;
const WIDTH: u32 = 1200;

/// Fraction of floor per case (rows) and device (bars of one colour), log scale, one
/// panel per shape set, written as PNG to `path`.
pub fn chart(r: &Report, path: &Path) -> Result<(), String> {
    let err = |e: String| format!("{}: cannot draw the chart: {e}", path.display());
    let n_dev = r.devices.len().max(1) as u32;
    let panels: Vec<(&String, Vec<&crate::report::Row>)> = r
        .sets
        .iter()
        .map(|s| (s, r.rows.iter().filter(|row| &row.set == s).collect()))
        .filter(|(_, rows): &(&String, Vec<_>)| !rows.is_empty())
        .collect();
    let heights: Vec<u32> = panels
        .iter()
        .map(|(_, rows)| rows.len() as u32 * (n_dev * BAR + GAP) + PANEL_EXTRA)
        .collect();
    let total_h = heights.iter().sum::<u32>().max(200);
    let text = font_ready();

    // The encoder picks PNG from the extension, so the temporary name keeps it.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, (WIDTH, total_h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let max_frac = r
            .rows
            .iter()
            .flat_map(|row| row.results.values())
            .filter_map(|c| c.fraction)
            .fold(1.0f64, f64::max);
        let x_hi = (max_frac * 1.5).max(2.0);
        let x_lo = 1e-3;
        let mut area = root.clone();
        for ((set, rows), h) in panels.iter().zip(&heights) {
            let (panel, rest) = area.split_vertically(*h);
            area = rest;
            let n = rows.len() as f64;
            let mut builder = ChartBuilder::on(&panel);
            builder.margin(10).margin_left(LABEL_W);
            if text {
                builder
                    .caption(
                        format!(
                            "fraction of the device floor, {set} shapes (log scale; 100% = floor)"
                        ),
                        ("sans-serif", 18),
                    )
                    .x_label_area_size(30);
            }
            let mut chart = builder
                .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..n)
                .map_err(|e| err(e.to_string()))?;
            let mut mesh = chart.configure_mesh();
            mesh.disable_y_mesh().disable_y_axis();
            if text {
                mesh.x_label_formatter(&|v| {
                    let p = v * 100.0;
                    if p >= 1.0 {
                        format!("{p:.0}%")
                    } else {
                        format!("{p:.1}%")
                    }
                });
            } else {
                mesh.disable_x_mesh();
            }
            mesh.draw().map_err(|e| err(e.to_string()))?;
            let slot = 1.0 / (n_dev as f64 + GAP as f64 / BAR as f64);
            for (k, dev) in r.devices.iter().enumerate() {
                let color = COLORS[k % COLORS.len()];
                let bars = rows.iter().enumerate().filter_map(|(i, row)| {
                    let f = row.results.get(&dev.id)?.fraction?;
                    // First row at the top.
                    let top = n - i as f64 - slot * k as f64;
                    Some(Rectangle::new(
                        [(x_lo, top), (f.clamp(x_lo, x_hi), top - slot)],
                        color.filled(),
                    ))
                });
                let series = chart.draw_series(bars).map_err(|e| err(e.to_string()))?;
                if text {
                    series
                        .label(format!("{} — {}", dev.id, dev.name))
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 4), (x + 14, y + 4)], color.filled())
                        });
                }
            }
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(1.0, 0.0), (1.0, n)],
                    BLACK.stroke_width(1),
                )))
                .map_err(|e| err(e.to_string()))?;
            if text {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
                let style = ("sans-serif", 12).into_font().color(&BLACK);
                for (i, row) in rows.iter().enumerate() {
                    let y = n - i as f64 - 0.5 * slot * n_dev as f64;
                    let (_, py) = chart.backend_coord(&(x_lo, y));
                    let label = format!("{} {}", row.kernel, row.shape);
                    let label: String = label.chars().take(46).collect();
                    root.draw(&Text::new(label, (8, py - 6), style.clone()))
                        .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}
