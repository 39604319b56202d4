//! The report command end to end at the `tiny` shapes on the CPU and the reference
//! backend: the Markdown, JSON and PNG are written and agree (same rows, same
//! devices, every figure judged against its floor).

use benches::report::{run, Options, Report};
use benches::shapes::ShapeSet;
use std::time::Instant;

#[test]
fn tiny_report_is_written_and_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sets: vec![ShapeSet::Tiny],
        backends: vec!["reference".into(), "cpu".into()],
        torch: false,
        out: dir.path().join("out"),
        command: "tiny_report_is_written_and_consistent".into(),
        ..Options::default()
    };
    let t = Instant::now();
    let (report, written) = run(&opts).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(secs < 20.0, "the tiny report took {secs:.1} s");

    // Every case of the list, on both devices, the CPU first.
    let n = benches::case::cases(ShapeSet::Tiny).len();
    assert_eq!(report.rows.len(), n);
    let ids: Vec<&str> = report.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["cpu", "reference"]);
    assert_eq!(report.devices[1].floors_from, "cpu");
    for row in &report.rows {
        for d in &ids {
            let cell = &row.results[*d];
            assert!(cell.error.is_none(), "{} on {d}: {:?}", row.id, cell.error);
            let (m, f) = (cell.median_s.unwrap(), cell.fraction.unwrap());
            assert!(m > 0.0 && f > 0.0 && f.is_finite(), "{} on {d}", row.id);
            assert!((f - cell.floor_s / m).abs() < 1e-9 * f.max(1.0));
        }
    }

    // The JSON on disk is the report.
    let json: Report =
        serde_json::from_str(&std::fs::read_to_string(&written.json).unwrap()).unwrap();
    assert_eq!(json.rows.len(), n);
    assert_eq!(json.devices.len(), 2);
    let json_ids: Vec<&str> = json.rows.iter().map(|r| r.id.as_str()).collect();

    // The Markdown table has one line per row, in the same order, a column per device.
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with("| tiny |")).collect();
    assert_eq!(table.len(), n);
    for (line, row) in table.iter().zip(&json.rows) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(format!("{}/{}/{}", cols[1], cols[2], cols[3]), row.id);
        // set, kernel, shape, GFLOP, MB, then one cell per device.
        assert_eq!(cols.len(), 1 + 5 + 2 + 1, "{line}");
        assert!(cols[6].ends_with('c') || cols[6].ends_with('m'), "{line}");
    }
    assert_eq!(json_ids.len(), table.len());
    assert!(md.contains("| cpu | cpu ("), "{md}");

    // A PNG, big enough to hold a bar per case and device.
    let png = std::fs::read(&written.png).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(height as usize > 2 * n * 8, "chart height {height}");
}

#[test]
fn unknown_backends_and_empty_filters_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options {
        sets: vec![ShapeSet::Tiny],
        backends: vec!["tpu".into()],
        out: dir.path().to_path_buf(),
        ..Options::default()
    };
    assert!(run(&opts).unwrap_err().contains("unknown backend"));
    opts.backends = vec!["cpu".into()];
    opts.filter = vec!["no-such-kernel".into()];
    assert!(run(&opts).unwrap_err().contains("no case"));
}
