//! `.npy` files: NumPy's own files (committed fixtures) of every accepted dtype and format
//! version, round trips, row reads (memory-mapped above the threshold), and one clear
//! error per kind of bad file.

mod io_common;

use brain::io::npy::{
    read_f32, read_info, read_rows, write_f32, Dtype, Int16Scale, MMAP_THRESHOLD,
};
use brain::Error;
use io_common::{expect_format, fixture, listing, npy_of, raw_npy};

/// `(arange(12).reshape(3, 4) - 5) * 0.25`, the fixtures' float content.
fn base() -> Vec<f32> {
    (0..12).map(|i| (i as f32 - 5.0) * 0.25).collect()
}

#[test]
fn numpy_float_files_of_every_width_and_version() {
    for name in ["f4.npy", "f8.npy", "f2.npy", "v1.npy", "v2.npy", "v3.npy"] {
        let a = read_f32(&fixture(name), Int16Scale::AsIs).unwrap();
        assert_eq!(a.shape, vec![3, 4], "{name}");
        assert_eq!(a.data, base(), "{name}");
    }
    assert_eq!(read_info(&fixture("f2.npy")).unwrap().dtype, Dtype::F16);
    assert_eq!(read_info(&fixture("f8.npy")).unwrap().dtype, Dtype::F64);
}

#[test]
fn int16_is_scaled_only_when_asked() {
    let p = fixture("i2.npy");
    let raw: Vec<f32> = (0..12).map(|i| (i * 150 - 600) as f32).collect();
    assert_eq!(read_f32(&p, Int16Scale::AsIs).unwrap().data, raw);
    let nsd = read_f32(&p, Int16Scale::NsdBetas).unwrap().data;
    let want: Vec<f32> = raw.iter().map(|v| v / 300.0).collect();
    assert_eq!(nsd, want);
    assert_eq!(nsd[..3], [-2.0, -1.5, -1.0]);
}

#[test]
fn round_trip_and_numpy_layout() {
    let dir = tempfile::tempdir().unwrap();
    let shapes: [&[usize]; 4] = [&[3, 4], &[7], &[2, 3, 5], &[0, 4]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
        let p = dir.path().join("a.npy");
        write_f32(&p, shape, &data).unwrap();
        let a = read_f32(&p, Int16Scale::AsIs).unwrap();
        assert_eq!((a.shape.as_slice(), a.data), (shape, data));
        // NumPy's alignment: the data starts on a 64-byte boundary.
        assert_eq!(read_info(&p).unwrap().data_offset % 64, 0);
    }
    // Byte-identical to what np.save wrote for the same array.
    let p = dir.path().join("f4.npy");
    write_f32(&p, &[3, 4], &base()).unwrap();
    assert_eq!(
        std::fs::read(&p).unwrap(),
        std::fs::read(fixture("f4.npy")).unwrap()
    );
    assert_eq!(listing(dir.path()), ["a.npy", "f4.npy"]);
}

#[test]
fn read_rows_reads_only_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rows.npy");
    let data: Vec<f32> = (0..60).map(|i| i as f32).collect();
    write_f32(&p, &[10, 2, 3], &data).unwrap();
    let r = read_rows(&p, 3, 4, Int16Scale::AsIs).unwrap();
    assert_eq!(r.shape, vec![4, 2, 3]);
    assert_eq!(r.data, data[18..42]);
    assert_eq!(
        read_rows(&p, 10, 0, Int16Scale::AsIs).unwrap().data,
        Vec::<f32>::new()
    );
    expect_format(
        read_rows(&p, 8, 3, Int16Scale::AsIs),
        &p,
        &["rows 8..11", "has 10"],
    );
    let i2 = fixture("i2.npy");
    let r = read_rows(&i2, 2, 1, Int16Scale::NsdBetas).unwrap();
    assert_eq!(r.data, vec![2.0, 2.5, 3.0, 3.5]);
    expect_format(
        read_rows(&fixture("scalar.npy"), 0, 1, Int16Scale::AsIs),
        &fixture("scalar.npy"),
        &["0-d"],
    );
}

