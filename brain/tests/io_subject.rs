//! A subject folder (docs/data.md) read into datasets: the synthetic subject written to
//! disk and read back exactly, z-scoring, caption averaging, optional targets, and one
//! clear error per kind of bad file.

mod io_common;

use brain::io::npy::{read_f32, write_f32, Int16Scale};
use brain::io::subject::{inspect_subject, load_subject, write_synthetic, LoadOptions};
use brain::synthetic::{generate, SyntheticConfig};
use brain::Error;
use io_common::{expect_format, npy_of, raw_npy, tuple};
use std::path::Path;

fn cfg() -> SyntheticConfig {
    SyntheticConfig {
        n_train: 40,
        n_test: 12,
        ..SyntheticConfig::small(5)
    }
}

fn subject() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic(dir.path(), &cfg()).unwrap();
    dir
}

fn raw() -> LoadOptions {
    LoadOptions {
        zscore: false,
        arrays: None,
    }
}

fn fmri(dir: &Path, split: &str) -> std::path::PathBuf {
    dir.join("fmri").join(format!("{split}.npy"))
}

fn target(dir: &Path, split: &str, file: &str) -> std::path::PathBuf {
    dir.join("targets").join(split).join(file)
}

#[test]
fn synthetic_subject_round_trips_exactly() {
    let dir = subject();
    let c = cfg();
    let want = generate(&c).unwrap();
    let got = load_subject(dir.path(), &raw()).unwrap();
    for (w, g) in [(&want.train, &got.train), (&want.test, &got.test)] {
        assert_eq!(w.len(), g.len());
        let mut names: Vec<&str> = g.names().collect();
        names.sort();
        assert_eq!(
            names,
            ["e_cap", "e_id", "e_img", "e_is", "e_t", "f_d", "f_high", "f_low", "f_s", "z"]
        );
        for name in names {
            assert_eq!(w.get(name), g.get(name), "{name}");
        }
    }
    let r = &got.rois.counts;
    assert_eq!((r.detail, r.low, r.high), (c.n_detail(), c.n_low, c.n_high));
    assert!(got.zscore.is_none());
    let info = inspect_subject(dir.path()).unwrap();
    assert_eq!(info.train.trials, 40);
    assert_eq!(info.test.fmri.shape, vec![12, c.n_detail()]);
    assert_eq!(info.train.targets.len(), 4);
    assert_eq!(info.rois, got.rois.counts);
}

#[test]
fn zscore_uses_training_statistics_for_both_splits() {
    let dir = subject();
    let s = load_subject(dir.path(), &LoadOptions::default()).unwrap();
    let z = s.zscore.as_ref().unwrap();
    let raw_train = read_f32(&fmri(dir.path(), "train"), Int16Scale::AsIs).unwrap();
    let raw_test = read_f32(&fmri(dir.path(), "test"), Int16Scale::AsIs).unwrap();
    let v = s.rois.n_detail();
    let (fd, w) = s.train.get("f_d").unwrap();
    assert_eq!(w, v);
    for j in [0, 7, v - 1] {
        let col: Vec<f64> = (0..40).map(|i| fd[i * v + j] as f64).collect();
        let m = col.iter().sum::<f64>() / 40.0;
        let var = col.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 40.0;
        assert!(m.abs() < 1e-5 && (var - 1.0).abs() < 1e-4);
        let (ft, _) = s.test.get("f_d").unwrap();
        let want = (raw_test.data[3 * v + j] as f64 - z.mean[j]) / z.std[j];
        assert!((ft[3 * v + j] as f64 - want).abs() < 1e-5);
        let mj = raw_train
            .data
            .iter()
            .skip(j)
            .step_by(v)
            .map(|&x| x as f64)
            .sum::<f64>()
            / 40.0;
        assert!((z.mean[j] - mj).abs() < 1e-9);
    }
    // The ROI arrays are columns of the z-scored f_d.
    let (fs, ws) = s.train.get("f_s").unwrap();
    let (fl, wl) = s.train.get("f_low").unwrap();
    assert_eq!((ws, wl), (s.rois.high.len(), s.rois.low.len()));
    assert_eq!(fs[ws + 2], fd[v + s.rois.high[2]]);
    assert_eq!(fl[wl + 5], fd[v + s.rois.low[5]]);
    assert_eq!(s.train.get("f_s"), s.train.get("f_high"));
}

