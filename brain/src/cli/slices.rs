//! A PNG of axial slices of a volume (a contribution map), for looking at rather than
//! reading: a grid of the slices that hold the most signal, values mapped to a
//! black → red → yellow → white ramp between the smallest and largest non-zero value.

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let c = |x: f64| (x.clamp(0.0, 1.0) * 255.0) as u8;
    RGBColor(c(t * 3.0), c(t * 3.0 - 1.0), c(t * 3.0 - 2.0))
}

/// Draw up to `count` axial (z) slices of `values` (C order over `dims`).
pub fn axial_slices(path: &Path, dims: [usize; 3], values: &[f32], count: usize) -> Result<()> {
    let [nx, ny, nz] = dims;
    if values.len() != nx * ny * nz || nx == 0 || ny == 0 || nz == 0 {
        return Err(Error::format(path, "volume and dimensions disagree"));
    }
    let at = |x: usize, y: usize, z: usize| values[(x * ny + y) * nz + z] as f64;
    // Slices ranked by their summed magnitude; shown in anatomical order.
    let mut mass: Vec<(f64, usize)> = (0..nz)
        .map(|z| {
            let s: f64 = (0..nx)
                .flat_map(|x| (0..ny).map(move |y| (x, y)))
                .map(|(x, y)| at(x, y, z).abs())
                .sum();
            (s, z)
        })
        .collect();
    mass.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut zs: Vec<usize> = mass.iter().take(count.max(1)).map(|m| m.1).collect();
    zs.sort_unstable();
    // Contrast between the smallest and largest non-zero magnitude (0 = outside the map).
    let nonzero = values.iter().map(|v| v.abs() as f64).filter(|&v| v > 0.0);
    let (lo, hi) = nonzero.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let scale = (480 / nx.max(ny)).clamp(2, 32);
    let cols = zs.len().min(4);
    let rows = zs.len().div_ceil(cols);
    let (w, h) = (
        (cols * (nx * scale + 8)) as u32,
        (rows * (ny * scale + 8)) as u32,
    );
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.png"));
    let err = |e: String| Error::format(path, format!("cannot draw the slices: {e}"));
    {
        let root = BitMapBackend::new(&tmp, (w, h)).into_drawing_area();
        root.fill(&BLACK).map_err(|e| err(e.to_string()))?;
        for (i, &z) in zs.iter().enumerate() {
            let (ox, oy) = (
                (i % cols) * (nx * scale + 8) + 4,
                (i / cols) * (ny * scale + 8) + 4,
            );
            for x in 0..nx {
                for y in 0..ny {
                    let a = at(x, y, z).abs();
                    if a == 0.0 {
                        continue;
                    }
                    let v = 0.15 + 0.85 * (a - lo) / span;
                    // y grows upwards in the anatomy, downwards in the image.
                    let (px, py) = ((ox + x * scale) as i32, (oy + (ny - 1 - y) * scale) as i32);
                    root.draw(&Rectangle::new(
                        [(px, py), (px + scale as i32, py + scale as i32)],
                        ramp(v).filled(),
                    ))
                    .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