#[test]
fn large_files_are_memory_mapped_and_read_by_rows() {
    // Just over the threshold: the mapped path, with rows at both ends.
    let width = 1024usize;
    let rows = (MMAP_THRESHOLD as usize / (4 * width)) + 3;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.npy");
    let data: Vec<f32> = (0..rows * width).map(|i| (i % 9973) as f32).collect();
    write_f32(&p, &[rows, width], &data).unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() > MMAP_THRESHOLD);
    let r = read_rows(&p, rows - 2, 2, Int16Scale::AsIs).unwrap();
    assert_eq!(r.data, data[(rows - 2) * width..]);
    let r = read_rows(&p, 0, 1, Int16Scale::AsIs).unwrap();
    assert_eq!(r.data, data[..width]);
    let all = read_f32(&p, Int16Scale::AsIs).unwrap();
    assert_eq!(all.data, data);
}

#[test]
fn wrong_dtype_is_named() {
    expect_format(
        read_f32(&fixture("i8.npy"), Int16Scale::AsIs),
        &fixture("i8.npy"),
        &["int64", "float32, float64, float16 or int16"],
    );
    expect_format(
        read_f32(&fixture("bool.npy"), Int16Scale::AsIs),
        &fixture("bool.npy"),
        &["bool"],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c8.npy");
    npy_of(&p, "<c8", &[2], &[0; 16]);
    expect_format(read_f32(&p, Int16Scale::AsIs), &p, &["<c8"]);
    let p = dir.path().join("rec.npy");
    raw_npy(
        &p,
        "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }",
        &[0; 8],
    );
    expect_format(read_f32(&p, Int16Scale::AsIs), &p, &["structured"]);
}

#[test]
fn fortran_order_is_refused() {
    expect_format(
        read_f32(&fixture("fortran.npy"), Int16Scale::AsIs),
        &fixture("fortran.npy"),
        &["Fortran", "[3, 4]"],
    );
}

#[test]
fn big_endian_is_refused() {
    expect_format(
        read_f32(&fixture("big_endian.npy"), Int16Scale::AsIs),
        &fixture("big_endian.npy"),
        &["big-endian", ">f4"],
    );
}

#[test]
fn truncated_and_padded_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("f4.npy")).unwrap();
    let p = dir.path().join("short.npy");
    std::fs::write(&p, &good[..good.len() - 3]).unwrap();
    expect_format(
        read_f32(&p, Int16Scale::AsIs),
        &p,
        &["truncated", "needs 48 data bytes", "has 45"],
    );
    // read_rows refuses too, even for rows that are intact.
    expect_format(read_rows(&p, 0, 1, Int16Scale::AsIs), &p, &["truncated"]);
    let p = dir.path().join("cut_header.npy");
    std::fs::write(&p, &good[..30]).unwrap();
    expect_format(
        read_f32(&p, Int16Scale::AsIs),
        &p,
        &["not a readable .npy", "ends inside the header"],
    );
    let p = dir.path().join("long.npy");
    let mut long = good.clone();
    long.extend_from_slice(&[0; 8]);
    std::fs::write(&p, long).unwrap();
    expect_format(
        read_f32(&p, Int16Scale::AsIs),
        &p,
        &["longer than its header"],
    );
    let p = dir.path().join("text.npy");
    std::fs::write(&p, "voxel,value\n1,2\n").unwrap();
    expect_format(read_f32(&p, Int16Scale::AsIs), &p, &["not a readable .npy"]);
    let p = dir.path().join("empty.npy");
    std::fs::write(&p, "").unwrap();
    expect_format(read_f32(&p, Int16Scale::AsIs), &p, &["not a readable .npy"]);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let p = std::path::Path::new("/nonexistent/dir/x.npy");
    match read_f32(p, Int16Scale::AsIs) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, p);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn write_checks_the_shape() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.npy");
    expect_format(
        write_f32(&p, &[2, 3], &[0.0; 5]),
        &p,
        &["5 values", "[2, 3]"],
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // The target is a directory: the temporary file is written, the rename fails, and
    // the temporary file must be gone.
    let target = dir.path().join("taken.npy");
    std::fs::create_dir(&target).unwrap();
    match write_f32(&target, &[2], &[1.0, 2.0]) {
        Err(Error::Io { path, .. }) => assert_eq!(path, target),
        other => panic!("{other:?}"),
    }
    assert_eq!(listing(dir.path()), ["taken.npy"]);
    assert!(listing(&target).is_empty());
    // A parent that is a file (fails even for root, unlike permissions).
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("a.npy");
    assert!(matches!(
        write_f32(&target, &[2], &[1.0, 2.0]),
        Err(Error::Io { .. })
    ));
    assert_eq!(listing(dir.path()), ["plain", "taken.npy"]);
}
