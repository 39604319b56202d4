//! ROI index sets from mask files: detail / low / high in the nsdgeneral voxel order,
//! counts, and the errors for shape mismatches, empty ROIs and missing masks.

mod io_common;

use brain::io::nifti::write_volume;
use brain::io::npy::write_f32;
use brain::io::roi::{find_mask, load_rois, RoiFiles};
use brain::Error;
use io_common::expect_format;
use std::path::Path;

const DIMS: [usize; 3] = [4, 3, 2];

/// Masks over a 4×3×2 volume, flat C index k:
/// nsdgeneral > 0 at k = 1, 2, 5, 8, 11, 12, 17, 23 (−1 / 0 elsewhere);
/// prf labels at k = 1 (V1v), 5 (hV4), 8 (9: "other"), and 3 (outside nsdgeneral);
/// floc-faces at 11, 12; floc-words at 12, 23 and 0 (outside); bodies, places empty.
fn masks(dir: &Path) -> Vec<f32> {
    let n = 24;
    let mut nsd = vec![-1.0f32; n];
    for k in [0, 3, 4, 6] {
        nsd[k] = 0.0;
    }
    for k in [1, 2, 5, 8, 11, 12, 17, 23] {
        nsd[k] = 1.0;
    }
    let mut prf = vec![0.0f32; n];
    prf[1] = 1.0;
    prf[5] = 7.0;
    prf[8] = 9.0;
    prf[3] = 2.0;
    let mut faces = vec![0.0f32; n];
    faces[11] = 1.0;
    faces[12] = 3.0;
    let mut words = vec![0.0f32; n];
    words[12] = 1.0;
    words[23] = 1.0;
    words[0] = 1.0;
    let zeros = vec![0.0f32; n];
    // Mixed formats: NIfTI gzip, .npy, plain NIfTI.
    write_volume(&dir.join("nsdgeneral.nii.gz"), DIMS, &nsd, None).unwrap();
    write_f32(&dir.join("prf-visualrois.npy"), &DIMS, &prf).unwrap();
    write_volume(&dir.join("floc-faces.nii"), DIMS, &faces, None).unwrap();
    write_volume(&dir.join("floc-words.nii.gz"), DIMS, &words, None).unwrap();
    write_volume(&dir.join("floc-bodies.nii.gz"), DIMS, &zeros, None).unwrap();
    write_f32(&dir.join("floc-places.npy"), &DIMS, &zeros).unwrap();
    nsd
}

#[test]
fn index_sets_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    let r = load_rois(dir.path()).unwrap();
    assert_eq!(r.dims, DIMS);
    assert_eq!(r.voxels, [1, 2, 5, 8, 11, 12, 17, 23]);
    assert_eq!(r.low, [0, 2, 3]);
    assert_eq!(r.high, [4, 5, 7]);
    assert_eq!(r.n_detail(), 8);
    let c = &r.counts;
    assert_eq!((c.detail, c.low, c.high), (8, 3, 3));
    let label = |n: &str| c.low_by_label.iter().find(|(l, _)| l == n).unwrap().1;
    assert_eq!(
        (label("V1v"), label("hV4"), label("V2v"), label("other")),
        (1, 1, 0, 1)
    );
    assert_eq!(
        c.high_by_mask,
        [
            ("floc-bodies".to_string(), 0),
            ("floc-faces".to_string(), 2),
            ("floc-places".to_string(), 0),
            ("floc-words".to_string(), 2)
        ]
    );
    assert_eq!(r.nsdgeneral, dir.path().join("nsdgeneral.nii.gz"));
    // Back into the volume: column j lands on voxel voxels[j].
    let vol = r.to_volume(&[1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
    assert_eq!((vol[1], vol[23], vol[0]), (1.0, 8.0, 0.0));
    let vol = r.subset_to_volume(&r.high, &[10., 20., 30.]).unwrap();
    assert_eq!((vol[11], vol[12], vol[23], vol[1]), (10.0, 20.0, 30.0, 0.0));
    assert!(r.to_volume(&[1.0]).is_none());
}

#[test]
fn gzip_is_preferred_then_nii_then_npy() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    let files = RoiFiles::find(dir.path()).unwrap();
    assert_eq!(files.prf_visualrois, dir.path().join("prf-visualrois.npy"));
    assert_eq!(files.floc[1], dir.path().join("floc-faces.nii"));
    write_f32(&dir.path().join("nsdgeneral.npy"), &DIMS, &[0.0; 24]).unwrap();
    assert_eq!(
        find_mask(dir.path(), "nsdgeneral").unwrap(),
        dir.path().join("nsdgeneral.nii.gz")
    );
}

#[test]
fn mask_of_another_shape_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    let p = dir.path().join("floc-words.nii.gz");
    write_volume(&p, [4, 3, 3], &[0.0; 36], None).unwrap();
    expect_format(
        load_rois(dir.path()),
        &p,
        &["4×3×3", "nsdgeneral.nii.gz", "4×3×2"],
    );
}

#[test]
fn empty_detail_roi() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    let p = dir.path().join("nsdgeneral.nii.gz");
    write_volume(&p, DIMS, &[-1.0; 24], None).unwrap();
    expect_format(load_rois(dir.path()), &p, &["detail ROI is empty"]);
}

#[test]
fn empty_low_level_roi() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    // Labels only outside nsdgeneral.
    let mut prf = vec![0.0f32; 24];
    prf[3] = 1.0;
    prf[0] = 4.0;
    let p = dir.path().join("prf-visualrois.npy");
    write_f32(&p, &DIMS, &prf).unwrap();
    expect_format(
        load_rois(dir.path()),
        &p,
        &["low-level ROI is empty", "prf-visualrois"],
    );
}

#[test]
fn empty_high_level_roi() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    let mut words = vec![0.0f32; 24];
    words[0] = 1.0;
    write_volume(&dir.path().join("floc-words.nii.gz"), DIMS, &words, None).unwrap();
    write_volume(&dir.path().join("floc-faces.nii"), DIMS, &[-1.0; 24], None).unwrap();
    expect_format(
        load_rois(dir.path()),
        dir.path(),
        &[
            "high-level ROI is empty",
            "floc-bodies.nii.gz",
            "floc-faces.nii",
            "floc-places.npy",
            "floc-words.nii.gz",
        ],
    );
}

#[test]
fn missing_mask_file() {
    let dir = tempfile::tempdir().unwrap();
    masks(dir.path());
    std::fs::remove_file(dir.path().join("floc-words.nii.gz")).unwrap();
    match load_rois(dir.path()) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, dir.path().join("floc-words.nii.gz"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            let msg = source.to_string();
            assert!(
                msg.contains("missing mask file") && msg.contains("floc-words.npy"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
}
