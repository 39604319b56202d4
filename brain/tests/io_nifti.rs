//! NIfTI volumes: the voxel order is NumPy's C order over (X, Y, Z) (checked on
//! nibabel-written fixtures and on the real files nibabel ships), header scaling as
//! nibabel applies it, atomic float32 writes carrying a reference header, and errors.

mod io_common;

use brain::io::nifti::{read_volume, write_volume, Volume};
use brain::Error;
use io_common::{expect_format, fixture, listing, npy_of};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `100 x + 10 y + z − 150` over a 5×4×3 volume, as `make_fixtures.py` wrote it.
fn xyz(x: usize, y: usize, z: usize) -> f32 {
    (100 * x + 10 * y + z) as f32 - 150.0
}

#[test]
fn voxel_order_is_numpy_c_order() {
    // The Fortran-ordered .npy is what `np.save(p, img.dataobj)` writes.
    for name in ["mask_xyz.nii.gz", "mask_xyz.npy", "mask_xyz_fortran.npy"] {
        let v = read_volume(&fixture(name)).unwrap();
        assert_eq!(v.dims, [5, 4, 3], "{name}");
        for x in 0..5 {
            for y in 0..4 {
                for z in 0..3 {
                    assert_eq!(v.values[(x * 4 + y) * 3 + z], xyz(x, y, z), "{name}");
                }
            }
        }
    }
}

#[test]
fn header_scaling_is_applied_as_nibabel_does() {
    let v = read_volume(&fixture("mask_xyz_scaled.nii")).unwrap();
    let want =
        brain::io::npy::read_f32(&fixture("mask_xyz_scaled_expected.npy"), Default::default())
            .unwrap();
    assert_eq!(v.dims.to_vec(), want.shape);
    assert_eq!(v.values, want.data);
    assert_eq!(v.values[0], -150.0 * 0.5 + 1.0);
}

fn header(path: &Path) -> nifti::NiftiHeader {
    nifti::NiftiHeader::from_file(path).unwrap()
}

#[test]
fn write_round_trips_and_keeps_the_reference_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let dims = [5, 4, 3];
    let data: Vec<f32> = (0..60).map(|i| i as f32 * 0.25 - 2.0).collect();
    let reference = fixture("mask_xyz.nii.gz");
    for name in ["map.nii", "map.nii.gz", "map.v2.nii.gz", "map.npy"] {
        let p = dir.path().join(name);
        write_volume(&p, dims, &data, Some(&reference)).unwrap();
        let back = read_volume(&p).unwrap();
        assert_eq!(
            back,
            Volume {
                dims,
                values: data.clone()
            },
            "{name}"
        );
    }
    let h = header(&dir.path().join("map.nii.gz"));
    let r = header(&reference);
    assert_eq!(h.datatype, 16, "float32");
    assert_eq!(h.dim[..4], [3, 5, 4, 3]);
    assert_eq!(h.pixdim[1..4], r.pixdim[1..4]);
    assert_eq!(
        (h.srow_x, h.srow_y, h.srow_z),
        (r.srow_x, r.srow_y, r.srow_z)
    );
    assert_eq!(h.pixdim[1], 1.8);
    // Gzip by extension: the .gz file starts with the gzip magic, the .nii with a header.
    let gz = std::fs::read(dir.path().join("map.nii.gz")).unwrap();
    assert_eq!(gz[..2], [0x1f, 0x8b]);
    let raw = std::fs::read(dir.path().join("map.nii")).unwrap();
    assert_eq!(raw[344..348], *b"n+1\0");
    // Without a reference: an identity affine, 1 mm voxels.
    let p = dir.path().join("plain.nii");
    write_volume(&p, dims, &data, None).unwrap();
    assert_eq!(header(&p).srow_x, [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(read_volume(&p).unwrap().values, data);
    assert_eq!(
        listing(dir.path()),
        [
            "map.nii",
            "map.nii.gz",
            "map.npy",
            "map.v2.nii.gz",
            "plain.nii"
        ]
    );
}

#[test]
fn write_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.nii.gz");
    expect_format(
        write_volume(&p, [2, 2, 2], &[0.0; 7], None),
        &p,
        &["7 values", "2×2×2"],
    );
    expect_format(
        write_volume(&p, [2, 2, 2], &[0.0; 8], Some(&fixture("mask_xyz.nii.gz"))),
        &p,
        &["2×2×2", "mask_xyz.nii.gz", "5×4×3"],
    );
    let q = dir.path().join("m.img");
    expect_format(
        write_volume(&q, [2, 2, 2], &[0.0; 8], None),
        &q,
        &["unknown volume format"],
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["taken.nii.gz", "taken.nii"] {
        // The target is a directory: everything is written, the rename fails.
        let target = dir.path().join(name);
        std::fs::create_dir(&target).unwrap();
        match write_volume(&target, [2, 2, 2], &[1.0; 8], None) {
            Err(Error::Io { path, .. }) => assert_eq!(path, target),
            other => panic!("{other:?}"),
        }
        assert!(listing(&target).is_empty());
    }
    assert_eq!(listing(dir.path()), ["taken.nii", "taken.nii.gz"]);
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        write_volume(&file.join("m.nii.gz"), [2, 2, 2], &[1.0; 8], None),
        Err(Error::Io { .. })
    ));
    assert_eq!(listing(dir.path()), ["plain", "taken.nii", "taken.nii.gz"]);
}