#[test]
fn captions_are_averaged_and_absent_targets_skipped() {
    let dir = subject();
    let c = cfg();
    for (split, n) in [("train", 40), ("test", 12)] {
        let p = target(dir.path(), split, "clip_text.npy");
        let e = read_f32(&p, Int16Scale::AsIs).unwrap();
        let w = c.text_tokens * c.embed_dim;
        // Three captions: 1×, 2×, 3× the tokens, mean 2×.
        let mut four = Vec::with_capacity(n * 3 * w);
        for i in 0..n {
            for k in 1..=3 {
                four.extend(e.data[i * w..(i + 1) * w].iter().map(|v| v * k as f32));
            }
        }
        write_f32(&p, &[n, 3, c.text_tokens, c.embed_dim], &four).unwrap();
        std::fs::remove_file(target(dir.path(), split, "latents.npy")).unwrap();
    }
    let s = load_subject(dir.path(), &raw()).unwrap();
    let want = generate(&c).unwrap();
    let (et, w) = s.train.get("e_t").unwrap();
    let doubled: Vec<f32> = want
        .train
        .get("e_t")
        .unwrap()
        .0
        .iter()
        .map(|v| v * 2.0)
        .collect();
    assert_eq!((et, w), (doubled.as_slice(), c.text_tokens * c.embed_dim));
    assert_eq!(s.test.get("e_cap"), s.test.get("e_t"));
    assert!(s.train.get("z").is_none() && s.test.get("z").is_none());
    assert!(s.train.get("e_id").is_some());
}

