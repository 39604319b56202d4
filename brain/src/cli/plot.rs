//! Training curves as a PNG (plotters, bitmap backend). Text needs a TrueType font:
//! the first of a few common system fonts is used; without one the curves are drawn
//! without labels rather than not at all.

use crate::error::{Error, Result};
use brain_core::train::EpochLog;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

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

/// Train and held-out loss per epoch.
pub fn training_curves(path: &Path, title: &str, history: &[EpochLog]) -> Result<()> {
    let err = |e: String| Error::format(path, format!("cannot draw the training curves: {e}"));
    let train: Vec<(f64, f64)> = history
        .iter()
        .map(|e| ((e.epoch + 1) as f64, e.train_loss))
        .collect();
    let eval: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|e| e.eval_loss.map(|l| ((e.epoch + 1) as f64, l)))
        .collect();
    let ys = train
        .iter()
        .chain(&eval)
        .map(|p| p.1)
        .filter(|v| v.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo.min(0.0), hi * 1.05)
    } else {
        (0.0, 1.0)
    };
    let x_max = (history.len().max(1)) as f64;
    // The encoder picks PNG from the extension, so the temporary name keeps it.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    {
        let root = BitMapBackend::new(&tmp, (800, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let text = font_ready();
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16);
        if text {
            builder
                .caption(title, ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(56);
        }
        let mut chart = builder
            .build_cartesian_2d(1.0..x_max.max(2.0), lo..hi.max(lo + 1e-9))
            .map_err(|e| err(e.to_string()))?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("epoch").y_desc("loss");
        } else {
            mesh.disable_x_mesh().disable_y_mesh();
        }
        mesh.draw().map_err(|e| err(e.to_string()))?;
        let train_series = chart
            .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        if text {
            train_series
                .label("train")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        }
        let eval_series = chart
            .draw_series(LineSeries::new(eval, RED.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        if text {
            eval_series
                .label("held-out")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