#[test]
fn bad_volume_files() {
    let dir = tempfile::tempdir().unwrap();
    // 4-D with more than one volume is refused; a trailing axis of 1 is fine.
    let p = dir.path().join("four.npy");
    npy_of(&p, "<f4", &[2, 2, 2, 2], &[0; 64]);
    expect_format(read_volume(&p), &p, &["4-D", "2×2×2×2"]);
    let p = dir.path().join("one.npy");
    npy_of(&p, "|u1", &[2, 2, 2, 1], &[1, 0, 0, 0, 0, 0, 0, 2]);
    let v = read_volume(&p).unwrap();
    assert_eq!((v.dims, v.values[7]), ([2, 2, 2], 2.0));
    // Mask dtypes beyond the data ones: bool and int64.
    let v = read_volume(&fixture("bool.npy")).unwrap();
    assert_eq!(
        (v.dims, v.values[..3].to_vec()),
        ([3, 4, 1], vec![1.0, 0.0, 1.0])
    );
    assert_eq!(read_volume(&fixture("i8.npy")).unwrap().values[11], 11.0);
    // Damaged NIfTI files.
    let good = std::fs::read(fixture("mask_xyz_scaled.nii")).unwrap();
    let p = dir.path().join("cut.nii");
    std::fs::write(&p, &good[..good.len() - 10]).unwrap();
    expect_format(read_volume(&p), &p, &["truncated or corrupt"]);
    let p = dir.path().join("cut.nii.gz");
    let gz = std::fs::read(fixture("mask_xyz.nii.gz")).unwrap();
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    expect_format(read_volume(&p), &p, &["truncated or corrupt"]);
    let p = dir.path().join("text.nii");
    std::fs::write(&p, vec![b'x'; 400]).unwrap();
    expect_format(read_volume(&p), &p, &["NIfTI"]);
    let p = dir.path().join("mask.mgz");
    std::fs::write(&p, "x").unwrap();
    expect_format(read_volume(&p), &p, &["unknown volume format"]);
    let p = dir.path().join("missing.nii.gz");
    assert!(matches!(read_volume(&p), Err(Error::Io { path, .. }) if path == p));
}

fn python_with_nibabel() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import nibabel, os; print(os.path.dirname(nibabel.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()).join("tests").join("data"))
}

/// Real files shipped by nibabel (uint8 .nii.gz, big-endian int16 and float32 .nii):
/// dims, every value in C order, and the `> 0` count agree with what nibabel reads.
#[test]
fn nifti_reads_nibabel_test_data() {
    let Some(data) = python_with_nibabel() else {
        println!("skipped: nifti_reads_nibabel_test_data: nibabel is not installed");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let files = [
        "standard.nii.gz",
        "anatomical.nii",
        "reoriented_anat_moved.nii",
        "resampled_anat_moved.nii",
    ];
    let script = r#"
import sys, numpy as np, nibabel as nib
src, dst = sys.argv[1], sys.argv[2]
for name in sys.argv[3:]:
    a = np.asarray(nib.load(f"{src}/{name}").dataobj)
    np.save(f"{dst}/{name}.npy", np.ascontiguousarray(a.astype(np.float32)))
    print(name, " ".join(map(str, a.shape)), int((a > 0).sum()))
"#;
    let res = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&data)
        .arg(out.path())
        .args(files)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let report = String::from_utf8(res.stdout).unwrap();
    assert_eq!(report.lines().count(), files.len());
    for line in report.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let name = f[0];
        let dims: Vec<usize> = f[1..4].iter().map(|s| s.parse().unwrap()).collect();
        let positive: usize = f[4].parse().unwrap();
        let ours = read_volume(&data.join(name)).unwrap();
        assert_eq!(ours.dims.to_vec(), dims, "{name}");
        assert_eq!(
            ours.values.iter().filter(|&&v| v > 0.0).count(),
            positive,
            "{name}"
        );
        let theirs =
            brain::io::npy::read_f32(&out.path().join(format!("{name}.npy")), Default::default())
                .unwrap();
        assert_eq!(theirs.shape, dims, "{name}");
        // resampled_anat_moved.nii holds NaN outside the resampled field: same places.
        let same = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
        let differ = ours
            .values
            .iter()
            .zip(&theirs.data)
            .position(|(&a, &b)| !same(a, b));
        assert_eq!(differ, None, "{name}: values differ from nibabel's");
        assert_eq!(ours.values.len(), theirs.data.len());
    }
    // nibabel reads what we write: same values at the same [x, y, z], same affine.
    let dims = [5, 4, 3];
    let values: Vec<f32> = (0..60).map(|i| i as f32 * 1.5 - 7.0).collect();
    let ours = out.path().join("ours.nii.gz");
    write_volume(&ours, dims, &values, Some(&fixture("mask_xyz.nii.gz"))).unwrap();
    let check = r#"
import sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
np.save(sys.argv[2], np.ascontiguousarray(np.asarray(img.dataobj, dtype=np.float32)))
print(" ".join(f"{v:.4f}" for v in np.diag(img.affine)))
"#;
    let back = out.path().join("back.npy");
    let res = Command::new("python3")
        .args(["-c", check])
        .arg(&ours)
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let diag = String::from_utf8(res.stdout).unwrap();
    assert_eq!(diag.trim(), "1.8000 1.8000 1.8000 1.0000");
    let theirs = brain::io::npy::read_f32(&back, Default::default()).unwrap();
    assert_eq!((theirs.shape, theirs.data), (dims.to_vec(), values));
    // A real 4-D series is refused as a mask.
    let p = data.join("example4d.nii.gz");
    expect_format(read_volume(&p), &p, &["4-D", "128×96×24×2"]);
}