#[test]
fn only_the_arrays_asked_for() {
    let dir = subject();
    let opts = LoadOptions {
        zscore: true,
        arrays: Some(vec!["f_s".into(), "e_is".into()]),
    };
    let s = load_subject(dir.path(), &opts).unwrap();
    let mut names: Vec<&str> = s.train.names().collect();
    names.sort();
    assert_eq!(names, ["e_is", "f_s"]);
    let bad = LoadOptions {
        zscore: true,
        arrays: Some(vec!["f_x".into()]),
    };
    match load_subject(dir.path(), &bad) {
        Err(Error::Core(e)) => assert!(e.to_string().contains("f_x"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn int16_betas_are_divided_by_300() {
    let dir = subject();
    let v = cfg().n_detail();
    for (split, n) in [("train", 40usize), ("test", 12)] {
        let vals: Vec<i16> = (0..n * v).map(|k| ((k % 21) as i16 - 10) * 30).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
        npy_of(&fmri(dir.path(), split), "<i2", &[n, v], &bytes);
    }
    let s = load_subject(dir.path(), &raw()).unwrap();
    let (fd, _) = s.train.get("f_d").unwrap();
    assert_eq!(fd[..3], [-1.0, -0.9, -0.8]);
}

#[test]
fn fmri_columns_must_match_nsdgeneral() {
    let dir = subject();
    let v = cfg().n_detail();
    let p = fmri(dir.path(), "test");
    write_f32(&p, &[12, v - 1], &vec![0.0; 12 * (v - 1)]).unwrap();
    let want_cols = format!("has {} voxel columns", v - 1);
    let want_sel = format!("selects {v} voxels");
    expect_format(
        load_subject(dir.path(), &raw()),
        &p,
        &[&want_cols, "nsdgeneral.nii.gz", &want_sel],
    );
    expect_format(inspect_subject(dir.path()), &p, &["voxel columns"]);
}

#[test]
fn nan_in_betas_names_trial_and_voxel() {
    let dir = subject();
    let p = fmri(dir.path(), "train");
    let mut a = read_f32(&p, Int16Scale::AsIs).unwrap();
    let v = a.shape[1];
    a.data[3 * v + 17] = f32::NAN;
    write_f32(&p, &a.shape, &a.data).unwrap();
    expect_format(
        load_subject(dir.path(), &LoadOptions::default()),
        &p,
        &["non-finite value NaN at trial 3, voxel 17"],
    );
}

#[test]
fn inf_in_a_target_names_trial_and_element() {
    let dir = subject();
    let p = target(dir.path(), "test", "latents.npy");
    let mut a = read_f32(&p, Int16Scale::AsIs).unwrap();
    let w: usize = a.shape[1..].iter().product();
    // trial 2, channel 1, row 3, column 4 of [4, 16, 16].
    let k = 2 * w + (16 + 3) * 16 + 4;
    a.data[k] = f32::NEG_INFINITY;
    write_f32(&p, &a.shape, &a.data).unwrap();
    expect_format(
        load_subject(dir.path(), &raw()),
        &p,
        &["non-finite value -inf at trial 2, element 308", "[1, 3, 4]"],
    );
}

#[test]
fn truncated_file() {
    let dir = subject();
    let p = target(dir.path(), "train", "clip_image_detail.npy");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    expect_format(load_subject(dir.path(), &raw()), &p, &["truncated"]);
}

#[test]
fn wrong_dtypes() {
    let dir = subject();
    let v = cfg().n_detail();
    let p = fmri(dir.path(), "train");
    npy_of(&p, "<i8", &[40, v], &vec![0u8; 40 * v * 8]);
    expect_format(load_subject(dir.path(), &raw()), &p, &["int64"]);
    let dir = subject();
    let p = target(dir.path(), "test", "latents.npy");
    npy_of(&p, "|b1", &[12, 4, 16, 16], &vec![0u8; 12 * 4 * 256]);
    expect_format(load_subject(dir.path(), &raw()), &p, &["bool"]);
}

#[test]
fn trial_counts_must_agree_within_a_split() {
    let dir = subject();
    let c = cfg();
    let p = target(dir.path(), "train", "clip_image_semantic.npy");
    let w = c.image_tokens * c.embed_dim;
    write_f32(&p, &[39, c.image_tokens, c.embed_dim], &vec![0.0; 39 * w]).unwrap();
    expect_format(
        load_subject(dir.path(), &raw()),
        &p,
        &["has 39 trials", "fmri/train.npy", "has 40"],
    );
}

#[test]
fn fortran_ordered_betas() {
    let dir = subject();
    let v = cfg().n_detail();
    let p = fmri(dir.path(), "test");
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': True, 'shape': {}, }}",
        tuple(&[12, v])
    );
    raw_npy(&p, &dict, &vec![0u8; 12 * v * 4]);
    expect_format(load_subject(dir.path(), &raw()), &p, &["Fortran"]);
}

#[test]
fn target_shapes_must_fit_and_match_between_splits() {
    let dir = subject();
    let c = cfg();
    // Token file of rank 2.
    let p = target(dir.path(), "train", "clip_image_detail.npy");
    let w = c.image_tokens * c.embed_dim;
    write_f32(&p, &[40, w], &vec![0.0; 40 * w]).unwrap();
    expect_format(
        load_subject(dir.path(), &raw()),
        &p,
        &["is not [trials, tokens, dim]"],
    );
    // Another width in the test split.
    let dir = subject();
    let p = target(dir.path(), "test", "clip_text.npy");
    write_f32(
        &p,
        &[12, c.text_tokens, 8],
        &vec![0.0; 12 * c.text_tokens * 8],
    )
    .unwrap();
    expect_format(
        load_subject(dir.path(), &raw()),
        &p,
        &["does not match the training file", "clip_text.npy"],
    );
    // A target in one split only.
    let dir = subject();
    std::fs::remove_file(target(dir.path(), "test", "clip_image_semantic.npy")).unwrap();
    expect_format(
        load_subject(dir.path(), &raw()),
        &target(dir.path(), "train", "clip_image_semantic.npy"),
        &["no counterpart in targets/test/"],
    );
}

#[test]
fn missing_fmri_and_masks() {
    let dir = subject();
    let p = fmri(dir.path(), "test");
    std::fs::remove_file(&p).unwrap();
    assert!(matches!(load_subject(dir.path(), &raw()), Err(Error::Io { path, .. }) if path == p));
    let dir = subject();
    std::fs::remove_file(dir.path().join("masks/prf-visualrois.nii.gz")).unwrap();
    assert!(matches!(
        load_subject(dir.path(), &raw()),
        Err(Error::Io { path, .. }) if path == dir.path().join("masks/prf-visualrois.nii.gz")
    ));
}
